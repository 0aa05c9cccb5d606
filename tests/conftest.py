"""Shared pytest setup: `--runslow` runs the tests marked slow (soak tests), skipped by default."""

import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow (soak) test: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
