"""A real tritonserver (PyTriton's, `detrt serve`) on 127.0.0.1 serving the bundled model's ONNX Runtime artifact:
four streams through `detrt run --server` give the detections of a local run; the server killed and restarted
mid-stream loses and duplicates no frame; missing models, unreachable servers, timeouts and busy ports are one
line each; an export-triton repository loads into the same tritonserver.

The server and its clients run in the serving venv (tests/helpers/serving.py builds it with `make serve-env`).
"""

import json
import subprocess
import time

import numpy as np
import pytest

from detrt.assets import bundled_model_path
from detrt.compile.export import export_checkpoint
from detrt.data.synthetic import SynthConfig
from detrt.data.synthetic_video import write_video
from detrt.serving.process import ServeProcess, free_ports
from detrt.serving.repository import export_triton
from tests.helpers.serving import ROOT, env, serve_env

CFG = SynthConfig(width=384, height=256)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The serving venv's bin, the bundled model exported for ONNX Runtime, and synthetic clips."""
    bin_dir = serve_env()
    tmp = tmp_path_factory.mktemp("triton")
    model = tmp / "model.onnx"
    export_checkpoint(bundled_model_path(), model, form="portable", max_batch=8, log=lambda *a: None)
    clips = []
    for seed, frames in [(1, 10), (2, 10), (3, 10), (4, 10), (5, 16), (6, 16)]:
        write_video(tmp / f"clip{seed}", frames, seed=seed, cfg=CFG, progress=False)
        clips.append(tmp / f"clip{seed}" / "video.mp4")
    return bin_dir, tmp, model, clips


@pytest.fixture(scope="module")
def server(work):
    bin_dir, tmp, model, _ = work
    with ServeProcess(bin_dir / "detrt", model, "--preferred-batch", 4, "--max-queue-delay-us", 5000,
                      log=tmp / "serve.log", env=env(tmp)) as s:
        yield s


def detrt(bin_dir, tmp, *argv, timeout=600):
    """`detrt ARGV` in the serving venv; the CompletedProcess."""
    return subprocess.run([str(bin_dir / "detrt"), *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, env=env(tmp))


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_detections(got, want):
    """Frame by frame: the same frames once each, the same detections within ONNX Runtime's batch tolerance."""
    assert [r["frame"] for r in got] == [r["frame"] for r in want] == list(range(len(want)))
    assert sum(r["count"] for r in want) > 0
    for g, w in zip(got, want):
        assert g["count"] == w["count"], (g["frame"], g["count"], w["count"])
        if w["count"]:
            np.testing.assert_allclose([d["box"] for d in g["detections"]], [d["box"] for d in w["detections"]],
                                       atol=0.05)
            np.testing.assert_allclose([d["score"] for d in g["detections"]],
                                       [d["score"] for d in w["detections"]], atol=1e-4)
            assert [d["name"] for d in g["detections"]] == [d["name"] for d in w["detections"]]


def test_four_streams_through_the_server_match_a_local_run(work, server):
    bin_dir, tmp, model, clips = work
    remote = detrt(bin_dir, tmp, "run", *clips[:4], "--server", server.url, "--model", model, "--jsonl",
                   tmp / "remote{stream}.jsonl", "--batch", "1")
    assert remote.returncode == 0, remote.stderr[-3000:]
    assert "all 4 streams: 40 frames" in remote.stdout and "(batch 1, triton)" in remote.stdout
    local = detrt(bin_dir, tmp, "run", *clips[:4], "--model", model, "--jsonl", tmp / "local{stream}.jsonl")
    assert local.returncode == 0, local.stderr[-3000:]
    for i in range(4):
        assert_same_detections(lines(tmp / f"remote{i}.jsonl"), lines(tmp / f"local{i}.jsonl"))


def test_server_killed_and_restarted_mid_stream_loses_and_repeats_no_frame(work, server):
    bin_dir, tmp, model, clips = work
    local = detrt(bin_dir, tmp, "run", *clips[4:], "--model", model, "--jsonl", tmp / "ref{stream}.jsonl")
    assert local.returncode == 0, local.stderr[-3000:]
    jsonl = [tmp / f"restart{i}.jsonl" for i in range(2)]
    client = subprocess.Popen([str(bin_dir / "detrt"), "run", *map(str, clips[4:]), "--server", server.url,
                               "--model", str(model), "--jsonl", str(tmp / "restart{stream}.jsonl"), "--batch", "1",
                               "--in-flight", "2", "--retry", "180"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env(tmp))
    deadline = time.monotonic() + 300
    while not all(p.exists() and p.read_text().count("\n") >= 4 for p in jsonl):
        assert client.poll() is None and time.monotonic() < deadline, client.communicate()
        time.sleep(0.05)
    server.kill()
    written = [p.read_text().count("\n") for p in jsonl]
    time.sleep(1.0)
    server.start()
    out, err = client.communicate(timeout=600)
    assert client.returncode == 0, err[-3000:]
    assert min(written) < 16, "the clients finished before the server was killed: nothing was tested"
    assert "retrying for up to 180 s" in err and "answering again" in err
    for i in range(2):
        assert_same_detections(lines(jsonl[i]), lines(tmp / f"ref{i}.jsonl"))


def test_bad_servers_and_models_are_one_line(work, server):
    bin_dir, tmp, model, clips = work
    (unused,) = free_ports(1)
    cases = [
        (["run", clips[0], "--server", server.url, "--triton-model", "nope", "--model", model],
         f"detrt run: error: {server.url}: no model 'nope' ready on this server"),
        (["run", clips[0], "--server", f"127.0.0.1:{unused}", "--model", model],
         f"detrt run: error: grpc://127.0.0.1:{unused}: cannot reach the Triton server ("),
        (["run", clips[0], "--server", server.url, "--model", model, "--timeout", "0.001", "--retry", "1"],
         f"detrt run: error: {server.url}: no answer for 1 s (Deadline Exceeded)"),
        (["serve", model, "--grpc-port", server.grpc_port, "--http-port", "0", "--metrics-port", "0"],
         f"detrt serve: error: port {server.grpc_port} on 127.0.0.1 is in use (--grpc-port"),
    ]
    for argv, words in cases:
        proc = detrt(bin_dir, tmp, *argv)
        err = [line for line in proc.stderr.splitlines() if line.startswith("detrt ")]
        assert proc.returncode == 2 and len(err) >= 1 and err[-1].startswith(words), (argv, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr


def test_export_triton_repository_loads_into_the_same_tritonserver(work):
    bin_dir, tmp, model, _ = work
    repo = tmp / "repo"
    export_triton(model, repo, preferred=[4, 8])
    (tmp / "load").mkdir()
    proc = subprocess.run([str(bin_dir / "python"), "-m", "tests.helpers.triton_load", str(repo), str(tmp / "load"),
                           *map(str, free_ports(3))], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env=env(tmp))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    # Triton's own model configuration schema parses all four configs.
    assert {n: (c["platform"], c["backend"], c["max_batch_size"]) for n, c in report["configs"].items()} == {
        "detector": ("onnxruntime_onnx", "", 8), "preprocess": ("", "python", 8), "postprocess": ("", "python", 8),
        "detrt": ("ensemble", "", 8)}
    models = report["models"]
    assert models["preprocess"]["state"] == models["postprocess"]["state"] == "READY", models
    # PyTriton's tritonserver ships the python backend only: the network's config is accepted up to the
    # backend lookup (a Triton with the onnxruntime backend loads it; README says so).
    assert models["detector"]["state"] == "UNAVAILABLE"
    assert "unable to find backend library for backend 'onnxruntime'" in models["detector"]["reason"]
    steps = report["steps"]
    assert steps["same_names"] and steps["max_box_diff"] < 1e-3 and steps["max_score_diff"] < 1e-5, steps
