"""Progress bars only on a terminal: piped into a log, no carriage-return redraws."""

import io
import sys

from detrt.progress import on_terminal, progress_bar


def test_on_terminal(tmp_path, terminal_stderr):
    err = terminal_stderr()
    assert on_terminal() and on_terminal(err)
    assert not on_terminal(io.StringIO())
    with open(tmp_path / "log.txt", "w") as log:  # `detrt bench 2> log.txt`
        assert not on_terminal(log)
    assert not on_terminal(log)  # closed: isatty raises ValueError
    assert not on_terminal(object())  # no isatty at all


def test_bar_draws_on_a_terminal_only(monkeypatch, terminal_stderr):
    err = terminal_stderr()
    assert list(progress_bar(range(3), desc="work")) == [0, 1, 2]
    assert "\r" in err.getvalue() and "3/3" in err.getvalue()
    for show, stream in ((True, io.StringIO()), (False, err)):
        monkeypatch.setattr(sys, "stderr", stream)
        stream.seek(0)
        stream.truncate()
        bar = progress_bar(total=50, show=show, desc="work")
        for _ in range(50):
            bar.update(1)
        bar.close()
        assert stream.getvalue() == ""
