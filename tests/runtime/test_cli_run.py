"""`detrt run` from the command line: outputs, summary, one-line errors with exit status 2, full disk, signals."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from detrt.cli import main
from tests.helpers.probe_models import gradient_frames, make_topk_model, write_video


def test_run_writes_everything_and_prints_the_summary(tmp_path, capsys):
    make_topk_model(tmp_path / "m.onnx", bias=[5.0, 4.0, -6.0])
    clip = write_video(tmp_path / "c.mp4", gradient_frames(10))
    rc = main(["run", str(clip), str(tmp_path / "pos.jsonl"), "--model", str(tmp_path / "m.onnx"),
               "--out", str(tmp_path / "o.mp4"), "--odgt", str(tmp_path / "d.odgt"), "--batch", "2",
               "--threads", "1", "--summary", str(tmp_path / "s.json")])
    out = capsys.readouterr()
    assert rc == 0
    assert "frames 10  dropped 0" in out.out and "end-to-end" in out.out and "batch 2" in out.out
    assert "\r" not in out.err and "10/10" not in out.err  # stderr is no terminal: no progress bar
    assert len((tmp_path / "pos.jsonl").read_text().splitlines()) == 10
    assert len((tmp_path / "d.odgt").read_text().splitlines()) == 10
    assert (tmp_path / "o.mp4").stat().st_size > 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["frames"] == 10 and s["backend"] == "onnxruntime" and "infer" in s["stages"]


def test_progress_bar_on_a_terminal(tmp_path, terminal_stderr):
    make_topk_model(tmp_path / "m.onnx")
    clip = write_video(tmp_path / "c.mp4", gradient_frames(10))
    err = terminal_stderr()
    assert main(["run", str(clip), str(tmp_path / "d.jsonl"), "--model", str(tmp_path / "m.onnx")]) == 0
    assert "\r" in err.getvalue() and "10/10" in err.getvalue()


def test_truncated_jpeg_is_a_corrupt_frame_in_the_summary(tmp_path, capsys):
    import cv2

    make_topk_model(tmp_path / "m.onnx")
    for i, f in enumerate(gradient_frames(3)):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), f)
    data = (tmp_path / "1.jpg").read_bytes()
    (tmp_path / "1.jpg").write_bytes(data[:len(data) // 2])
    assert main(["run", str(tmp_path / "*.jpg"), "--model", str(tmp_path / "m.onnx")]) == 0
    assert "frames 2  dropped 0  corrupt 1" in capsys.readouterr().out


def test_errors_are_one_line_exit_2(tmp_path, capsys):
    make_topk_model(tmp_path / "m.onnx")
    clip = write_video(tmp_path / "c.mp4", gradient_frames(3))
    cases = [
        (["run", str(clip), "--model", str(tmp_path / "nope.onnx")], "nope.onnx: no such model file"),
        (["run", str(tmp_path / "x.mp4"), "--model", str(tmp_path / "m.onnx")], "x.mp4: no such file"),
        (["run", str(clip), "--model", str(tmp_path / "m.onnx"), "--threshold", "2"], "--threshold must be in"),
        (["run", str(clip), "out.txt", "--model", str(tmp_path / "m.onnx")], "unknown output type"),
        (["run", str(clip), "--model", str(tmp_path / "m.onnx"), "--backend", "tensorrt"], "detrt build"),
        (["run", str(clip), "--model", str(tmp_path / "m.onnx"), "--threshold", "nan"], "got nan"),
        (["run", str(clip), "--model", str(tmp_path / "m.onnx"), "--threads", "-1"], "--threads must be >= 1"),
        (["run", str(clip), "--model", str(tmp_path / "m.onnx"), "--backend", "onnxruntime", "--useCudaGraph",
          "--plugins", "lib.so"], "--plugins, --useCudaGraph: TensorRT only, not used by --backend onnxruntime"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("detrt run: error: ") and words in err[0], err


@pytest.mark.parametrize("free_kb", [16, 0])  # 16: the writer opens and fails silently; 0: it cannot open
def test_video_onto_a_full_disk_is_one_line_and_no_file(tmp_path, on_full_disk, free_kb):
    make_topk_model(tmp_path / "m.onnx")
    clip = write_video(tmp_path / "c.mp4", gradient_frames(40))
    full = tmp_path / "full"
    stdout = on_full_disk(["run", clip, "--model", tmp_path / "m.onnx", "--out", full / "o.mp4",
                           "--jsonl", tmp_path / "d.jsonl"], full, free_kb=free_kb)
    done = int(stdout.split()[1])  # the summary: "frames N ..."; a writer that cannot open stops the run at once
    assert done == (40 if free_kb else 0)
    assert [json.loads(line)["frame"] for line in (tmp_path / "d.jsonl").read_text().splitlines()] == list(range(done))


def test_summary_onto_a_full_disk(tmp_path, on_full_disk):
    make_topk_model(tmp_path / "m.onnx")
    clip = write_video(tmp_path / "c.mp4", gradient_frames(3))
    stdout = on_full_disk(["run", clip, "--model", tmp_path / "m.onnx", "--summary", tmp_path / "full" / "s.json"],
                          tmp_path / "full")
    assert "frames 3" in stdout


def test_outputs_are_checked_before_any_work(tmp_path, capsys):
    make_topk_model(tmp_path / "m.onnx")
    clip = write_video(tmp_path / "c.mp4", gradient_frames(3))
    (tmp_path / "file").write_text("")
    (tmp_path / "dir").mkdir()
    jsonl = tmp_path / "d.jsonl"
    base = ["run", str(clip), "--model", str(tmp_path / "m.onnx"), "--jsonl", str(jsonl)]
    cases = [
        (["--out", str(tmp_path / "file" / "sub" / "o.mp4")], f"cannot write here ({tmp_path / 'file'} is a file)"),
        (["--out", str(tmp_path / "dir")], "dir: is a directory, not a file"),
        (["--out", str(clip)], f"c.mp4: is also an input ({clip})"),
        (["--summary", str(tmp_path / "m.onnx.json")], "m.onnx.json: is also an input"),  # the model's manifest
        (["--odgt", str(jsonl)], "d.jsonl: given as two outputs"),
        ([str(tmp_path / "." / "c.mp4")], "c.mp4: is also an input"),  # the SINK argument, spelled differently
    ]
    for extra, words in cases:
        argv = base[:2] + extra + base[2:] if not extra[0].startswith("--") else base + extra
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (err, words)
        assert not jsonl.exists()  # refused before the run: nothing opened
    assert (tmp_path / "file").read_text() == "" and clip.stat().st_size > 0


# A `detrt run` in a subprocess whose model takes 50 ms per frame, so a signal lands mid-run.
SLOW_RUN = """
import sys
sys.path.insert(0, {root!r})
from tests.helpers.probe_models import SlowBackend
from detrt import cli
from detrt.runtime import pipeline
real = pipeline.open_backend
pipeline.open_backend = lambda *a, **k: SlowBackend(real(*a, **k), 0.05)
sys.exit(cli.main(sys.argv[1:]))
"""


def _slow_run(tmp_path, frames=200):
    make_topk_model(tmp_path / "m.onnx")
    clip = write_video(tmp_path / "c.mp4", gradient_frames(frames))
    jsonl, out = tmp_path / "d.jsonl", tmp_path / "o.mp4"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN.format(root=str(Path(__file__).parents[2])), "run",
                             str(clip), "--model", str(tmp_path / "m.onnx"), "--batch", "1", "--jsonl", str(jsonl),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TQDM_DISABLE": "1"})
    deadline = time.monotonic() + 60
    while not (jsonl.exists() and jsonl.read_text().count("\n") >= 3):  # running: lines are flushed per frame
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    return proc, jsonl, out


def _check_stopped(proc, jsonl, out, rc, signal_name):
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == rc and "Traceback" not in stderr, (proc.returncode, stderr)
    frames = [json.loads(line)["frame"] for line in jsonl.read_text().splitlines()]  # every line whole
    assert 3 <= len(frames) < 200 and frames == list(range(len(frames)))
    assert f"frames {len(frames)}  " in stdout and f"[interrupted by {signal_name}]" in stdout  # the summary
    cap = cv2.VideoCapture(str(out))  # the video finalized with the same frames
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == len(frames)


def test_sigterm_stops_like_ctrl_c_with_exit_143(tmp_path):
    proc, jsonl, out = _slow_run(tmp_path)
    proc.send_signal(signal.SIGTERM)
    _check_stopped(proc, jsonl, out, 143, "SIGTERM")


def test_second_ctrl_c_while_draining_still_closes_everything(tmp_path):
    proc, jsonl, out = _slow_run(tmp_path)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)  # draining the frames in flight (50 ms each)
    proc.send_signal(signal.SIGINT)
    _check_stopped(proc, jsonl, out, 130, "SIGINT")


def test_next_run_removes_the_temporary_file_of_a_killed_one(tmp_path, capsys):
    proc, jsonl, out = _slow_run(tmp_path)
    proc.kill()
    proc.communicate()
    stale = [p.name for p in tmp_path.glob(".o.mp4.*")]
    assert len(stale) == 1 and re.fullmatch(rf"\.o\.mp4\.{proc.pid}\.\w+\.tmp\.mp4", stale[0]) and not out.exists()
    (tmp_path / ".o.mp4.keep").write_text("not ours")
    assert main(["run", str(tmp_path / "c.mp4"), "--model", str(tmp_path / "m.onnx"), "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.glob(".*")) == [".o.mp4.keep"]
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT) == 200


def test_many_class_model_writes_coco_results_that_score_ap_one(tmp_path, capsys):
    """Each image gets exactly the model's 3 boxes as ground truth: run -> --coco -> detrt eval gives AP 1, so
    image ids, category ids (the manifest's class_ids) and boxes all made the round trip."""
    boxes = [[8, 4, 40, 60], [50, 10, 90, 30], [0, 0, 16, 16]]
    make_topk_model(tmp_path / "m.onnx", boxes=boxes, labels=[2, 0, 1], class_names=("cat", "dog", "bird"),
                    class_ids=[10, 20, 30])
    (tmp_path / "img").mkdir()
    for i, frame in enumerate(gradient_frames(3, h=64, w=96)):
        cv2.imwrite(str(tmp_path / "img" / f"{i + 1:06d}.png"), frame)
    gt = {"images": [{"id": i + 1, "file_name": f"{i + 1:06d}.png", "width": 96, "height": 64} for i in range(3)],
          "categories": [{"id": 10, "name": "cat"}, {"id": 20, "name": "dog"}, {"id": 30, "name": "bird"}],
          "annotations": [{"id": 3 * i + k + 1, "image_id": i + 1, "category_id": c,
                           "bbox": [x0, y0, x1 - x0, y1 - y0]}
                          for i in range(3) for k, ((x0, y0, x1, y1), c) in enumerate(zip(boxes, [30, 10, 20]))]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    assert main(["run", str(tmp_path / "img"), "--model", str(tmp_path / "m.onnx"), "--coco",
                 str(tmp_path / "r.json"), "--jsonl", str(tmp_path / "d.jsonl"), "--threshold", "0"]) == 0
    results = json.loads((tmp_path / "r.json").read_text())
    assert len(results) == 9 and {r["image_id"] for r in results} == {1, 2, 3}
    line = json.loads((tmp_path / "d.jsonl").read_text().splitlines()[0])
    assert [(d["name"], d["category_id"]) for d in line["detections"]] == [("bird", 30), ("cat", 10), ("dog", 20)]
    capsys.readouterr()
    pytest.importorskip("faster_coco_eval", reason="COCO AP needs detrt[eval]")
    assert main(["eval", "--gt", str(tmp_path / "gt.json"), "--dt", str(tmp_path / "r.json"), "--json",
                 str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["AP@100"] == pytest.approx(1.0)


def test_odgt_refused_for_a_many_class_model(tmp_path, capsys):
    make_topk_model(tmp_path / "m.onnx", class_names=("cat", "dog"))
    clip = write_video(tmp_path / "c.mp4", gradient_frames(3))
    assert main(["run", str(clip), "--model", str(tmp_path / "m.onnx"), "--odgt", str(tmp_path / "d.odgt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"detrt run: error: {tmp_path / 'd.odgt'}: .odgt holds CrowdHuman person detections, and this "
                   f"probe model detects 2 classes; write COCO results instead (--coco results.json, scored by "
                   f"detrt eval)")
    assert not (tmp_path / "d.odgt").exists()
