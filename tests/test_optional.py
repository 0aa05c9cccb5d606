"""A missing optional package, where detrt imports it lazily through detrt.optional.require: one InputError that
says what needs it and which pip extra brings it, never a ModuleNotFoundError from inside the call; and doctor's
verb lines, read from the same table of extras."""

import sys

import numpy as np
import pytest

from detrt import doctor
from detrt.bench.roofline import count_graph, measure_peak
from detrt.cli import VERBS, verb_name
from detrt.errors import InputError
from detrt.models.backbone import read_state_dict
from detrt.ops.tensorrt import gpu_properties
from detrt.optional import extra_for
from detrt.training.transforms import to_model_target


class Absent:
    """A meta path finder for which `package` is not installed: importing it, or any of its modules, raises
    ModuleNotFoundError naming `package`, as Python does for a package that is absent."""

    def __init__(self, package):
        self.package = package

    def find_spec(self, name, path=None, target=None):
        if name == self.package or name.startswith(self.package + "."):
            raise ModuleNotFoundError(f"No module named {self.package!r}", name=self.package)
        return None


def hide(monkeypatch, package):
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [Absent(package), *sys.meta_path])


def test_extra_for_names_the_extra_of_a_top_level_module_or_none():
    assert extra_for("safetensors.torch") == "train" and extra_for("onnx_graphsurgeon") == "compile"
    assert extra_for("cuda.bindings.runtime") == "trt" and extra_for("numpy") is None


def test_training_targets_without_torch(monkeypatch):
    target = {"boxes": np.array([[1.0, 2.0, 5.0, 6.0]]), "ignore": np.zeros((0, 4))}
    hide(monkeypatch, "torch")
    with pytest.raises(InputError) as e:
        to_model_target(target, (8, 8))
    assert str(e.value) == "training targets needs torch: pip install 'detrt[train]'"


def test_safetensors_backbone_without_safetensors_names_the_file(monkeypatch, tmp_path):
    path = tmp_path / "r18.safetensors"
    path.write_bytes(b"not read: the package is missing first")
    hide(monkeypatch, "safetensors")
    with pytest.raises(InputError) as e:
        read_state_dict(path)
    assert str(e.value) == f"{path} needs safetensors: pip install 'detrt[train]'"  # not "cannot read weights"


def test_roofline_without_onnx_counts_nothing_and_measures_the_numpy_peak(monkeypatch, tmp_path):
    hide(monkeypatch, "onnx")
    with pytest.raises(InputError, match=r"^the roofline needs onnx: pip install 'detrt\[compile\]'$"):
        count_graph(tmp_path / "model.onnx", 1)
    peak = measure_peak(seconds=0.05, n=64, copy_mb=1, threads=1)
    assert "onnxruntime_matmul_gflops" not in peak and peak["matmul_gflops"] == peak["numpy_matmul_gflops"] > 0


def test_cuda_python_missing_names_the_extra(monkeypatch):
    hide(monkeypatch, "cuda")
    with pytest.raises(InputError, match=r"^reading the CUDA device needs cuda: pip install 'detrt\[trt\]'$"):
        gpu_properties()


@pytest.mark.parametrize("package, runnable, stopped", [
    ("onnx_graphsurgeon", "run, synth, eval, bench, train, export-triton, doctor",
     "export (needs detrt[train,compile]: onnx_graphsurgeon); surgery (needs detrt[compile]: onnx_graphsurgeon); "
     "build (needs detrt[compile]: onnx_graphsurgeon); serve (needs detrt[serve]: pytriton); "
     "demo (needs detrt[train,compile]: onnx_graphsurgeon)"),
    # torch is detrt[train]'s: surgery and build (detrt[compile] alone) run without it
    ("torch", "run, synth, eval, bench, surgery, build, export-triton, doctor",
     "train (needs detrt[train]: torch); export (needs detrt[train,compile]: torch); "
     "serve (needs detrt[serve]: pytriton); demo (needs detrt[train,compile]: torch)"),
])
def test_doctor_names_the_verbs_an_absent_package_stops(monkeypatch, package, runnable, stopped):
    """doctor reads which modules each extra brings from detrt.optional.EXTRAS and each verb's extras."""
    verbs = [(verb_name(fn), extra) for fn, _, extra in VERBS]
    hide(monkeypatch, package)
    lines = dict(doctor.report(verbs=verbs))
    assert (lines["runnable verbs"], lines["not runnable"]) == (runnable, stopped)
