"""`detrt run` from the command line: outputs, summary, one-line errors with exit status 2."""

import json

from detrt.cli import main
from probe_models import gradient_frames, make_topk_model, write_video


def test_run_writes_everything_and_prints_the_summary(tmp_path, capsys):
    make_topk_model(tmp_path / "m.onnx", bias=[5.0, 4.0, -6.0])
    clip = write_video(tmp_path / "c.mp4", gradient_frames(10))
    rc = main(["run", str(clip), str(tmp_path / "pos.jsonl"), "--model", str(tmp_path / "m.onnx"),
               "--out", str(tmp_path / "o.mp4"), "--odgt", str(tmp_path / "d.odgt"), "--batch", "2",
               "--threads", "1", "--summary", str(tmp_path / "s.json")])
    out = capsys.readouterr()
    assert rc == 0
    assert "frames 10  dropped 0" in out.out and "end-to-end" in out.out and "batch 2" in out.out
    assert "10/10" in out.err  # the progress bar
    assert len((tmp_path / "pos.jsonl").read_text().splitlines()) == 10
    assert len((tmp_path / "d.odgt").read_text().splitlines()) == 10
    assert (tmp_path / "o.mp4").stat().st_size > 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["frames"] == 10 and s["backend"] == "onnxruntime" and "infer" in s["stages"]


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
