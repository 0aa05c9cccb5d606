"""The two detrt ops written in standard ONNX ops, as model-local ONNX functions.

The portable form of an exported model keeps each op as one node in the domain `detrt.portable` whose
definition (a FunctionProto carried in the model) is the reference semantics in standard ops:

- `MSDeformAttn`: F.grid_sample form of docs/ops.md's definition (one GridSample per level, zero padding,
  align_corners=0), the bilinear arithmetic of `detrt.ops.msda.ms_deform_attn_reference`; each level's
  samples are weighted and summed over its points where they are made, and the levels' sums added, so
  the reference's Concat of every level's samples (the largest tensor of the op) is never written. Only
  the order of the final float sums differs from the reference.
- `DCGNeighbors`: the dense O(N^2) IoU + TopK of `detrt.ops.dcg.dcg_neighbors_reference`, with the
  same float operations in the same order, so neighbour sets agree bit for bit.

Why functions and not inlined nodes: ONNX Runtime (and onnx.inliner, and TensorRT's parser) expand a
function call into its body, so the model runs anywhere with standard ops, while graph surgery can
still swap each call for the plugin node losslessly (same inputs, outputs and attributes) instead of
pattern-matching a GridSample subgraph. The TensorRT path must never keep the GridSample body
(NVIDIA/TensorRT#4813): `detrt build` refuses it.
"""

import onnx
import onnx.parser

from detrt.ops.names import PORTABLE_DOMAIN


def _opset_header(opset):
    return f'<domain: "{PORTABLE_DOMAIN}", opset_import: ["" : {opset}]>'


def msda_function(num_levels, opset):
    """MSDeformAttn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights) -> output.

    value [N, S, M, D]; spatial_shapes [L, 2] (H, W) int32 or int64; level_start_index [L];
    sampling_locations [N, Lq, M, L, P, 2] normalized (x, y); attention_weights [N, Lq, M, L, P];
    output [N, Lq, M*D]. One definition per number of levels L; every other size is read at run time.
    """
    mode = "bilinear" if opset < 20 else "linear"  # GridSample renamed its modes in opset 20
    body = [
        "ss = Cast<to = 7>(spatial_shapes)",
        "lsi = Cast<to = 7>(level_start_index)",
        "n = Shape<start = 0, end = 1>(value)",
        "d = Shape<start = 3, end = 4>(value)",
        "lq = Shape<start = 1, end = 2>(sampling_locations)",
        "nl = Shape<start = 3, end = 4>(sampling_locations)",
        "p = Shape<start = 4, end = 5>(sampling_locations)",
        "minus1 = Constant<value = int64[1] {-1}>()",
        "one = Constant<value = int64[1] {1}>()",
        "two = Constant<value = int64[1] {2}>()",
        "zero = Constant<value = int64[1] {0}>()",
        "axis1 = Constant<value = int64[1] {1}>()",
        "two_f = Constant<value = float {2.0}>()",
        "one_f = Constant<value = float {1.0}>()",
        "two_t = CastLike(two_f, sampling_locations)",
        "one_t = CastLike(one_f, sampling_locations)",
        "scaled = Mul(sampling_locations, two_t)",
        "grids = Sub(scaled, one_t)",  # grid_sample wants [-1, 1]
        "gshape = Concat<axis = 0>(minus1, lq, p, two)",
    ]
    body += [
        # [N, Lq, M, L, P] -> [N, M, Lq, L, P] -> [N*M, 1, Lq, L, P]: each level's slice broadcasts over D
        "wt = Transpose<perm = [0, 2, 1, 3, 4]>(attention_weights)",
        "wshape = Concat<axis = 0>(minus1, one, lq, nl, p)",
        "weights = Reshape(wt, wshape)",
    ]
    sums = []
    for lvl in range(num_levels):
        body += [
            f"i{lvl} = Constant<value = int64 {{{lvl}}}>()",
            f"hw{lvl} = Gather<axis = 0>(ss, i{lvl})",
            f"h{lvl} = Slice(hw{lvl}, zero, one)",
            f"w{lvl} = Slice(hw{lvl}, one, two)",
            f"area{lvl} = Mul(h{lvl}, w{lvl})",
            f"i1_{lvl} = Constant<value = int64[1] {{{lvl}}}>()",
            f"start{lvl} = Gather<axis = 0>(lsi, i1_{lvl})",
            f"end{lvl} = Add(start{lvl}, area{lvl})",
            # [N, H*W, M, D] -> [N, M, D, H*W] -> [N*M, D, H, W]
            f"v{lvl} = Slice(value, start{lvl}, end{lvl}, axis1)",
            f"vt{lvl} = Transpose<perm = [0, 2, 3, 1]>(v{lvl})",
            f"vshape{lvl} = Concat<axis = 0>(minus1, d, h{lvl}, w{lvl})",
            f"vimg{lvl} = Reshape(vt{lvl}, vshape{lvl})",
            # [N, Lq, M, P, 2] -> [N, M, Lq, P, 2] -> [N*M, Lq, P, 2]
            f"g{lvl} = Gather<axis = 3>(grids, i{lvl})",
            f"gt{lvl} = Transpose<perm = [0, 2, 1, 3, 4]>(g{lvl})",
            f"grid{lvl} = Reshape(gt{lvl}, gshape)",
            f's{lvl} = GridSample<align_corners = 0, mode = "{mode}", padding_mode = "zeros">(vimg{lvl}, grid{lvl})',
            # each level's samples [N*M, D, Lq, P] weighted and summed over P where they are made: no Concat
            # of all levels' samples (the largest tensor of the old form) is ever written
            f"a{lvl} = Gather<axis = 3>(weights, i{lvl})",  # [N*M, 1, Lq, P]
            f"ws{lvl} = Mul(s{lvl}, a{lvl})",
            f"sum{lvl} = ReduceSum<keepdims = 0>(ws{lvl}, minus1)",  # [N*M, D, Lq]
        ]
        sums.append(f"sum{lvl}")
    body += [
        f"summed = Sum({', '.join(sums)})",
        "oshape = Concat<axis = 0>(n, minus1, lq)",
        "out3 = Reshape(summed, oshape)",
        "output = Transpose<perm = [0, 2, 1]>(out3)",
    ]
    text = (f"{_opset_header(opset)}\nMSDeformAttn (value, spatial_shapes, level_start_index, sampling_locations, "
            f"attention_weights) => (output)\n{{\n" + "\n".join(body) + "\n}")
    return onnx.parser.parse_function(text)


def dcg_function(opset):
    """DCGNeighbors<k, iou_threshold, low_score>(boxes, scores) -> (indices int32 [B,N,k], valid int32 0/1 [B,N,k]).

    boxes [B, N, 4] cxcywh; scores [B, N]. j is a neighbour of i iff s_i < s_j, s_j > low_score and
    IoU(i, j) >= iou_threshold; the k of largest IoU are kept; padding slots have valid = 0, index = i.
    """
    body = [
        "k_s = Constant<value_int: int = @k>()",
        "thr_f = Constant<value_float: float = @iou_threshold>()",
        "low_f = Constant<value_float: float = @low_score>()",
        "half_f = Constant<value = float {0.5}>()",
        "zero_f = Constant<value = float {0.0}>()",
        "neg1_f = Constant<value = float {-1.0}>()",
        "thr = CastLike(thr_f, boxes)",
        "low = CastLike(low_f, scores)",
        "half = CastLike(half_f, boxes)",
        "zero = CastLike(zero_f, boxes)",
        "neg1 = CastLike(neg1_f, boxes)",
        "c0 = Constant<value = int64[1] {0}>()",
        "c1 = Constant<value = int64[1] {1}>()",
        "c2 = Constant<value = int64[1] {2}>()",
        "c4 = Constant<value = int64[1] {4}>()",
        "cm1 = Constant<value = int64[1] {-1}>()",
        # cxcywh -> xyxy as box_cxcywh_to_xyxy: (c - 0.5 * wh, c + 0.5 * wh)
        "cxcy = Slice(boxes, c0, c2, cm1)",
        "wh = Slice(boxes, c2, c4, cm1)",
        "halfwh = Mul(wh, half)",
        "lt = Sub(cxcy, halfwh)",
        "rb = Add(cxcy, halfwh)",
        # pairwise IoU as detrt.ops.box_ops.box_iou
        "lt_i = Unsqueeze(lt, c2)",
        "lt_j = Unsqueeze(lt, c1)",
        "rb_i = Unsqueeze(rb, c2)",
        "rb_j = Unsqueeze(rb, c1)",
        "rbmin = Min(rb_i, rb_j)",
        "ltmax = Max(lt_i, lt_j)",
        "iwh_raw = Sub(rbmin, ltmax)",
        "iwh = Max(iwh_raw, zero)",
        "iw = Gather<axis = -1>(iwh, c0)",
        "ih = Gather<axis = -1>(iwh, c1)",
        "inter4 = Mul(iw, ih)",
        "inter = Squeeze(inter4, cm1)",  # [B, N, N]
        "ext = Sub(rb, lt)",
        "ew = Gather<axis = -1>(ext, c0)",
        "eh = Gather<axis = -1>(ext, c1)",
        "area3 = Mul(ew, eh)",
        "area = Squeeze(area3, cm1)",  # [B, N]
        "area_i = Unsqueeze(area, c2)",
        "area_j = Unsqueeze(area, c1)",
        "asum = Add(area_i, area_j)",
        "union = Sub(asum, inter)",
        "iou = Div(inter, union)",
        # j allowed for i: s_i < s_j, s_j > low_score, IoU >= threshold
        "s_i = Unsqueeze(scores, c2)",
        "s_j = Unsqueeze(scores, c1)",
        "higher = Less(s_i, s_j)",
        "confident = Greater(s_j, low)",
        "overlap = GreaterOrEqual(iou, thr)",
        "hc = And(higher, confident)",
        "allowed = And(hc, overlap)",
        "key = Where(allowed, iou, neg1)",
        "b = Shape<start = 0, end = 1>(scores)",
        "n = Shape<start = 1, end = 2>(scores)",
        "k1 = Unsqueeze(k_s, c0)",
        "k64 = Cast<to = 7>(k1)",
        "kk = Min(k64, n)",
        "top, idx = TopK<axis = -1, largest = 1, sorted = 1>(key, kk)",
        "got = GreaterOrEqual(top, zero)",
        "n_s = Squeeze(n, c0)",
        "c0_s = Constant<value = int64 {0}>()",
        "c1_s = Constant<value = int64 {1}>()",
        "ar = Range(c0_s, n_s, c1_s)",
        "selfshape = Constant<value = int64[3] {1, -1, 1}>()",
        "self_index = Reshape(ar, selfshape)",
        "idx_kept = Where(got, idx, self_index)",
        # k > N: the remaining slots are padding (index = i, valid = 0)
        "short = Sub(k64, kk)",
        "padshape = Concat<axis = 0>(b, n, short)",
        "pad_idx = Expand(self_index, padshape)",
        "false_b = Constant<value = bool {0}>()",
        "pad_valid = Expand(false_b, padshape)",
        "idx_all = Concat<axis = 2>(idx_kept, pad_idx)",
        "valid_b = Concat<axis = 2>(got, pad_valid)",
        "valid = Cast<to = 6>(valid_b)",
        "indices = Cast<to = 6>(idx_all)",
    ]
    text = (f"{_opset_header(opset)}\nDCGNeighbors <k, iou_threshold, low_score> (boxes, scores) => (indices, valid)\n"
            "{\n" + "\n".join(body) + "\n}")
    return onnx.parser.parse_function(text)
