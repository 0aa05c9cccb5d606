"""The training run: resume continues exactly, a NaN loss stops and keeps the last good checkpoint, the
checkpoints load with export's loader, bad input is one line and exit status 2."""

import json
import subprocess
import sys

import pytest

import detrt.models
from detrt.cli import main
from detrt.models.checkpoint import model_from_checkpoint, read_meta
from detrt.training.loop import fit
from detrt.training.options import Augment, TrainOptions
from detrt.training.resume import STATE, STATE_META
from detrt.training.step import NonFiniteLoss
from tests.helpers.tiny_training import NaNCriterion, tiny_config, write_dataset


def options(tiny_data, out, **kw):
    gt, images = tiny_data
    base = dict(config=tiny_config(), data=str(gt), images=str(images), batch_size=2, output=str(out), seed=7,
                workers=0, log_every=1, progress=False, lr_drop_step=3, augment=Augment(scale_min=0.8))
    return TrainOptions(**{**base, **kw})


class NaNAtCall(NaNCriterion):
    """NaN in the `key` term at the `call`-th loss computation only (the step of that number)."""

    def __init__(self, criterion, key, call):
        super().__init__(criterion, key)
        self.call, self.calls = call, 0

    def __call__(self, outputs, targets):
        self.calls += 1
        return super().__call__(outputs, targets) if self.calls == self.call else self.criterion(outputs, targets)


def losses(out):
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())
            if r["event"] == "train"}


def test_resume_mid_epoch_continues_identically(tiny_data, tmp_path):
    # 6 images, batch 2: 3 steps per epoch; stop inside epoch 2 and resume
    full = fit(options(tiny_data, tmp_path / "full", max_steps=5))
    assert full["step"] == 5 and (full["epoch"], full["batch_in_epoch"]) == (1, 2)
    fit(options(tiny_data, tmp_path / "part", max_steps=4))
    state = json.loads((tmp_path / "part" / "last" / STATE_META).read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (4, 1, 1)
    fit(options(tiny_data, tmp_path / "part", max_steps=5, resume=str(tmp_path / "part" / "last")))
    a, b = losses(tmp_path / "full"), losses(tmp_path / "part")
    assert sorted(b) == [1, 2, 3, 4, 5]
    assert b == a  # identical, step 5 included (the LR dropped at step 3 in both)
    # both runs end with the same weights; export's loader reads the checkpoint
    model_a, cfg = model_from_checkpoint(tmp_path / "full" / "last")
    model_b, _ = model_from_checkpoint(tmp_path / "part" / "last")
    assert cfg == tiny_config()
    assert read_meta(tmp_path / "full" / "last")["augment"]["scheme"] == "letterbox_jitter"  # the config's
    for (name, x), (_, y) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        assert (x == y).all(), name


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    build = detrt.models.build_criterion
    monkeypatch.setattr(detrt.models, "build_criterion", lambda cfg: NaNAtCall(build(cfg), "loss_giou_enc", 5))
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLoss) as e:
        fit(options(tiny_data, out, epochs=3))
    msg = str(e.value)
    assert e.value.step == 5
    assert "non-finite loss at step 5" in msg and "loss_giou_enc=nan" in msg and "loss_ce=" in msg
    assert f"last good checkpoint: {out / 'last'} (step 3)" in msg  # saved after epoch 1, not overwritten
    assert read_meta(out / "last")["step"] == 3
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "non_finite_loss" and events[-1]["step"] == 5


def test_save_every_records_the_position_it_saved_at(tiny_data, tmp_path, monkeypatch):
    # a save between epochs' ends is what a killed run resumes from: it must say the step it holds
    build = detrt.models.build_criterion
    monkeypatch.setattr(detrt.models, "build_criterion", lambda cfg: NaNAtCall(build(cfg), "loss_ce", 5))
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLoss, match=r"\(step 4\)"):
        fit(options(tiny_data, out, epochs=3, save_every=1))
    state = json.loads((out / "last" / STATE_META).read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (4, 1, 1)
    assert read_meta(out / "last")["step"] == 4


def run_cli(args, capsys):
    code = main(["train", *args])
    return code, capsys.readouterr().err


def test_bad_input_is_one_line_and_exit_2(tiny_data, tmp_path, capsys):
    gt, images = tiny_data
    base = ["--data", str(gt), "--images", str(images), "--output", str(tmp_path / "o")]
    code, err = run_cli(["--config", "dhdetr_tiny", *base], capsys)
    assert code == 2 and "unknown model config 'dhdetr_tiny'; valid: " in err and "dhdetr_r18_tiny" in err
    code, err = run_cli(["--config", "dhdetr_r18_tiny", "--data", str(tmp_path / "none.odgt"),
                         "--images", str(images)], capsys)
    assert code == 2 and "none.odgt: training annotation file not found" in err
    empty = tmp_path / "empty.odgt"
    empty.write_text("\n")
    code, err = run_cli(["--config", "dhdetr_r18_tiny", "--data", str(empty), "--images", str(images)], capsys)
    assert code == 2 and "empty.odgt: empty file" in err
    code, err = run_cli(["--config", "dhdetr_r18_tiny", *base[:4], "--images", str(tmp_path / "nodir")], capsys)
    assert code == 2 and "nodir: images directory does not exist" in err
    code, err = run_cli(["--config", "dhdetr_r18_tiny", *base, "--val-data", str(gt)], capsys)
    assert code == 2 and "validation: give both the annotation file and the images directory" in err
    for text in (err,):
        assert text.count("\n") == 1


def test_output_with_a_previous_run_needs_resume(tiny_data, tmp_path):
    fit(options(tiny_data, tmp_path / "o", max_steps=1))
    with pytest.raises(detrt.errors.InputError, match="holds a previous run's checkpoint; use --resume"):
        fit(options(tiny_data, tmp_path / "o", max_steps=2))


def test_evaluation_and_best_checkpoint(tmp_path):
    data = write_dataset(tmp_path / "d", num=4, seed=1)
    summary = fit(options(data, tmp_path / "o", max_steps=2, val_data=str(data[0]), val_images=str(data[1]),
                          config=tiny_config(num_select=10)))
    m = summary["metrics"]
    assert set(m) >= {"AP", "MR2", "JI", "duplicate_rate", "duplicates", "confident_detections"}
    assert m["images"] == 4 and 0 <= m["AP"] <= 1
    assert read_meta(tmp_path / "o" / "best")["step"] == 2


def test_time_budget_stops_and_saves(tiny_data, tmp_path):
    summary = fit(options(tiny_data, tmp_path / "o", epochs=1000, time_budget=0.03))  # 1.8 s
    assert summary["step"] < 3000
    state = json.loads((tmp_path / "o" / "last" / STATE_META).read_text())
    assert state["step"] == summary["step"] and 3 * state["epoch"] + state["batch_in_epoch"] == summary["step"]


@pytest.mark.parametrize("flag, value, words", [
    ("--lr", "-1", "--lr must be a positive number, got -1.0"),
    ("--lr", "nan", "--lr must be a positive number, got nan"),
    ("--workers", "-1", "--workers must be >= 0, got -1"),
    ("--max-steps", "0", "--max-steps must be >= 1, got 0"),
])
def test_bad_option_values_are_one_line_before_any_work(tiny_data, tmp_path, capsys, flag, value, words):
    gt, images = tiny_data
    code, err = run_cli(["--config", "dhdetr_r18_tiny", "--data", str(gt), "--images", str(images),
                         "--output", str(tmp_path / "o"), flag, value], capsys)
    assert code == 2 and err.strip().splitlines() == [f"detrt train: error: {words}"]
    assert not (tmp_path / "o").exists()


def test_device_cuda_without_a_gpu_is_one_line(tiny_data, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is usable here: --device cuda is valid")
    gt, images = tiny_data
    code, err = run_cli(["--config", "dhdetr_r18_tiny", "--data", str(gt), "--images", str(images),
                         "--output", str(tmp_path / "o"), "--device", "cuda"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--device cuda: no usable CUDA GPU here" in err and "use --device cpu" in err


def test_data_error_in_a_loader_worker_is_the_same_one_line(tmp_path):
    # in fresh processes, as a user runs it (a DataLoader worker forked from this test process could inherit
    # the locks of thread pools that earlier tests started)
    gt, images = write_dataset(tmp_path / "d", num=2, grayscale_every=0)
    for image in images.iterdir():
        image.write_bytes(b"not an image")
    errors = []
    for workers in ("0", "1"):
        argv = ["--config", "dhdetr_r18_tiny", "--data", str(gt), "--images", str(images), "--batch-size", "2",
                "--output", str(tmp_path / f"o{workers}"), "--workers", workers]
        done = subprocess.run([sys.executable, "-m", "detrt.cli", "train", *argv], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 2, done.stderr
        errors.append(done.stderr.strip().splitlines()[-1])  # after the progress bar's line
    assert errors[0] == errors[1]
    assert errors[1].startswith(f"detrt train: error: {images}") and errors[1].endswith(": cannot read image")
    assert "Traceback" not in done.stderr


def test_truncated_resume_state_is_named(tiny_data, tmp_path):
    fit(options(tiny_data, tmp_path / "o", max_steps=1))
    last = tmp_path / "o" / "last"
    for name in (STATE, STATE_META):
        whole = (last / name).read_bytes()
        (last / name).write_bytes(whole[:len(whole) // 2])
        with pytest.raises(detrt.errors.InputError) as e:
            fit(options(tiny_data, tmp_path / "o", max_steps=2, resume=str(last)))
        assert str(e.value).startswith(f"{last / name}: not ") and "\n" not in str(e.value), name
        (last / name).write_bytes(whole)
