"""`detrt bench` end to end on tiny probe models: interleaved results, ratios, real frames, bad input (exit 2)."""

import json

import cv2
import numpy as np
import pytest

from detrt.bench.report import format_table, update_results_md
from detrt.bench.run import run_bench
from detrt.cli import main
from detrt.data.preprocess import Preprocessor
from detrt.errors import InputError
from detrt.manifest import load_manifest
from detrt.runtime.ort_backend import OrtBackend
from tests.helpers.probe_models import gradient_frames, make_topk_model


@pytest.fixture
def models(tmp_path):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    make_topk_model(a, max_batch=4)
    make_topk_model(b, max_batch=2, gain=2.0)
    return a, b


@pytest.fixture
def frames_dir(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i, f in enumerate(gradient_frames(6)):
        cv2.imwrite(str(d / f"{i:03d}.png"), f)
    return d


def test_interleaved_results_ratio_and_real_frames(models, frames_dir, monkeypatch):
    seen = []
    real_run = OrtBackend._run
    monkeypatch.setattr(OrtBackend, "_run", lambda self, feed: (seen.append(feed["images"].copy()),
                                                              real_run(self, feed))[1])
    report = run_bench([str(m) for m in models], [1, 2], warmup_s=0.02, duration_s=0.2, frames=str(frames_dir),
                       roofline=False, progress=False, notice=None)
    rows = report["results"]
    assert [(r["artifact"], r["batch"]) for r in rows] == [("a.onnx", 1), ("b.onnx", 1), ("a.onnx", 2), ("b.onnx", 2)]
    for r in rows:
        stride = r["samples_stride"]
        assert r["calls"] > 0 and len(r["samples_ms"]) == -(-r["calls"] // stride) and r["backend"] == "onnxruntime"
        lat = r["latency_ms"]
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert r["calls"] / r["images_per_s"] * r["batch"] >= 0.2  # measured for at least the duration
    for first, other in (rows[0:2], rows[2:4]):
        assert first["vs_first"] == 1.0
        assert other["vs_first"] == pytest.approx(first["latency_ms"]["p50"] / other["latency_ms"]["p50"])
    # inputs: the frames, preprocessed with the artifact's manifest; never zeros
    frames = [cv2.imread(str(p)) for p in sorted(frames_dir.glob("*.png"))]
    want = Preprocessor.from_manifest(load_manifest(models[0]))(frames[:2])[0]
    assert any(x.shape == want.shape and np.array_equal(x, want) for x in seen)
    assert all(np.abs(x).max() > 0.1 for x in seen)
    table = format_table(report)
    assert "vs first" in table and "1.00x" in table
    assert report["device"]["cpu"]["usable_cores"] >= 1 and report["settings"]["frames"].startswith("6 frames")


def test_batch_over_max_names_the_max(models, frames_dir):
    with pytest.raises(InputError, match=r"--batch 4: larger than b.onnx's max batch 2"):
        run_bench([str(m) for m in models], [1, 4], 0.01, 0.1, frames=str(frames_dir), progress=False, notice=None)


def one_line_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_cli_bad_input_exits_2_with_one_line(models, frames_dir, tmp_path, capsys):
    a = str(models[0])
    assert "max batch 4" in one_line_error(capsys, ["bench", a, "--batch", "1,8", "--frames", str(frames_dir)])
    err = one_line_error(capsys, ["bench", a, "--warm-up", "1ms", "--duration", "0.000001", "--frames",
                                  str(frames_dir), "--no-roofline"])
    assert "shorter than one run of a.onnx at batch 1" in err
    assert "no such model file" in one_line_error(capsys, ["bench", str(tmp_path / "missing.onnx")])
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    m = load_manifest(a)
    from detrt.manifest import save_manifest, sha256_file

    m.onnx_sha256 = sha256_file(broken)
    save_manifest(m, broken)
    assert "broken.onnx" in one_line_error(capsys, ["bench", str(broken), "--frames", str(frames_dir)])
    assert "--duration" in one_line_error(capsys, ["bench", a, "--duration", "soon"])
    assert "--threads must be >= 1, got -1" in one_line_error(capsys, ["bench", a, "--threads", "-1"])
    assert "matches no images" in one_line_error(capsys, ["bench", a, "--frames", str(tmp_path / "empty*.png")])


def test_cli_full_run_json_plot_and_synthetic_fallback(models, tmp_path, capsys):
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    assert main(["bench", str(models[0]), str(models[1]), "--batch", "1,2", "--warmUp", "0.02s", "--duration",
                 "0.1s", "--json", str(out_json), "--plot", str(out_png), "--threads", "1"]) == 0
    out, err = capsys.readouterr()
    assert "\r" not in err  # stderr is no terminal (a log): no progress bar redraws
    assert "no --frames given: using" in out and "synthetic crowd video" in out
    assert "vs first" in out and "roofline" in out and "GFLOP" in out
    report = json.loads(out_json.read_text())
    assert len(report["results"]) == 4 and report["peak"]["cpu"]["matmul_gflops"] > 0
    assert report["results"][0]["roofline"]["gflop"] >= 0 and report["settings"]["threads"] == 1
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_warmup_bare_number_is_milliseconds_as_in_trtexec(models, frames_dir, tmp_path, capsys):
    out_json = tmp_path / "r.json"
    assert main(["bench", str(models[0]), "--frames", str(frames_dir), "--warmUp", "200", "--duration", "0.05",
                 "--no-roofline", "--json", str(out_json)]) == 0
    settings = json.loads(out_json.read_text())["settings"]
    assert settings["warmup_s"] == 0.2 and settings["duration_s"] == 0.05
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "a bare number is milliseconds, as in trtexec" in " ".join(capsys.readouterr().out.split())


def test_progress_bar_on_a_terminal(models, frames_dir, terminal_stderr):
    err = terminal_stderr()
    assert main(["bench", str(models[0]), "--frames", str(frames_dir), "--warmUp", "10ms", "--duration", "50ms",
                 "--no-roofline"]) == 0
    assert "benchmarking" in err.getvalue() and "\r" in err.getvalue()


def test_ratio_column_formatting():
    def row(name, batch, p50):
        lat = {"min": p50 / 2, "p50": p50, "p90": p50, "p99": p50, "max": p50 * 2, "mean": p50}
        return {"artifact": name, "backend": "onnxruntime", "precision": "fp32", "batch": batch, "latency_ms": lat,
                "images_per_s": 1e3 * batch / p50, "vs_first": None}

    rows = [row("eager", 1, 40.0), row("fp32.onnx", 1, 20.0), row("int8.onnx", 1, 10.0)]
    for r in rows:
        r["vs_first"] = rows[0]["latency_ms"]["p50"] / r["latency_ms"]["p50"]
    report = {"device": {"cpu": {"model": "X", "usable_cores": 2, "threads_used": 2}, "gpus": [], "jetson": None,
                         "versions": {}},
              "settings": {"frames": "f", "warmup_s": 1, "duration_s": 2}, "results": rows}
    lines = format_table(report).splitlines()
    body = [line for line in lines if line.startswith(("eager", "fp32", "int8"))]
    assert [line.split()[-1] for line in body] == ["1.00x", "2.00x", "4.00x"]


def test_update_results_md_replaces_only_its_section(tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\n## benchmarks/ops_cpu.py: ops\n\nops table\n\n## benchmarks/model.py: old\n\n"
                  "old figures\n\n## benchmarks/pipeline.py: pipe\n\npipe table\n")
    update_results_md(md, "## benchmarks/model.py: new title\n\nnew figures\n")
    text = md.read_text()
    assert "old figures" not in text and "new figures" in text and "## benchmarks/model.py: new title" in text
    assert text.index("ops table") < text.index("new figures") < text.index("pipe table")
    update_results_md(md, "## benchmarks/scaling.py: s\n\nscaling\n")
    assert md.read_text().rstrip().endswith("scaling") and md.read_text().count("## ") == 4


@pytest.mark.parametrize("flag", ["--json", "--plot"])
def test_cli_report_onto_a_full_disk(models, frames_dir, tmp_path, on_full_disk, flag):
    full = tmp_path / "full"
    on_full_disk(["bench", models[0], "--warmUp", "0.01s", "--duration", "0.05s", "--frames", frames_dir,
                  "--no-roofline", flag, full / ("r.json" if flag == "--json" else "r.png")], full)
