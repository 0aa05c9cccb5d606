"""Fixtures for every test folder."""

import io
import sys

import pytest


class TerminalStream(io.StringIO):
    """A stream that says it is an interactive terminal, as a console's stderr does."""

    def isatty(self):
        return True


@pytest.fixture
def terminal_stderr(monkeypatch):
    """Call it in a test to make sys.stderr a terminal (progress bars draw into the stream it returns); pytest's
    own stderr, like a log, is none. A call, not a patch at setup: pytest reinstates its capture before the test."""

    def install():
        stream = TerminalStream()
        monkeypatch.setattr(sys, "stderr", stream)
        return stream

    return install
