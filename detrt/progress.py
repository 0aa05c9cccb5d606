"""Progress bars, drawn only on a terminal.

A bar redraws itself with carriage returns: piped into a log, that is hundreds of partial updates.
Every progress bar of detrt is made by `progress_bar`, so this one rule decides for all of them.
"""

import sys

from tqdm import tqdm


def on_terminal(stream=None):
    """Whether `stream` (default: stderr, where the bars go) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty (a replaced stream), or closed
        return False


def progress_bar(iterable=None, show=True, **kwargs):
    """A tqdm bar on stderr when `show` and stderr is a terminal; else a silent one (iterates, update() is a no-op)."""
    return tqdm(iterable, disable=not (show and on_terminal()), **kwargs)
