"""PyTorch eager as a backend, for benchmarks only: the baseline users have before deploying.

    be = TorchBackend.from_checkpoint("runs/tiny")          # checkpoint.safetensors + checkpoint.json
    out = be.infer(images)                                  # {"scores", "labels", "boxes"}, as the export

Same interface as the runtime backends (`detrt.runtime.backend.Backend`: infer/submit/warmup/max_batch/
input_shape), and the same outputs as the exported graph with in-graph postprocessing: the model is
wrapped in `detrt.compile.export.ExportWrapper`, so PyTorch and ONNX Runtime results compare one to one.
The checkpoint is loaded by `detrt.models.checkpoint.model_from_checkpoint` (safetensors, no pickle).
Needs the [train] extra (torch); detrt/runtime never imports this module.

Threads: `torch.set_num_threads(threads)` is process-wide; the benchmark sets it once for the run.
Device: "cpu", or "cuda" where torch sees a GPU.
"""

from pathlib import Path

import numpy as np

from detrt.errors import InputError
from detrt.manifest import INPUTS, Manifest, sha256_file
from detrt.models.checkpoint import WEIGHTS, model_from_checkpoint
from detrt.optional import require
from detrt.runtime.base import Backend

TORCH_PREFIX = "torch:"


def is_checkpoint(spec):
    """True for `torch:PATH`, a directory holding checkpoint.safetensors, or a .safetensors file."""
    text = str(spec)
    if text.startswith(TORCH_PREFIX):
        return True
    path = Path(text)
    return path.suffix == ".safetensors" or (path.is_dir() and (path / "checkpoint.safetensors").is_file())


class TorchBackend(Backend):
    """A DH-DETR / Deformable DETR model in eval mode, run eagerly (no export, no compilation)."""

    name = "torch"

    def __init__(self, model, cfg, artifact, max_batch=8, input_size=None, threads=None, device="cpu", topk=None):
        torch = require("torch", "a PyTorch checkpoint")
        from detrt.compile.export import ExportWrapper

        self.torch = torch
        input_size = tuple(input_size or cfg.input_size)
        weights = Path(artifact)
        digest = sha256_file(weights) if weights.is_file() else "0" * 64
        num_select = topk or cfg.num_select
        manifest = Manifest.for_config(cfg, input_size=input_size, onnx_sha256=digest, output_format="topk",
                                       precision="fp32", form="portable", max_batch=int(max_batch),
                                       parent=str(artifact), num_select=num_select, inputs=INPUTS[0])
        manifest.validate(f"{artifact}")
        super().__init__(artifact, manifest)
        if threads:
            torch.set_num_threads(int(threads))
        self.threads = torch.get_num_threads()
        if device == "cuda" and not torch.cuda.is_available():
            raise InputError(f"{artifact}: device cuda requested, but torch sees no GPU")
        self.device = torch.device(device)
        self.wrapper = ExportWrapper(model, postprocess=True, topk=num_select, score_floor=cfg.score_floor)
        self.wrapper = self.wrapper.eval().to(self.device)

    @classmethod
    def from_checkpoint(cls, spec, **kwargs):
        """`torch:PATH`, a checkpoint directory, or its .safetensors/.json -> TorchBackend."""
        require("torch", "a PyTorch checkpoint")
        text = str(spec)
        path = Path(text[len(TORCH_PREFIX):] if text.startswith(TORCH_PREFIX) else text)
        if not path.exists():
            raise InputError(f"{path}: no such checkpoint (a directory with {WEIGHTS}, or a .safetensors)")
        model, cfg = model_from_checkpoint(path)
        weights = path / WEIGHTS if path.is_dir() else path.with_suffix(".safetensors")
        be = cls(model, cfg, weights, **kwargs)
        be.artifact = path
        return be

    @property
    def output_names(self):
        return ("scores", "labels", "boxes")

    def _run(self, feed):
        torch = self.torch
        with torch.inference_mode():
            x, sizes = (torch.from_numpy(feed[n]).to(self.device) for n in self.input_names)
            scores, labels, boxes = self.wrapper(x, sizes)
            out = {"scores": scores, "labels": labels, "boxes": boxes}
            return {k: np.asarray(v.cpu().numpy()) for k, v in out.items()}  # .cpu() waits for a GPU
