"""``augpipe <command>``: argparse subcommands; user errors exit 2 with one line, no traceback."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from augpipe.errors import UserError

# Each module defines register(subparsers) which adds its parser and sets func=run(args) -> int.
COMMANDS = ("pack", "merge", "inspect", "preview", "train", "bench", "demo")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2
        self.exit(2, f"augpipe: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="augpipe", description="Fast, deterministic CNN training-data pipeline.")
    from augpipe import __version__

    parser.add_argument("--version", action="version", version=f"augpipe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"augpipe.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"augpipe {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"augpipe {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `augpipe inspect OUT | head`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
