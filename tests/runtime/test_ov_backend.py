"""The OpenVINO artifact (detrt build --backend openvino) and backend on probe models: same outputs as ONNX Runtime,
bf16 on a CPU without it, artifacts for another OpenVINO or with changed weights refused with the rebuild command,
the accuracy gate and `--backend auto` picking the fastest gated sibling."""

import json

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("onnx")

from detrt.cli import main  # noqa: E402
from detrt.compile.build import build  # noqa: E402
from detrt.errors import InputError  # noqa: E402
from detrt.manifest import load_manifest, manifest_path  # noqa: E402
from detrt.runtime import ov_backend  # noqa: E402
from detrt.runtime.backend import open_backend  # noqa: E402
from tests.helpers.probe_models import make_topk_model  # noqa: E402


@pytest.fixture
def models(tmp_path):
    """(probe.onnx, probe.xml built from it)."""
    src = tmp_path / "probe.onnx"
    make_topk_model(src, gain=2.0, bias=[1.0, 0.0, -1.0], max_batch=4)
    build(src, tmp_path / "probe.xml", backend="openvino", log=None)
    return src, tmp_path / "probe.xml"


def frames():
    return np.stack([np.full((3, 64, 96), v, np.float32) for v in (0.0, 0.5, -1.0)])


def test_runs_like_onnxruntime(models):
    src, xml = models
    m = load_manifest(xml)
    assert (m.precision, m.form, m.parent, m.max_batch) == ("fp32", "plugin", "probe.onnx", 4)
    assert m.openvino_version and xml.with_suffix(".bin").is_file()
    with open_backend(src, threads=1) as ort_be, open_backend(xml, threads=1) as ov_be:
        assert ov_be.name == "openvino" and ov_be.input_shape == (4, 3, 64, 96)
        want, got = ort_be.infer(frames()), ov_be.infer(frames())
    for name in ("scores", "labels", "boxes"):
        assert got[name].dtype == want[name].dtype
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6)
    assert got["scores"].std() > 0.1  # the frames give different scores


def test_bf16_on_a_cpu_without_bf16_runs_f32_and_says_so(tmp_path, models, monkeypatch):
    src, _ = models
    build(src, tmp_path / "probe.bf16.xml", precision="bf16", backend="openvino", log=None)
    monkeypatch.setattr(ov_backend, "cpu_has_bf16", lambda core: False)
    notices = []
    with open_backend(tmp_path / "probe.bf16.xml", notice=notices.append) as be:
        assert be.inference_precision == "f32"
        be.infer(frames())
    assert any("probe.bf16.xml: this CPU has no bf16" in n and "running in f32" in n for n in notices), notices


def test_changed_or_missing_weights_refused_with_the_rebuild_command(models):
    _, xml = models
    weights = xml.with_suffix(".bin")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    rebuild = r"rebuild with: detrt build .*probe\.onnx --backend openvino --precision fp32 -o .*probe\.xml"
    with pytest.raises(InputError, match=r"probe\.bin: sha256 .* does not match its manifest.*" + rebuild):
        open_backend(xml)
    weights.unlink()
    with pytest.raises(InputError, match=r"probe\.bin: missing, the weights of .*probe\.xml; " + rebuild):
        open_backend(xml)


def test_an_artifact_another_openvino_cannot_load_names_both_versions(models):
    _, xml = models
    d = json.loads(manifest_path(xml).read_text())
    d["openvino_version"] = "2023.0.0"
    manifest_path(xml).write_text(json.dumps(d))
    notices = []
    with open_backend(xml, notice=notices.append):  # one that loads runs, and the user is told
        pass
    assert any("probe.xml: written by OpenVINO 2023.0.0, running on OpenVINO" in n for n in notices), notices
    xml.write_text("<net name='from another OpenVINO' version='99'></net>")
    with pytest.raises(InputError, match=r"probe\.xml: written by OpenVINO 2023\.0\.0, OpenVINO 20\d\d\.\d+\.\d+ "
                                         r"cannot load it \(.*\); rebuild with: detrt build .*--backend openvino"):
        open_backend(xml, verify=False)


def test_an_extension_compiled_for_another_openvino_is_refused(monkeypatch):
    import openvino

    from detrt.ops import openvino as ops_openvino

    monkeypatch.setattr(ops_openvino, "_cores", {})
    monkeypatch.setattr(openvino, "get_version", lambda: "2099.1.0-1-abc")
    with pytest.raises(InputError, match=r"libdetrt_openvino\.so: compiled against OpenVINO 20\d\d\.\d+\.\d+, this "
                                         r"is OpenVINO 2099\.1\.0; rebuild detrt"):
        ops_openvino.openvino_core()


def _gate(xml, passed, ms):
    d = json.loads(manifest_path(xml).read_text())
    d["gate"] = {"images": 10, "ap": 0.5, "mr2": 0.6, "ap_delta": -0.001, "mr2_delta": 0.002, "ms_per_image": ms,
                 "reference_ms_per_image": 2.0, "passed": passed}
    manifest_path(xml).write_text(json.dumps(d))


def test_auto_runs_the_fastest_sibling_whose_gate_passed(tmp_path, models):
    src, xml = models
    build(src, tmp_path / "probe.bf16.xml", precision="bf16", backend="openvino", log=None)
    _gate(xml, True, 1.5)
    _gate(tmp_path / "probe.bf16.xml", False, 1.0)  # faster, but failed its gate
    notices = []
    with open_backend(src, notice=notices.append) as be:
        assert be.name == "openvino" and be.artifact == xml
    assert "probe.xml (fp32), built from probe.onnx, passed its accuracy gate" in notices[0]
    with open_backend(src, "onnxruntime") as be, open_backend(src, gated=False) as be2:
        assert be.name == be2.name == "onnxruntime"  # only auto picks, and benchmarks measure what they are given
    _gate(xml, True, 2.5)  # slower than the FP32 model in the same gate run
    with open_backend(src) as be:
        assert be.name == "onnxruntime"


def test_build_with_gate_records_it(tmp_path, models, capsys):
    from detrt.data.synthetic_set import synthesize

    src, _ = models
    synthesize(tmp_path / "val", num=3, seed=2, progress=False)
    out = tmp_path / "gated.xml"
    assert main(["build", str(src), "--backend", "openvino", "-o", str(out), "--gate", str(tmp_path / "val")]) == 0
    gate = load_manifest(out).gate
    assert gate["images"] == 3 and gate["passed"] and gate["ap_delta"] == 0 and gate["mr2_delta"] == 0
    assert gate["ms_per_image"] > 0 and gate["reference_ms_per_image"] > 0
    assert "accuracy gate passed" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--backend", "openvino", "-o", "{tmp}/m.onnx"], "--backend openvino writes OpenVINO IR"),
    (["--backend", "onnxruntime", "--precision", "bf16", "-o", "{tmp}/m.onnx"],
     "--precision 'bf16': --backend onnxruntime builds fp32, int8"),
    (["--backend", "openvino", "--precision", "fp16", "-o", "{tmp}/m.xml"],
     "--backend openvino builds fp32, bf16, mixed, int8"),
    (["--backend", "tensorrt", "--gate", "{tmp}", "-o", "{tmp}/m.engine"], "--gate: CPU backends only"),
    (["--backend", "openvino", "--gate", "{tmp}", "-o", "{tmp}/m.xml"], r"--gate .*: expected .*annotations\.odgt"),
])
def test_build_refusals(tmp_path, models, capsys, argv, message):
    src, _ = models
    assert main(["build", str(src), *(a.format(tmp=tmp_path) for a in argv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("detrt build: error: ") and message.split(".*")[0].replace("\\", "") in err, err


def test_mixed_precision_needs_a_backbone_scope(tmp_path, models, monkeypatch):
    src, _ = models
    build(src, tmp_path / "probe.mixed.xml", precision="mixed", backend="openvino", log=None)
    monkeypatch.setattr(ov_backend, "cpu_has_bf16", lambda core: True)
    with pytest.raises(InputError, match=r"probe\.mixed\.xml: --precision mixed, but the model has no backbone scope"):
        open_backend(tmp_path / "probe.mixed.xml")
    monkeypatch.setattr(ov_backend, "cpu_has_bf16", lambda core: False)  # where bf16 is absent it all runs f32
    with open_backend(tmp_path / "probe.mixed.xml") as be:
        assert be.inference_precision == "f32" and be.backbone is None


def test_doctor_names_openvino_and_its_extension():
    import openvino

    from detrt.doctor import report
    from detrt.ops.openvino import openvino_release

    line = dict(report())["openvino"]
    assert line.startswith(f"{openvino_release(openvino.get_version())} with detrt's extension"), line
