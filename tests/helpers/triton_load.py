"""Load a `detrt export-triton` repository into the tritonserver PyTriton ships; print what happened as JSON.

Run with the serving venv's Python: python -m tests.helpers.triton_load REPO WORKDIR GRPC_PORT HTTP_PORT METRICS_PORT.
1. Every config.pbtxt is parsed with Triton's own model configuration schema (tritonclient's model_config_pb2).
2. tritonserver starts on the repository and loads every model; each model's state and reason are reported.
   This tritonserver has the python backend only: the Python-backend steps load and run, the network's
   onnxruntime backend is absent (a Triton with it, e.g. NVIDIA's container, loads all four).
3. Frames go through the server's preprocess model, the network on ONNX Runtime here, and the server's
   postprocess model; the largest differences from detrt's own Detector on the same frames are reported.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from pytriton.triton import TRITONSERVER_DIST_DIR
from pytriton.utils.distribution import get_libs_path
from tritonclient.grpc import model_config_pb2

from detrt.data.synthetic import SynthConfig, synth_image
from detrt.runtime.detector import Detector


def parse_configs(repo):
    parsed = {}
    for path in sorted(repo.glob("*/config.pbtxt")):
        config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        parsed[path.parent.name] = {"name": config.name, "platform": config.platform, "backend": config.backend,
                                    "max_batch_size": config.max_batch_size}
    return parsed


def start_server(repo, work, ports):
    """tritonserver as PyTriton lays it out: its dist copied, with the stub for this Python's version."""
    server = work / "tritonserver"
    shutil.copytree(TRITONSERVER_DIST_DIR, server, ignore=shutil.ignore_patterns("python_backend_stubs"))
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    shutil.copy(TRITONSERVER_DIST_DIR / "python_backend_stubs" / version / "triton_python_backend_stub",
                server / "backends" / "python")
    # The stub finds the venv's packages through PATH (as PyTriton runs it) and detrt through PYTHONPATH.
    env = {**os.environ, "LD_LIBRARY_PATH": str(get_libs_path()),
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
           "PYTHONPATH": os.pathsep.join([sysconfig.get_paths()["purelib"], str(Path.cwd())])}
    grpc, http, metrics = ports
    cmd = [str(server / "bin" / "tritonserver"), f"--model-repository={repo}",
           f"--backend-directory={server / 'backends'}", "--model-control-mode=explicit", "--load-model=*",
           "--exit-on-error=false", "--strict-readiness=false", "--grpc-address=127.0.0.1", f"--grpc-port={grpc}",
           "--http-address=127.0.0.1", f"--http-port={http}", "--metrics-address=127.0.0.1",
           f"--metrics-port={metrics}"]
    return subprocess.Popen(cmd, env=env, stdout=open(work / "tritonserver.log", "w"), stderr=subprocess.STDOUT)


def run_steps(client, repo):
    net = Detector(repo / "detector" / "1" / "model.onnx", threshold=0.0)
    frames = np.stack([synth_image(7, i, SynthConfig(width=320, height=240))[0] for i in range(2)])
    x = grpcclient.InferInput("frames", list(frames.shape), "UINT8")
    x.set_data_from_numpy(frames)
    pre = client.infer("preprocess", [x])
    outputs = net.backend.infer({name: pre.as_numpy(name) for name in net.backend.input_names})
    inputs = []
    for name, value in [*outputs.items(), ("transform", pre.as_numpy("transform"))]:
        t = grpcclient.InferInput(name, list(value.shape), "INT64" if value.dtype == np.int64 else "FP32")
        t.set_data_from_numpy(value)
        inputs.append(t)
    post = client.infer("postprocess", inputs)
    want = net.detect_batch(list(frames))
    box, score, same = 0.0, 0.0, True
    for i, d in enumerate(want):
        n = len(d)
        box = max(box, float(np.abs(post.as_numpy("boxes")[i, :n] - d.boxes).max(initial=0)))
        score = max(score, float(np.abs(post.as_numpy("scores")[i, :n] - d.scores).max(initial=0)))
        same &= [b.decode() for b in post.as_numpy("names")[i, :n]] == d.names and n > 0
    return {"max_box_diff": box, "max_score_diff": score, "same_names": bool(same)}


def main(repo, work, *ports):
    repo, work = Path(repo).resolve(), Path(work)
    report = {"configs": parse_configs(repo)}
    proc = start_server(repo, work, ports)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{ports[0]}")
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                index = {m["name"]: m for m in client.get_model_repository_index(as_json=True).get("models", [])}
                if all(m.get("state") in ("READY", "UNAVAILABLE") for n, m in index.items() if n != "detrt"):
                    break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (work / "tritonserver.log").read_text()[-3000:]
            time.sleep(0.5)
        report["models"] = {n: {"state": m.get("state", ""), "reason": m.get("reason", "")} for n, m in index.items()}
        report["steps"] = run_steps(client, repo)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
