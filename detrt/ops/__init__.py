"""The two special ops of detrt, every face of them in one place, as plugins/ is for the native code
(semantics: docs/ops.md).

    from detrt.ops import ms_deform_attn, dcg_neighbors   # torch tensors in and out

msda.py and dcg.py: the references and torch custom ops; cpu.py: the compiled CPU kernels on numpy;
ort.py: the ONNX Runtime custom ops; tensorrt.py: the TensorRT plugin library and the TensorRT/GPU probe;
names.py: the op names; box_ops.py: the torch box math the references use.

Attributes resolve lazily so that the torch-free faces (cpu, ort, tensorrt, names), which the runtime
uses, import without importing torch.
"""

__all__ = ["ms_deform_attn", "dcg_neighbors"]


def __getattr__(name):
    if name == "ms_deform_attn":
        from detrt.ops.msda import ms_deform_attn

        return ms_deform_attn
    if name == "dcg_neighbors":
        from detrt.ops.dcg import dcg_neighbors

        return dcg_neighbors
    raise AttributeError(f"module 'detrt.ops' has no attribute {name!r}")
