"""A config whose recipe starts from ImageNet weights warns, once, when trained without --backbone-weights."""

from detrt.models import get_config
from detrt.models.backbone import scratch_warning
from detrt.training.loop import TrainOptions, fit
from tests.helpers.tiny_training import tiny_config


def test_paper_configs_warn_tiny_configs_do_not():
    for name in ("dhdetr_r50_crowdhuman", "deformable_detr_r50_crowdhuman"):
        text = scratch_warning(get_config(name))
        assert name in text and "--backbone-weights" in text and "resnet50" in text
    assert scratch_warning(get_config("dhdetr_r18_tiny")) is None
    assert scratch_warning(get_config("deformable_detr_r18_tiny")) is None


def _fit(tiny_data, out, config, **kw):
    gt, images = tiny_data
    return fit(TrainOptions(config=config, data=str(gt), images=str(images), batch_size=2, output=str(out),
                            max_steps=1, workers=0, progress=False, **kw))


def test_training_from_scratch_prints_it_once(tiny_data, tmp_path, capsys):
    _fit(tiny_data, tmp_path / "a", tiny_config(pretrained_backbone=True))
    err = capsys.readouterr().err
    assert err.count("--backbone-weights") == 1 and "trains the backbone from random weights" in err
    _fit(tiny_data, tmp_path / "a", tiny_config(pretrained_backbone=True), resume=str(tmp_path / "a" / "last"))
    assert "--backbone-weights" not in capsys.readouterr().err  # the resumed run's weights are trained ones
    _fit(tiny_data, tmp_path / "b", tiny_config())
    assert "--backbone-weights" not in capsys.readouterr().err
