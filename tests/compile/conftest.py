"""Shared fixtures for the compile tests: one randomly initialized tiny model, exported once per form.

Export takes a few seconds per graph, so the four exports (portable/plugin x postprocessed/raw) are
session-scoped, made on first use, and shared by test_export.py and test_precision.py.
"""

import pytest
import torch

from detrt.compile.export import onnx_from_model


@pytest.fixture(scope="session")
def tiny():
    """dhdetr_r18_tiny, seeded, with class heads that give spread-out scores (not the 0.01 prior, which
    makes every query fall under DCG's floor and all scores tie at 0)."""
    from detrt.models import build_model

    torch.manual_seed(0)
    model = build_model("dhdetr_r18_tiny").eval()
    for head in model.class_embed:
        torch.nn.init.normal_(head.weight, std=0.5)
        torch.nn.init.zeros_(head.bias)
    return model


@pytest.fixture(scope="session")
def letterboxed(tiny):
    """Two synthetic crowd images (detrt.data.synthetic), preprocessed as the runtime does: ([2, 3, H, W],
    [Transform]); each 512x320 image fills 384x240 of the 384x256 input."""
    from detrt.data.synthetic import synth_image
    from detrt.data.preprocess import Preprocessor

    cfg = tiny.config
    images = [synth_image(seed=7, index=i)[0] for i in range(2)]
    return Preprocessor(cfg.input_size, cfg.mean, cfg.std)(images)


@pytest.fixture(scope="session")
def frames(letterboxed):
    return letterboxed[0]


@pytest.fixture(scope="session")
def sizes(letterboxed):
    """The frames' image_sizes [2, 2]: (240, 384) each."""
    from detrt.data.preprocess import image_sizes

    return image_sizes(letterboxed[1])


@pytest.fixture(scope="session")
def feed(frames, sizes):
    """The exported graphs' inputs for the frames."""
    return {"images": frames, "image_sizes": sizes}


class Exports(dict):
    """{(form, postprocess): onnx.ModelProto} for the tiny model, each exported when first asked for: a test that
    needs one graph pays for one export (make mutation runs each mutant's tests in a fresh process)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def __missing__(self, key):
        form, post = key
        self[key] = onnx_from_model(self.model, self.model.config.input_size, form=form, postprocess=post)
        return self[key]


@pytest.fixture(scope="session")
def exported(tiny):
    return Exports(tiny)
