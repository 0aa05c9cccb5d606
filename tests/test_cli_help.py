"""The command line as a whole: --version, and every verb's help with one example and its defaults."""

import argparse
import re
from importlib.metadata import version

import pytest

from detrt.cli import VERBS, build_parser, main, verb_name


def _verb_parsers():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"detrt {version('detrt')}"


@pytest.mark.parametrize("name", [verb_name(fn) for fn, _, _ in VERBS])
def test_help_shows_an_example_and_every_default(name):
    parser = _verb_parsers()[name]
    text = parser.format_help()
    assert re.search(r"^\s*examples?:\n\s+(detrt|torchrun) ", text, re.M), f"detrt {name} --help has no example"
    flat = " ".join(text.split())  # argparse wraps lines
    shown = 0
    for action in parser._actions:
        default = action.default
        if not action.option_strings or default is None or isinstance(default, bool) or default is argparse.SUPPRESS:
            continue
        assert f"(default: {default})" in flat, f"detrt {name} {action.option_strings[0]}: default not shown"
        shown += 1
    assert "(default: None)" not in flat and "(default: False)" not in flat
    if name in ("run", "bench", "build", "synth", "train", "demo"):
        assert shown > 0  # these verbs have flags with defaults: the check above ran


def test_tensorrt_only_flags_say_so():
    parsers = _verb_parsers()
    for name, flag in [("run", "--plugins"), ("run", "--useCudaGraph"), ("bench", "--plugins"), ("build", "--dla"),
                       ("build", "--plugins"), ("build", "--minShapes"), ("build", "--optShapes"),
                       ("build", "--maxShapes"), ("build", "--workspace"), ("build", "--timingCacheFile"),
                       ("build", "--fp16-all"), ("build", "--msda-plugin"), ("doctor", "--plugins")]:
        action = next(a for a in parsers[name]._actions if flag in a.option_strings)
        assert action.help.startswith("TensorRT: "), f"detrt {name} {flag}"
