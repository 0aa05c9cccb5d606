"""Serving on NVIDIA Triton Inference Server: a model repository from an artifact (repository), the pre- and
post-processing steps its Python-backend models run (steps), and `detrt serve` through PyTriton (server).

The client side, `detrt run --server`, is a runtime backend: detrt.runtime.triton_backend.
"""
