"""`detrt VERB ...`: the command line.

One function per verb; its docstring is the help. Each verb imports what it needs inside itself, so
`detrt run` works on a runtime-only install (no torch) and a verb whose extra is missing says which
extra to install. Bad input ends with one line on stderr and exit status 2.
"""

import argparse
import sys

from detrt.errors import InputError

# Verbs register here as (function, add_flags, extra it needs or None). Order is the help order.
VERBS = []


def verb(add_flags, extra=None):
    def register(fn):
        VERBS.append((fn, add_flags, extra))
        return fn

    return register


def build_parser():
    parser = argparse.ArgumentParser(prog="detrt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for fn, add_flags, _ in VERBS:
        doc = (fn.__doc__ or "").strip()
        p = sub.add_parser(fn.__name__, help=doc.splitlines()[0] if doc else None, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add_flags(p)
        p.set_defaults(_fn=fn)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    extra = next(e for fn, _, e in VERBS if fn is args._fn)
    try:
        return args._fn(args) or 0
    except InputError as e:
        print(f"detrt {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if extra is None:
            raise
        print(f"detrt {args.verb}: error: needs {e.name!r}; install it with: pip install 'detrt[{extra}]'",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"detrt {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
