"""DH-DETR (docs/models.md): two-stage Deformable DETR with iterative box refinement, a decoder without
query self-attention, and DCG layers at the end. With no DCG layers and "self_attn" decoder layers it is
(two-stage) Deformable DETR, the ablation; with two_stage=False it is the single-stage baseline.
"""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from detrt.models.dcg import dcg_query_mask
from detrt.models.deformable_attention import inverse_sigmoid, sine_position_encoding
from detrt.models.deformable_transformer import DeformableTransformer
from detrt.models.padding import feature_mask, masked_norm, valid_size, zero_padding
from detrt.ops.box_ops import box_cxcywh_to_xyxy


class MLP(nn.Module):
    """Linear layers with ReLU between them (DETR's box head)."""

    def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, dims[1:] + [output_dim]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


def input_projections(channels, d, num_feature_levels):
    """1x1 conv + GN per backbone level, then stride-2 3x3 convs (the first on C5) for the extra levels."""
    proj = [nn.Sequential(nn.Conv2d(c, d, 1), nn.GroupNorm(32, d)) for c in channels]
    cin = channels[-1]
    for _ in range(num_feature_levels - len(proj)):
        proj.append(nn.Sequential(nn.Conv2d(cin, d, 3, 2, 1), nn.GroupNorm(32, d)))
        cin = d
    for p in proj:
        nn.init.xavier_uniform_(p[0].weight)
        nn.init.zeros_(p[0].bias)
    return nn.ModuleList(proj)


def flat_features(feats, input_proj, level_embed, strides, input_hw, sizes=None):
    """Backbone levels -> flattened multi-scale features: src, pos [B, S, C], spatial_shapes [L, 2],
    level_start_index [L], the level shapes as Python ints (static for a given input size), valid [B, L, 2]
    (the (w, h) of each level holding the image) and padding [B, S] (True on padding; None without sizes).

    strides: the backbone levels' strides; input_hw: the input's (H, W); sizes [B, 2] (h, w): each image's size
    at the top-left of its input (None: the images fill it).
    """
    device = feats[0].device
    image_hw = (torch.tensor([list(input_hw)], dtype=torch.float32, device=device) if sizes is None
                else sizes.to(torch.float32))  # [B or 1, 2]
    strides = strides + [strides[-1] * 2 ** i for i in range(1, len(input_proj) - len(feats) + 1)]
    srcs, masks = [], []
    for lvl, proj in enumerate(input_proj):
        # the extra levels: stride-2 convs, the first on C5, the next on the previous level
        x = proj[0](feats[lvl] if lvl < len(feats) else feats[-1] if lvl == len(feats) else srcs[-1])
        m = None if sizes is None else feature_mask(image_hw, strides[lvl], x.shape[-2:], x.dtype)
        srcs.append(zero_padding(masked_norm(proj[1], x, m), m))
        masks.append(m)
    shapes = [tuple(int(d) for d in s.shape[-2:]) for s in srcs]
    valid = torch.stack([valid_size(image_hw, s).flip(-1) for s in strides], 1)  # [B, L, 2] as (w, h)
    d = level_embed.shape[-1]
    pos = [(sine_position_encoding(h, w, d // 2, device=device, valid=valid[:, lvl].flip(-1))
            .flatten(2).transpose(1, 2) + level_embed[lvl]) for lvl, (h, w) in enumerate(shapes)]
    src = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
    pos = torch.cat(pos, 1).expand(src.shape[0], -1, -1)
    padding = None if sizes is None else torch.cat([m.flatten(1) for m in masks], 1) == 0
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64, device=device)
    starts = [0]
    for h, w in shapes[:-1]:
        starts.append(starts[-1] + h * w)
    level_start_index = torch.tensor(starts, dtype=torch.int64, device=device)
    return src, pos, spatial_shapes, level_start_index, shapes, valid, padding


class DHDETR(nn.Module):
    """forward(images [B, 3, H, W], sizes=None) -> dict. H and W are multiples of 32; sizes [B, 2] float (h, w):
    each image fills the top-left h x w pixels of its input and the rest is padding, which then changes
    nothing (detrt.models.padding; None: no padding). Boxes are normalized to the image (h x w):

    - pred_logits [B, N, C]: class logits of the last decoder layer (-inf for queries a DCG layer dropped);
    - pred_boxes [B, N, 4]: boxes (cx, cy, w, h) normalized to the image; DCG layers keep the boxes of
      the last refining layer;
    - query_mask [B, N] bool: the DCG mask c of the last layer (absent when it is not a DCG layer);
    - aux_outputs: the same keys for each earlier decoder layer;
    - enc_outputs (two-stage): pred_logits [B, S, C] and pred_boxes [B, S, 4] of every encoder token.
    N = num_queries; S = number of memory tokens, which must be >= N.
    """

    def __init__(self, backbone, transformer: DeformableTransformer, num_classes=1, num_queries=500,
                 num_feature_levels=4, dcg_floor_score=0.05):
        super().__init__()
        d = transformer.d_model
        self.backbone, self.transformer = backbone, transformer
        self.num_queries, self.num_classes, self.dcg_floor_score = num_queries, num_classes, dcg_floor_score
        self.input_proj = input_projections(backbone.num_channels, d, num_feature_levels)
        # Heads: one class head per decoder layer (+1 for the encoder proposals), one box head per refining
        # layer (+1 for the proposals). DCG layers never move boxes, so they have no box head. The encoder
        # uses the last of each list, as in the reference code.
        kinds = [layer.kind for layer in transformer.decoder]
        if kinds[0] == "dcg" or "dcg" in kinds and set(kinds[kinds.index("dcg"):]) != {"dcg"}:
            raise ValueError(f"DCG layers must be the last decoder layers, after a refining one: {kinds}")
        # Heads start as copies of one initialized head, as the reference's _get_clones does.
        class_head, box_head = nn.Linear(d, num_classes), MLP(d, d, 4, 3)
        nn.init.constant_(class_head.bias, -math.log((1 - 0.01) / 0.01))  # prior probability 0.01 (focal loss)
        nn.init.zeros_(box_head.layers[-1].weight)
        nn.init.zeros_(box_head.layers[-1].bias)
        extra = 1 if transformer.two_stage else 0
        num_refining = len(kinds) - kinds.count("dcg")
        self.class_embed = nn.ModuleList(copy.deepcopy(class_head) for _ in range(len(kinds) + extra))
        self.bbox_embed = nn.ModuleList(copy.deepcopy(box_head) for _ in range(num_refining + extra))
        if not transformer.two_stage:
            # single stage: the first layer starts from w = h = sigmoid(-2) around learned reference boxes
            nn.init.constant_(self.bbox_embed[0].layers[-1].bias[2:], -2.0)
            self.query_embed = nn.Embedding(num_queries, 2 * d)

    def forward(self, images, sizes=None):
        feats = self.backbone(images, None if sizes is None else sizes.to(torch.float32))
        src, pos, spatial_shapes, level_start_index, shapes, valid, padding = flat_features(
            feats, self.input_proj, self.transformer.level_embed, self.backbone.strides, images.shape[-2:], sizes)
        memory = self.transformer.encode(src, pos, spatial_shapes, level_start_index, shapes, valid, padding)
        out = {}
        if self.transformer.two_stage:
            enc_memory, proposals = self.transformer.proposals(memory, shapes, valid, padding)
            enc_logits = self.class_embed[-1](enc_memory)
            enc_unact = self.bbox_embed[-1](enc_memory) + proposals
            out["enc_outputs"] = {"pred_logits": enc_logits, "pred_boxes": enc_unact.sigmoid()}
            # top-K by score; the reference ranks by class 0 (one class), the max is the same there. A padded
            # token is never chosen (the reference could rank one, its score a constant, into the top K).
            score = enc_logits.amax(-1)
            if padding is not None:
                score = score.masked_fill(padding, float("-inf"))
            topk = score.topk(self.num_queries, dim=1)[1]
            boxes_unact = torch.gather(enc_unact, 1, topk[..., None].expand(-1, -1, 4)).detach()
            query_pos, tgt = self.transformer.queries_from_boxes(boxes_unact)
            reference = boxes_unact.sigmoid()
        else:
            query = self.query_embed.weight[None].expand(images.shape[0], -1, -1)
            query_pos, tgt = query.split(self.transformer.d_model, -1)
            reference = self.transformer.reference_points(query_pos).sigmoid()
        # boxes are normalized to the image; the sampling happens on the padded maps
        ratios = self.transformer.valid_ratios(valid, shapes).repeat(1, 1, 2)  # [B, L, 4]
        layers = self._decode(tgt, query_pos, reference, memory, spatial_shapes, level_start_index, ratios, padding)
        out.update(layers[-1])
        out["aux_outputs"] = layers[:-1]
        return out

    def _decode(self, tgt, query_pos, reference, memory, spatial_shapes, level_start_index, ratios, padding):
        """Run the decoder layers with iterative box refinement; one output dict per layer. ratios [B, L, 4]:
        the valid ratios that map boxes on the image to boxes on each padded level."""
        outputs, boxes, logits, box_head = [], reference, None, 0
        for lid, layer in enumerate(self.transformer.decoder):
            ref_input = reference[:, :, None] * ratios[:, None]
            if layer.kind == "dcg":
                # masks from the previous layer, detached: scores choose neighbours, c drops queries
                scores = logits.detach().amax(-1).sigmoid()
                keep = dcg_query_mask(logits, self.dcg_floor_score)
                tgt = layer(tgt, query_pos, ref_input, memory, spatial_shapes, level_start_index, padding,
                            boxes=reference, scores=scores, keep=keep)
                logits = self.class_embed[lid](tgt).masked_fill(~keep[..., None], float("-inf"))
                outputs.append({"pred_logits": logits, "pred_boxes": boxes, "query_mask": keep})
            else:
                tgt = layer(tgt, query_pos, ref_input, memory, spatial_shapes, level_start_index, padding)
                logits = self.class_embed[lid](tgt)
                boxes = (self.bbox_embed[box_head](tgt) + inverse_sigmoid(reference)).sigmoid()
                box_head += 1
                outputs.append({"pred_logits": logits, "pred_boxes": boxes})
            reference = boxes.detach()
        return outputs


class PostProcess(nn.Module):
    """Model outputs -> top-K detections per image, sorted by score (the exported in-graph postprocess).

    forward(outputs, target_sizes [B, 2] as (h, w): the image's size in pixels, the model's `sizes` when it had
    them) -> {"scores" [B, K], "labels" int64 [B, K], "boxes" [B, K, 4] xyxy in pixels}. K = min(num_select,
    N * C); no NMS. With outputs["category_ids"] [B, C] (CQ-DINO: the global id of each logit column) labels are
    global ids. A score below `score_floor`
    is set to 0, as a query a DCG layer dropped scores 0: the shape stays fixed (an engine's outputs are),
    and every reader drops what scores below the floor.
    """

    def __init__(self, num_select=100, score_floor=0.0):
        super().__init__()
        self.num_select = num_select
        self.score_floor = score_floor

    @torch.no_grad()
    def forward(self, outputs, target_sizes):
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        b, n, c = logits.shape
        scores, index = logits.sigmoid().view(b, n * c).topk(min(self.num_select, n * c), dim=1)
        if self.score_floor > 0:
            scores = torch.where(scores >= self.score_floor, scores, torch.zeros_like(scores))
        labels, query = index % c, torch.div(index, c, rounding_mode="floor")
        if "category_ids" in outputs:  # CQ-DINO: column k of the logits is category category_ids[:, k]
            labels = torch.gather(outputs["category_ids"], 1, labels)
        boxes = torch.gather(box_cxcywh_to_xyxy(boxes), 1, query[..., None].expand(-1, -1, 4))
        h, w = target_sizes.to(boxes.dtype).unbind(-1)
        boxes = boxes * torch.stack([w, h, w, h], -1)[:, None]
        return {"scores": scores, "labels": labels, "boxes": boxes}
