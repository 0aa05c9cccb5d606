"""tests.helpers.tensorrt_or_skip: an absent TensorRT skips, a broken installed one fails the test."""

import sys

import pytest

from tests.helpers.tensorrt_or_skip import require_tensorrt


@pytest.fixture
def packages(tmp_path, monkeypatch):
    """A folder on sys.path where a test writes stand-in packages; their modules are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("tensorrt", "cuda", "cuda.bindings", "cuda.bindings.runtime"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def write_package(root, dotted, body=""):
    folder = root.joinpath(*dotted.split("."))
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(body)


def test_absent_tensorrt_skips_with_the_reason(packages, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as if not installed, whatever this machine has
    with pytest.raises(pytest.skip.Exception, match="not installed: tensorrt"):
        require_tensorrt()


def test_installed_tensorrt_that_fails_to_import_fails(packages):
    write_package(packages, "tensorrt", "raise OSError('libnvinfer.so.10: cannot open shared object file')")
    write_package(packages, "cuda.bindings")
    with pytest.raises(OSError, match="libnvinfer"):
        try:
            require_tensorrt()
        except pytest.skip.Exception as e:  # a skip would propagate as this test's own skip: make it a failure
            pytest.fail(f"skipped instead of failing: {e}")
