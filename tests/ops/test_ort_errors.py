"""No abort from a detrt custom op on ONNX Runtime: a rejected input or Ctrl-C inside an op becomes a Python
exception from `InferenceSession.run` and the process exits cleanly.

Each case runs in a child process, because the failure being guarded against is std::terminate (SIGABRT),
which would take the test runner down with it.
"""

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from detrt.ops import cpu

pytestmark = pytest.mark.skipif(not cpu.available(), reason=f"{cpu.unavailable_reason()}")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime_extensions")

# A child's helpers: one-node graphs with untyped shapes, so every bad input reaches the op.
NODES = textwrap.dedent("""
    import json, sys
    import numpy as np
    from onnx import TensorProto, helper
    from detrt.ops.ort import InferenceSession

    F, I = TensorProto.FLOAT, TensorProto.INT32
    MSDA_IN = ["value", "spatial_shapes", "level_start_index", "sampling_locations", "attention_weights"]

    def session(op, inputs, types, outputs, **attrs):
        node = helper.make_node(op, inputs, outputs, domain="detrt", **attrs)
        graph = helper.make_graph([node], "one_node", [helper.make_tensor_value_info(n, t, None)
                                                       for n, t in zip(inputs, types)],
                                  [helper.make_tensor_value_info(o, I if op == "DCGNeighbors" else F, None)
                                   for o in outputs])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                        helper.make_opsetid("detrt", 1)], ir_version=10)
        return InferenceSession(model.SerializeToString())

    def msda(n=1, s=20, m=2, d=4, lq=3, p=2):
        shapes = np.array([[4, 4], [2, 2]], np.int32)
        return session("MSDeformAttn", MSDA_IN, [F, I, I, F, F], ["out"]), dict(
            value=np.ones((n, s, m, d), np.float32), spatial_shapes=shapes,
            level_start_index=np.array([0, 16], np.int32),
            sampling_locations=np.full((n, lq, m, 2, p, 2), 0.5, np.float32),
            attention_weights=np.full((n, lq, m, 2, p), 0.25, np.float32))

    def dcg(k=3):
        boxes = np.tile(np.array([0.5, 0.5, 0.2, 0.2], np.float32), (1, 5, 1))
        scores = np.linspace(0.2, 0.9, 5, dtype=np.float32)[None]
        return session("DCGNeighbors", ["boxes", "scores"], [F, F], ["indices", "valid"], k=k,
                       iou_threshold=0.4, low_score=0.1), dict(boxes=boxes, scores=scores)
""")

# case -> (python that changes `sess, feeds` from a good input, text the error must contain)
REJECTED = {
    "msda value S != sum of H*W": ("sess, feeds = msda(s=21)", "covers 20 positions but value has S = 21"),
    "msda level_start_index off": ("feeds['level_start_index'][1] = 15", "level_start_index"),
    "msda negative spatial shape": ("feeds['spatial_shapes'][0, 0] = -4", "spatial_shapes"),
    "msda locations not (x, y)": ("feeds['sampling_locations'] = np.zeros((1, 3, 2, 2, 2, 3), np.float32)",
                                  "sampling_locations"),
    "msda weights with another P": ("feeds['attention_weights'] = np.zeros((1, 3, 2, 2, 5), np.float32)",
                                    "attention_weights"),
    "msda value of rank 3": ("feeds['value'] = np.ones((20, 2, 4), np.float32)", "value must have rank 4"),
    "dcg boxes not cxcywh": ("feeds['boxes'] = np.zeros((1, 5, 3), np.float32)", "boxes must have shape"),
    "dcg scores for other boxes": ("feeds['scores'] = np.zeros((1, 4), np.float32)", "scores must have shape"),
    "dcg negative k": ("sess, feeds = dcg(k=-1)", "k must be a non-negative int"),
}


def test_rejected_inputs_raise_python_errors_and_the_session_goes_on():
    cases = {name: code for name, (code, _) in REJECTED.items()}
    child = NODES + textwrap.dedent(f"""
        for name, code in {cases!r}.items():
            sess, feeds = (msda if name.startswith("msda") else dcg)()
            exec(code)
            try:
                sess.run(None, feeds)
                print(json.dumps([name, "no error"]), flush=True)
            except Exception as e:
                print(json.dumps([name, type(e).__name__ + ": " + str(e)]), flush=True)
        sess, feeds = msda()
        out = sess.run(None, feeds)[0]  # the guard left no state behind: a good input still runs
        print(json.dumps(["good input after errors", list(out.shape), float(out.sum())]), flush=True)
    """)
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"child died with {r.returncode} (SIGABRT is -6):\n{r.stdout}\n{r.stderr[-2000:]}"
    results = {row[0]: row[1:] for row in map(json.loads, r.stdout.splitlines())}
    for name, (_, text) in REJECTED.items():
        (error,) = results[name]
        op = "MSDeformAttn" if name.startswith("msda") else "DCGNeighbors"
        assert error.startswith(f"ValueError: detrt::{op}: ") and text in error, (name, error)
    # value is all ones and each query's weights sum to 1 per level pair (4 x 0.25 = 1 over 2 levels x 2
    # points): every output channel is the bilinear mean of ones inside the map, i.e. 1.
    assert results["good input after errors"] == [[1, 3, 8], 24.0]


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.13, 0.31])
def test_ctrl_c_during_inference_is_a_keyboard_interrupt(delay):
    """SIGINT at various points of a loop of runs whose time is mostly inside the MSDA op (its Python
    dispatcher copies outputs through lists): KeyboardInterrupt from run(), exit status of our choosing."""
    child = NODES + textwrap.dedent("""
        sess, feeds = msda(n=2, s=20, m=8, d=32, lq=20000, p=2)
        print("ready", flush=True)
        try:
            while True:
                sess.run(None, feeds)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
    """)
    p = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        time.sleep(0.2 + delay)  # past the first runs' warm-up
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 3 and out.strip() == "interrupted", f"rc {p.returncode} (SIGABRT is -6): {err[-2000:]}"
