"""`augpipe train` (placeholder until its issue lands)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("train", help="(not implemented yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise NotImplementedError("augpipe train is not implemented yet")
