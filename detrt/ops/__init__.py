"""The two special ops of detrt, one home each (semantics: docs/ops.md).

    from detrt.ops import ms_deform_attn, dcg_neighbors   # torch tensors in and out

Attributes resolve lazily so that `detrt.ops.cpu` (numpy access to the compiled kernels, used by
the torch-free runtime) can be imported without importing torch.
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
