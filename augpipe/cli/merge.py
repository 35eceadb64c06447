"""`augpipe merge PART... OUT`: join the parts of `augpipe pack --part i/N` (docs/format.md)."""

from __future__ import annotations

import signal
import sys

from augpipe.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "merge",
        help="join the parts of 'augpipe pack --part i/N' into one dataset",
        usage="augpipe merge [-h] [--overwrite] [--no-progress] PART [PART ...] OUT",
        description="Join part directories written by 'augpipe pack SRC PART --part i/N', "
        "given explicitly in order 0/N .. N-1/N, into the dataset directory OUT: "
        "byte-identical to a single 'augpipe pack' of the same inputs and options.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="the N part directories in "
                   "order, then the dataset directory to create")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it is a dataset")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM: unwind like Ctrl-C so the temp directory is removed


def run(args) -> int:
    from augpipe.format.merge import merge

    if len(args.paths) < 2:
        raise UserError(
            f"merge: expected PART... OUT (at least one part and the output), got "
            f"{len(args.paths)} path(s)"
        )
    *parts, out = args.paths
    old = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = merge(parts, out, overwrite=args.overwrite, progress=not args.no_progress)
    finally:
        signal.signal(signal.SIGTERM, old)
    print(report.summary(), file=sys.stderr)
    return 0
