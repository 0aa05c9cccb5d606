"""Parameter counts against the official code (docs/models.md), part by part. Instantiation only."""

import pytest

from detrt.models import build_model


def breakdown(model):
    """Trainable parameters per part, with the same split as docs/models.md."""
    parts = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("transformer.decoder."):
            i = name.split(".")[2]
            dcg = ".dcg." in name or ".norm2." in name and model.transformer.decoder[int(i)].kind == "dcg"
            key = f"dcg.{i}" if dcg else f"decoder.{i}"
        elif name.startswith("transformer.encoder."):
            key = "encoder." + name.split(".")[2]
        elif name.startswith(("class_embed.", "bbox_embed.", "input_proj.")):
            key = ".".join(name.split(".")[:2])
        else:
            key = name.split(".")[0] if not name.startswith("transformer.") else name.split(".")[1].replace("_norm", "")
        parts[key] = parts.get(key, 0) + p.numel()
    return parts


def total(model, trainable=True):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def test_dhdetr_r50_matches_official_count_exactly():
    model = build_model("dhdetr_r50_crowdhuman")
    assert total(model) == 34_576_780
    assert total(model, trainable=False) == 34_799_180  # with the frozen stem + layer1
    parts = breakdown(model)
    assert parts["backbone"] == 23_232_512
    assert sum(v for k, v in parts.items() if k.startswith("input_proj")) == 5_639_168
    assert parts["input_proj.3"] == 4_719_360  # the extra 3x3 stride-2 conv 2048 -> 256 + GN
    assert [parts[f"encoder.{i}"] for i in range(6)] == [494_208] * 6
    assert [parts[f"decoder.{i}"] for i in range(3)] == [494_208] * 3
    assert [parts[f"dcg.{i}"] for i in (1, 2)] == [329_984] * 2
    assert [parts[f"class_embed.{i}"] for i in range(4)] == [257] * 4
    assert [parts[f"bbox_embed.{i}"] for i in range(2)] == [132_612] * 2  # DCG layers have no box head
    assert parts["enc_output"] == 66_304 and parts["pos_trans"] == 263_680 and parts["level_embed"] == 1_024
    assert sum(parts.values()) == 34_576_780


def test_dropping_the_last_dcg_layer():
    # "6-3(2)" 33,752,588 (docs/models.md) is the trained model less one DCG decoder layer (824,192); it keeps that
    # layer's class head (257), which a model built with 2 decoder layers does not have.
    assert total(build_model("dhdetr_r50_crowdhuman", dec_layers=2, dcg_layers=1)) == 33_752_588 - 257


def test_query_count_does_not_change_two_stage_count():
    assert total(build_model("dhdetr_r50_crowdhuman", num_queries=1000)) == 34_576_780


def test_deformable_detr_baselines():
    # README's 37.7M: single-stage, 1000 learned queries, 6-6 with decoder self-attention, FFN 512
    assert total(build_model("deformable_detr_r50_crowdhuman")) == 37_695_522
    # two-stage 6-6 without self-attention and without DCG (docs/models.md)
    assert total(build_model("dhdetr_r50_crowdhuman", dec_layers=6, dcg_layers=0)) == 36_063_267


@pytest.mark.parametrize("name, expected", [("dhdetr_r18_tiny", 12_945_228), ("deformable_detr_r18_tiny", 13_045_076)])
def test_tiny_counts(name, expected):
    # pinned so that a change to the tiny models is noticed (bundled weights depend on them)
    assert total(build_model(name)) == expected
