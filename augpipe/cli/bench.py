"""`augpipe bench` (placeholder until its issue lands)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("bench", help="(not implemented yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise NotImplementedError("augpipe bench is not implemented yet")
