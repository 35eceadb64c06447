"""`augpipe preview` (placeholder until its issue lands)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("preview", help="(not implemented yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise NotImplementedError("augpipe preview is not implemented yet")
