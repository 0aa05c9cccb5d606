"""The training tests' shared data: a few small drawn images with an .odgt (tests/helpers/tiny_training.py)."""

import pytest

from tests.helpers.tiny_training import write_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """(annotation path, images dir) of 6 small images, two of them grayscale PNGs."""
    return write_dataset(tmp_path_factory.mktemp("tiny_data"))
