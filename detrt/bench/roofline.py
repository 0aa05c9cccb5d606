"""Roofline: a model's FLOPs and bytes counted from its ONNX graph, against this machine's measured peak.

    cost = count_graph("model.onnx", batch=4)          # GraphCost
    peak = measure_peak()                               # {"matmul_gflops": ..., "copy_gbps": ...}
    print(roofline_line(cost, peak, seconds=0.120))

What is counted (top-level graph nodes, shapes from ONNX shape inference at the given batch):
Shapes come from ONNX shape inference (with data propagation); what it leaves unknown is read from one
ONNX Runtime run on random input at that batch.
- FLOPs, a multiply-add = 2:
  Conv / ConvInteger / QLinearConv / FusedConv: 2 * N * Cout * Hout * Wout * (Cin / group) * prod(kernel);
  ConvTranspose: 2 * N * Cin * Hin * Win * (Cout / group) * prod(kernel);
  MatMul / MatMulInteger / QLinearMatMul and ONNX Runtime's fused FusedMatMul / MatMulIntegerToFloat /
  DynamicQuantizeMatMul: 2 * prod(output) * K; Gemm / FusedGemm / QGemm: 2 * M * N * K;
  MSDeformAttn (detrt::, detrt.portable::, NVIDIA's MultiscaleDeformableAttnPlugin_TRT):
  10 per (n, q, m, l, p, d): 4 bilinear taps x (mul + add) and the attention weight (mul + add),
  as benchmarks/ops_cpu.py counts it; GridSample: 8 per output element for bilinear (2 nearest, 32 cubic);
  the portable MSDA (GridSample per level, then an attention-weighted sum) so counts 8 of the 10 once ONNX
  Runtime's optimizer has inlined it (the weighted sum is elementwise, in the bytes).
  Not counted: elementwise ops, normalizations, softmax, DCGNeighbors, TopK (small next to the above,
  and memory-bound: they are in the bytes).
- Bytes: `compulsory` = graph inputs + outputs + initializers (weights), each read or written once: the
  least any implementation moves, which the roofline bound uses; `unfused` = the inputs and outputs of
  every node, what an implementation running each node separately would move (a realistic upper end).
The peak is measured, not looked up: a float32 matmul (the better of numpy's BLAS and ONNX Runtime's
MatMul) and a large array copy (read + write counted). An INT8 model is compared with the float32 peak, so it may
exceed 100%.
"""

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import onnxruntime as ort

from detrt.errors import InputError
from detrt.ops.names import DCG_OP, DETRT_DOMAIN, MSDA_OP, NVIDIA_DOMAIN, NVIDIA_MSDA_OP
from detrt.optional import require

MSDA_OPS = (MSDA_OP, NVIDIA_MSDA_OP)
CUSTOM_DOMAINS = (DETRT_DOMAIN, NVIDIA_DOMAIN, "")  # where the custom-op shape rules below apply (portable is a function)
GRIDSAMPLE_FLOPS = {"bilinear": 8, "linear": 8, "nearest": 2, "bicubic": 32, "cubic": 32}


@dataclass
class GraphCost:
    """FLOPs and bytes of one graph at one batch size (see the module docstring for what is counted)."""

    batch: int
    flops: float = 0.0
    bytes_compulsory: float = 0.0
    bytes_unfused: float = 0.0
    weights_bytes: float = 0.0
    by_op: dict = field(default_factory=dict)  # op type -> {"count": n, "flops": f}
    unknown_shapes: list = field(default_factory=list)  # counted nodes whose shapes stayed unknown

    def to_dict(self):
        return asdict(self)


def _onnx():
    """onnx (detrt[compile]), which counting needs and the peaks do without; InputError naming the extra."""
    return require("onnx", "the roofline")


def _load(model):
    onnx = _onnx()
    if isinstance(model, onnx.ModelProto):
        m = onnx.ModelProto()
        m.CopyFrom(model)
        return m
    return onnx.load(str(model), load_external_data=False)


def _dims(vi):
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim]


def _known(shape):
    return shape is not None and None not in shape


def _custom_output_shapes(node, shapes):
    """Output shapes of the custom ops that ONNX shape inference cannot see into, or None."""
    ins = [shapes.get(x) for x in node.input]
    if node.op_type in MSDA_OPS and len(ins) >= 4 and _known(ins[0]) and _known(ins[3]):
        n, _, m, d = ins[0]
        lq = ins[3][1]
        return [[n, lq, m, d] if node.op_type != MSDA_OP else [n, lq, m * d]]
    if node.op_type == DCG_OP and _known(ins[0]):
        k = next((a.i for a in node.attribute if a.name == "k"), None)
        if k is not None:
            return [[ins[0][0], ins[0][1], k]] * 2
    return None


def infer_shapes(model, batch, input_size=None):
    """{tensor name: [dims] or None} and {name: elem_type}, for the graph with its batch fixed to `batch`."""
    onnx = _onnx()
    helper, shape_inference = onnx.helper, onnx.shape_inference
    inp = model.graph.input[0].type.tensor_type.shape.dim
    symbol = inp[0].dim_param if inp[0].HasField("dim_param") else None
    inp[0].ClearField("dim_param")
    inp[0].dim_value = int(batch)
    for vi in model.graph.input[1:]:  # the batch symbol of the first input, wherever else it appears
        for d in vi.type.tensor_type.shape.dim:
            if symbol and d.dim_param == symbol:
                d.ClearField("dim_param")
                d.dim_value = int(batch)
    if input_size is not None:
        for d, v in zip(inp[2:], input_size):
            d.ClearField("dim_param")
            d.dim_value = int(v)
    inits = {i.name for i in model.graph.initializer}
    custom = [n for n in model.graph.node if n.op_type in MSDA_OPS + (DCG_OP,)
              and n.domain in CUSTOM_DOMAINS + ("",)]
    for _ in range(len(custom) + 2):  # each pass resolves at least one more custom node along the chain
        inferred = shape_inference.infer_shapes(model, data_prop=True)
        g = inferred.graph
        shapes, types = {}, {}
        for vi in [*g.input, *g.value_info, *g.output]:
            shapes[vi.name] = _dims(vi)
            types[vi.name] = vi.type.tensor_type.elem_type
        for t in g.initializer:
            shapes[t.name], types[t.name] = list(t.dims), t.data_type
        added = False
        for node in custom:
            if all(_known(shapes.get(o)) for o in node.output if o):
                continue
            outs = _custom_output_shapes(node, shapes)
            if outs is None:
                continue
            for name, dims in zip(node.output, outs):
                elem = (onnx.TensorProto.INT32 if node.op_type == DCG_OP
                        else types.get(node.input[0], onnx.TensorProto.FLOAT))
                keep = [vi for vi in model.graph.value_info if vi.name != name]
                del model.graph.value_info[:]
                model.graph.value_info.extend(keep)
                model.graph.value_info.append(helper.make_tensor_value_info(name, elem, dims))
                added = True
        if not added:
            break
    return shapes, types, inits


def shapes_from_onnxruntime(model, names, types, batch, input_size=None):
    """Shapes of `names` (top-level tensors) from one ONNX Runtime run on random input at `batch`.

    For what ONNX shape inference leaves unknown (data propagation stops at Where/Equal, so e.g. an Expand
    to a computed shape is unknown at batch 1). Plugin-form graphs run through detrt's CPU kernels.
    Returns {} when the graph does not run here (e.g. a TensorRT-only plugin).
    """
    onnx = _onnx()
    helper = onnx.helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    outputs = {o.name for o in m.graph.output}
    for name in names:
        if name not in outputs and types.get(name):
            m.graph.output.append(helper.make_tensor_value_info(name, types[name], None))
    rng = np.random.default_rng(0)
    inits = {t.name for t in m.graph.initializer}
    feed = {}
    for vi in m.graph.input:  # the batch is fixed already (infer_shapes); random values of each input's type
        if vi.name in inits:
            continue
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if vi.name == m.graph.input[0].name:
            dims = [int(batch), *(dims[1:2] or [3]), *(input_size or dims[2:])]
        dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        feed[vi.name] = np.asarray(rng.standard_normal(dims) * (1 if dtype.kind == "f" else 10)).astype(dtype)
    try:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if any(n.domain == DETRT_DOMAIN for n in m.graph.node):
            from detrt.ops.ort import InferenceSession
        else:
            InferenceSession = ort.InferenceSession
        sess = InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        wanted = [o.name for o in sess.get_outputs() if o.name in names]
        values = sess.run(wanted, feed)
    except Exception:  # noqa: BLE001 - not runnable here: the counts keep what inference found
        return {}
    return {n: list(v.shape) for n, v in zip(wanted, values)}


def _nbytes(name, shapes, types):
    helper = _onnx().helper
    dims = shapes.get(name)
    if not _known(dims) or name not in types or not types[name]:
        return None
    try:
        size = np.dtype(helper.tensor_dtype_to_np_dtype(types[name])).itemsize
    except (KeyError, TypeError):
        return None
    return float(np.prod(dims, dtype=np.float64)) * size


def _attr(node, name, default=None):
    helper = _onnx().helper
    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def node_flops(node, shapes):
    """FLOPs of one node by the rules in the module docstring; 0 for uncounted ops; None if shapes unknown."""
    op = node.op_type
    s = [shapes.get(x) if x else None for x in node.input]
    out = shapes.get(node.output[0]) if node.output else None
    if op in ("Conv", "ConvInteger", "QLinearConv", "FusedConv"):
        w = s[3] if op == "QLinearConv" else s[1]
        if not (_known(out) and _known(w)):
            return None
        return 2.0 * np.prod(out, dtype=np.float64) * np.prod(w[1:], dtype=np.float64)
    if op == "ConvTranspose":
        x, w = s[0], s[1]
        if not (_known(x) and _known(w)):
            return None
        return 2.0 * np.prod(x, dtype=np.float64) * np.prod(w[1:], dtype=np.float64)
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul", "MatMulIntegerToFloat",
              "DynamicQuantizeMatMul"):
        a = s[0]
        if not (_known(out) and _known(a)):
            return None
        k = a[-2] if _attr(node, "transA", 0) and len(a) > 1 else a[-1]
        return 2.0 * np.prod(out, dtype=np.float64) * k
    if op in ("Gemm", "FusedGemm", "QGemm"):
        a = s[0]
        if not (_known(out) and _known(a)):
            return None
        k = a[0] if _attr(node, "transA", 0) else a[-1]
        return 2.0 * np.prod(out, dtype=np.float64) * k
    if op in MSDA_OPS:
        value, loc = s[0], s[3] if len(s) > 3 else None
        if not (_known(value) and _known(loc)):
            return None
        n, lq, m, levels, points = loc[:5]
        return 10.0 * n * lq * m * levels * points * value[3]
    if op == "GridSample":
        if not _known(out):
            return None
        return GRIDSAMPLE_FLOPS.get(_attr(node, "mode", "bilinear"), 8) * np.prod(out, dtype=np.float64)
    return 0.0


def count_graph(model, batch=1, input_size=None):
    """GraphCost of an ONNX model (path or ModelProto) at `batch` (input H, W from the graph or input_size)."""
    model = _load(model)
    shapes, types, inits = infer_shapes(model, batch, input_size)
    g = model.graph
    unknown = [o for n in g.node for o in n.output if o and not _known(shapes.get(o))]
    if unknown:
        shapes.update(shapes_from_onnxruntime(model, unknown, types, batch, input_size))
    cost = GraphCost(batch=int(batch))
    for t in g.initializer:
        cost.weights_bytes += _nbytes(t.name, shapes, types) or 0.0
    io = [vi.name for vi in [*g.input, *g.output] if vi.name not in inits]
    cost.bytes_compulsory = cost.weights_bytes + sum(_nbytes(n, shapes, types) or 0.0 for n in io)
    for node in g.node:
        f = node_flops(node, shapes)
        if f is None:
            cost.unknown_shapes.append(f"{node.op_type} {node.name}")
            f = 0.0
        if f:
            row = cost.by_op.setdefault(node.op_type, {"count": 0, "flops": 0.0})
            row["count"] += 1
            row["flops"] += float(f)
            cost.flops += float(f)
        cost.bytes_unfused += sum(_nbytes(x, shapes, types) or 0.0 for x in [*node.input, *node.output] if x)
    return cost


def _best(fn, seconds, min_runs=3):
    best, start, runs = float("inf"), time.perf_counter(), 0
    while runs < min_runs or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return best


def _ort_matmul(n, threads):
    """A one-node ONNX Runtime MatMul session (ORT's MLAS GEMM is what its Conv/MatMul nodes use)."""
    onnx = _onnx()
    helper, TensorProto = onnx.helper, onnx.TensorProto
    vi = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "abc"]
    g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "peak", vi[:2], vi[2:])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def measure_peak(seconds=2.0, n=2048, copy_mb=128, threads=None):
    """This machine's measured CPU peak: float32 matmul GFLOP/s and copy GB/s (best of repeats).

    The matmul peak is the better of numpy's BLAS (its default threads) and ONNX Runtime's MatMul on
    `threads` threads (its GEMM is often twice OpenBLAS's here); both figures are kept.
    """
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    c = np.empty((n, n), np.float32)
    flop = 2 * n**3
    out = {"device": "cpu", "numpy_matmul_gflops": flop / _best(lambda: np.matmul(a, b, out=c), seconds / 3) / 1e9}
    try:
        sess = _ort_matmul(n, threads)
        feed = {"a": a, "b": b}
        out["onnxruntime_matmul_gflops"] = flop / _best(lambda: sess.run(None, feed), seconds / 3) / 1e9
    except InputError:  # onnx (the [compile] extra) absent: numpy alone
        pass
    out["matmul_gflops"] = max(v for k, v in out.items() if k.endswith("_matmul_gflops"))
    src = np.ones(copy_mb * 2**20 // 4, np.float32)
    dst = np.empty_like(src)
    out["copy_gbps"] = 2 * src.nbytes / _best(lambda: np.copyto(dst, src), seconds / 3) / 1e9
    out["how"] = (f"float32 {n}x{n} matmul, best of numpy's BLAS and ONNX Runtime ({threads or 'default'} threads); "
                  f"{copy_mb} MiB numpy copy, read + write counted")
    return out


def measure_gpu_peak(seconds=2.0, n=8192, copy_mb=1024):
    """The GPU's measured peak through torch (FP32 and FP16 matmul, device copy), or None without CUDA."""
    try:  # not require: without PyTorch there is no GPU peak, and the roofline goes on without it
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    dev = torch.device("cuda")
    out = {"device": torch.cuda.get_device_name(0)}
    for name, dtype in (("matmul_gflops", torch.float32), ("matmul_fp16_gflops", torch.float16)):
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)

        def mm():
            torch.matmul(a, b)
            torch.cuda.synchronize()

        out[name] = 2 * n**3 / _best(mm, seconds / 3) / 1e9
    src = torch.empty(copy_mb * 2**20, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)

    def cp():
        dst.copy_(src)
        torch.cuda.synchronize()

    out["copy_gbps"] = 2 * src.numel() / _best(cp, seconds / 3) / 1e9
    out["how"] = f"torch {n}x{n} matmul FP32 (TF32 as torch defaults) and FP16; {copy_mb} MiB device copy"
    return out


def roofline(cost, peak, seconds):
    """The bound and where a measured time per call sits against it (dict)."""
    t_compute = cost.flops / (peak["matmul_gflops"] * 1e9)
    t_memory = cost.bytes_compulsory / (peak["copy_gbps"] * 1e9)
    bound = max(t_compute, t_memory)
    return {"gflop": cost.flops / 1e9, "mb_compulsory": cost.bytes_compulsory / 1e6,
            "mb_unfused": cost.bytes_unfused / 1e6, "bound_ms": bound * 1e3,
            "limited_by": "compute" if t_compute >= t_memory else "memory",
            "achieved_gflops": cost.flops / seconds / 1e9 if seconds else None,
            "fraction_of_roof": bound / seconds if seconds else None}


def roofline_line(cost, peak, seconds):
    """'2.84 GFLOP, 46 MB (1.9 GB unfused) | peak 96 GFLOP/s, 11 GB/s | bound 29.6 ms (compute) | 31% of roof'."""
    r = roofline(cost, peak, seconds)
    return (f"{r['gflop']:.3g} GFLOP, {_mb(r['mb_compulsory'])} ({_mb(r['mb_unfused'])} unfused) | peak "
            f"{peak['matmul_gflops']:.0f} GFLOP/s, {peak['copy_gbps']:.1f} GB/s | bound {r['bound_ms']:.3g} ms "
            f"({r['limited_by']}) | measured {seconds * 1e3:.3g} ms = {100 * r['fraction_of_roof']:.0f}% of roof, "
            f"{r['achieved_gflops']:.1f} GFLOP/s")


def _mb(mb):
    return f"{mb / 1e3:.2f} GB" if mb >= 1e3 else f"{mb:.3g} MB"
