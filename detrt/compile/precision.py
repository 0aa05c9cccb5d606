"""Precision in the graph: FP16 as explicit Casts, INT8 as explicit Q/DQ (TensorRT 11 has no other way).

    graph, _ = surgery.run_passes(graph, passes_for("fp16"))    # FP32 islands: LayerNorm, Softmax, ...
    int8 = quantize(model, calibration_batches(frames, manifest))  # a file step, then passes_for("int8")

TensorRT 11 removed weak typing, the FP16/INT8 builder flags and IInt8Calibrator, so the
ONNX graph carries the types and `detrt build` builds it strongly typed on 10.x and 11.x alike.

FP16: every float node runs in half except the FP32 islands, with Casts at the borders:
- LayerNormalization and Softmax (reductions that overflow or lose mass in half);
- the sampling-location math: everything feeding MSDeformAttn's sampling_locations back to (not
  including) the offset projection: reference boxes, inverse sigmoids, box refinement;
- the heads: everything the graph outputs depend on back to the last LayerNormalization (class and box
  heads, postprocessing).
The MSDA node itself takes half value and attention weights and float32 sampling locations (its kernels
accumulate in FP32); DCG neighbour selection stays FP32. `fp16_all=True` keeps only what cannot be half (DCG, TopK, ...).

INT8: onnxruntime.quantization QDQ, symmetric activations and weights (int8, zero point 0, what
TensorRT requires), per-channel weights, Q/DQ only on Conv, MatMul and Gemm (what TensorRT fuses);
attention, softmax and DCG stay float. The quantizer reads and writes files, so it runs as a file step
before the pass list. Calibration runs the portable form of the graph (ONNX Runtime's calibrator cannot
load custom ops); `detrt build` quantizes a plugin-form model through it and converts back (build.py).
"""

import math
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

from detrt.compile import surgery
from detrt.data.preprocess import Preprocessor, image_sizes
from detrt.errors import InputError
from detrt.manifest import IMAGE_SIZES
from detrt.eval.crowdhuman import evaluate
from detrt.ops.names import DCG_OP, DETRT_DOMAIN, MSDA_OP, PORTABLE_DOMAIN
from detrt.progress import progress_bar

FP32_OPS = ("LayerNormalization", "Softmax")
NEVER_HALF_OPS = (DCG_OP, "TopK", "NonMaxSuppression", "Range", "CumSum", "RandomUniformLike")
WEIGHT_OPS = ("MatMul", "Gemm", "Conv")  # the offset projection: sampling math stops here
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]


def passes_for(precision, fp16_all=False):
    """The graph passes of `precision`: the FP16 conversion, or INT8's fix-ups after `quantize`."""
    if precision == "fp16":
        return [name_nodes, surgery.infer_shapes, to_fp16_all if fp16_all else to_fp16, surgery.cleanup,
                surgery.toposort]
    if precision == "int8":
        return [float_for_unquantized_readers, surgery.cleanup]
    return []


def fp32_islands(graph, fp16_all=False):
    """Names of the nodes that stay FP32 in the FP16 graph (see the module docstring)."""
    keep = {n.name for n in graph.nodes if n.op in NEVER_HALF_OPS}
    if fp16_all:
        return keep
    keep |= {n.name for n in graph.nodes if n.op in FP32_OPS}
    for node in graph.nodes:
        if node.op == MSDA_OP and node.domain in (DETRT_DOMAIN, PORTABLE_DOMAIN):
            keep |= _float_cone([node.inputs[3]], stop_ops=WEIGHT_OPS)
    keep |= _float_cone(graph.outputs, stop_ops=("LayerNormalization",))
    return keep


def _float_cone(tensors, stop_ops):
    """Nodes producing `tensors`, followed back through float tensors; nodes of stop_ops are not entered."""
    seen, names, stack = set(), set(), list(tensors)
    while stack:
        tensor = stack.pop()
        if id(tensor) in seen or not tensor.inputs or not _is_float(tensor):
            continue
        seen.add(id(tensor))
        node = tensor.inputs[0]
        if node.op in stop_ops:
            continue
        names.add(node.name)
        stack.extend(node.inputs)
    return names


def _is_float(tensor):
    return tensor.dtype is not None and np.dtype(tensor.dtype) in (np.float32, np.float16)


# Inputs that must stay float32 whatever the node's precision (ONNX type constraints).
# Inputs that stay float32 in a half node: Resize's scales, and MSDA's sampling locations (in half, a location
# on a 100-pixel map moves by up to 0.03 pixel; the plugin reads them as float32).
FLOAT32_SLOTS = {"Resize": (1, 2), "Upsample": (1,), MSDA_OP: (3,)}
HALF, FLOAT = np.dtype(np.float16), np.dtype(np.float32)


def to_fp16(graph):
    """FP32 graph -> explicitly typed FP16 graph; graph inputs and outputs stay float32.

    Every float node outside fp32_islands() computes in half; a Cast sits on every edge between a half
    and a float node (one per tensor and direction, shared by all readers); weights read only by half
    nodes are stored in half. Needs dtypes (surgery.infer_shapes) and unique node names (name_nodes).
    """
    return _to_half(graph, fp32_islands(graph))


def to_fp16_all(graph):
    """to_fp16 keeping FP32 only what cannot be half (DCG, TopK, ...): `--fp16-all`."""
    return _to_half(graph, fp32_islands(graph, fp16_all=True))


def _to_half(graph, keep):
    if any(n.op == "QuantizeLinear" for n in graph.nodes):
        raise InputError("the model already carries Q/DQ (INT8); FP16 conversion starts from the FP32 model")
    half = {id(n) for n in graph.nodes if n.name not in keep and n.op not in NEVER_HALF_OPS
            and any(_is_float(t) for t in [*n.inputs, *n.outputs])}
    outputs = {id(t) for t in graph.outputs}
    for node in [n for n in graph.nodes if id(n) in half]:
        _retype_half_node(graph, node, outputs)
    casts = {}
    for node in list(graph.nodes):
        want_half = id(node) in half
        exempt = FLOAT32_SLOTS.get(node.op, ())
        for slot, tensor in enumerate(node.inputs):
            if not _is_float(tensor):
                continue
            want = HALF if want_half and slot not in exempt else FLOAT
            if np.dtype(tensor.dtype) != want:
                node.inputs[slot] = _cast(graph, tensor, want, casts, half)
    return graph


def _retype_half_node(graph, node, outputs):
    """Make a half node produce half: its float outputs, and the float type its attributes name."""
    if node.op == "Cast" and node.attrs.get("to") == onnx.TensorProto.FLOAT:
        node.attrs["to"] = onnx.TensorProto.FLOAT16
    if node.op in ("Constant", "ConstantOfShape") and isinstance(node.attrs.get("value"), gs.Constant):
        value = node.attrs["value"]
        if value.values.dtype == np.float32:
            node.attrs["value"] = gs.Constant(value.name, value.values.astype(np.float16))
    for i, out in enumerate(node.outputs):
        if not _is_float(out):
            continue
        if id(out) in outputs:  # graph outputs stay float32: the node writes a half twin, a Cast restores it
            twin = gs.Variable(f"{out.name}_fp16", dtype=np.float16, shape=out.shape)
            node.outputs[i] = twin
            graph.nodes.append(gs.Node("Cast", f"{out.name}_to_fp32", {"to": onnx.TensorProto.FLOAT}, [twin], [out]))
        else:
            out.dtype = np.float16


def _cast(graph, tensor, dtype, casts, half):
    """The `dtype` version of `tensor`: a converted copy for weights, else a (shared) Cast node."""
    key = (tensor.name, dtype.name)
    if key not in casts:
        if isinstance(tensor, gs.Constant):
            casts[key] = gs.Constant(f"{tensor.name}_{dtype.name}", tensor.values.astype(dtype))
        else:
            to = onnx.TensorProto.FLOAT16 if dtype == HALF else onnx.TensorProto.FLOAT
            out = gs.Variable(f"{tensor.name}_{dtype.name}", dtype=dtype.type, shape=tensor.shape)
            graph.nodes.append(gs.Node("Cast", f"{tensor.name}_cast_{dtype.name}", {"to": to}, [tensor], [out]))
            casts[key] = out
    return casts[key]


def name_nodes(graph):
    """Give every node a unique name (FP32 islands are named by node)."""
    used = set()
    for i, node in enumerate(graph.nodes):
        if not node.name or node.name in used:
            node.name = f"{node.op}_{i}"
        used.add(node.name)
    return graph


class _Batches:
    """onnxruntime.quantization CalibrationDataReader over a list of {input: array} feeds, with a progress bar."""

    def __init__(self, batches, desc="calibrating"):
        self._iter = iter(batches)
        self._bar = progress_bar(total=len(batches), desc=desc, unit="batch")

    def get_next(self):
        item = next(self._iter, None)
        if item is None:
            self._bar.close()
        else:
            self._bar.update(1)
        return item


def check_calibration(batches, model, where="calibration data"):
    """One clear InputError for empty or wrongly shaped calibration batches."""
    if not batches:
        raise InputError(f"{where}: no calibration frames (need at least one image or video frame)")
    want = _input_shape(model)
    names = [i.name for i in model.graph.input]
    for i, feed in enumerate(batches):
        x = feed.get("images")
        if x is None or x.ndim != 4 or x.dtype != np.float32 or list(x.shape[1:]) != want[1:]:
            got = None if x is None else f"{x.dtype} {list(x.shape)}"
            raise InputError(f"{where}: batch {i} is {got}, the model takes float32 [B, {', '.join(map(str, want[1:]))}]")
        if sorted(feed) != sorted(names):
            raise InputError(f"{where}: batch {i} holds {sorted(feed)}, the model takes {names}")


def _input_shape(model):
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]


def quantize(model, batches, per_channel=True):
    """Portable FP32 ModelProto + calibration batches [{"images": float32 [B, 3, H, W]}] -> INT8 QDQ ModelProto
    as ONNX Runtime writes it; passes_for("int8") fixes it up."""
    check_calibration(batches, model)
    with tempfile.TemporaryDirectory(prefix="detrt-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, src)
        quantize_static(
            str(src), str(dst), _Batches(batches), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=QUANTIZED_OPS, per_channel=per_channel,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                           "CalibTensorRangeSymmetric": True,
                           # one Q/DQ pair per quantized reader: other readers of the tensor (residual Adds,
                           # Shape, attention math) keep the float value
                           "DedicatedQDQPair": True, "QDQKeepRemovableActivations": False,
                           # Q/DQ on the inputs of Conv/MatMul/Gemm only (TensorRT's placement), not on outputs
                           "OpTypesToExcludeOutputQuantization": QUANTIZED_OPS,
                           "QuantizeBias": False},  # TensorRT takes float biases (no int32 DQ)
            calibration_cache_path=None)
        return onnx.load(str(dst))


def float_for_unquantized_readers(graph):
    """Readers of a Q/DQ'd activation other than Conv/MatMul/Gemm (residual Adds, Shape, attention math)
    read the float tensor again: ONNX Runtime shares one DQ among all readers of a tensor."""
    for dq in [n for n in graph.nodes if n.op == "DequantizeLinear"]:
        q = dq.inputs[0].inputs[0] if dq.inputs[0].inputs else None
        if q is None or q.op != "QuantizeLinear":
            continue  # a weight
        source, rounded = q.inputs[0], dq.outputs[0]
        for reader in list(rounded.outputs):
            if reader.op not in QUANTIZED_OPS:
                for slot, t in enumerate(reader.inputs):
                    if t is rounded:
                        reader.inputs[slot] = source
    return graph


def calibration_batches(source, manifest, frames=200, batch=1):
    """Frames from a video file, an image directory or a glob -> [{"images": float32 [B, 3, H, W]}], with
    "image_sizes" [B, 2] where the model takes it.

    Frames are sampled evenly across the source and preprocessed exactly as the runtime does
    (detrt.data.preprocess.Preprocessor from the model's manifest).
    """
    import cv2

    if frames < 1:
        raise InputError(f"--calib-frames {frames}: must be at least 1")
    images = list(_read_frames(source, frames, cv2))
    if not images:
        raise InputError(f"{source}: no readable frames for calibration")
    prep = Preprocessor.from_manifest(manifest)
    batches = []
    for i in range(0, len(images), batch):
        x, transforms = prep(images[i:i + batch])
        batches.append({"images": x, IMAGE_SIZES: image_sizes(transforms)} if manifest.masks_padding else {"images": x})
    return batches


def _read_frames(source, count, cv2):
    path = Path(source)
    if path.is_dir() or any(c in str(source) for c in "*?["):
        import glob

        files = sorted(glob.glob(str(path / "*"))) if path.is_dir() else sorted(glob.glob(str(source)))
        files = [f for f in files if Path(f).suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp")]
        step = max(1, math.ceil(len(files) / count))
        for f in files[::step][:count]:
            image = cv2.imread(f, cv2.IMREAD_COLOR)
            if image is None:
                raise InputError(f"{f}: not a readable image")
            yield image
        return
    if not path.is_file():
        raise InputError(f"{source}: calibration source not found (a video, an image directory or a glob)")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{source}: cannot open as a video")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or count
    wanted = set(np.linspace(0, max(total - 1, 0), num=min(count, max(total, 1))).round().astype(int).tolist())
    index = 0
    while wanted:
        ok, frame = cap.read()
        if not ok:
            break
        if index in wanted:
            wanted.discard(index)
            yield frame
        index += 1
    cap.release()


AP_DROP_MAX = 1.0  # AP points (percent) the INT8 model may lose against FP32 (issue 5)
MR2_RISE_MAX = 1.5  # MR-2 points it may gain


def int8_accuracy_gates(gt, fp32_detections, int8_detections):
    """The INT8 gates on one validation set: AP drop <= 1.0 and MR-2 rise <= 1.5 (points, i.e. percent).

    gt: list[GroundTruth]; *_detections: detections of the FP32 and the INT8 model on the same images, as
    detrt.eval.crowdhuman.evaluate takes them. Returns the figures and `passed`.
    """
    fp32, int8 = evaluate(gt, fp32_detections), evaluate(gt, int8_detections)
    ap_drop = 100.0 * (fp32["AP"] - int8["AP"])
    mr2_rise = 100.0 * (int8["MR2"] - fp32["MR2"])
    return {"AP_fp32": fp32["AP"], "AP_int8": int8["AP"], "AP_drop": ap_drop,
            "MR2_fp32": fp32["MR2"], "MR2_int8": int8["MR2"], "MR2_rise": mr2_rise,
            "passed": bool(ap_drop <= AP_DROP_MAX and mr2_rise <= MR2_RISE_MAX)}
