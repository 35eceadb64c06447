"""`augpipe inspect OUT [--verify] [--json]`: describe (and check) a packed dataset.

Exit codes: 0 fine; 1 when --verify found damaged shards or records (each printed on stderr,
one line naming the shard and record); 2 when OUT is not a readable dataset at all.
"""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser(
        "inspect",
        help="summarise a packed dataset; --verify checks every record",
        description="Summarise a packed dataset. --verify reads every record and checks its "
        "CRC32 and that it decodes; exit 1 naming each bad shard/record.",
    )
    p.add_argument("path", metavar="OUT", help="packed dataset directory or URL (s3://, ...)")
    p.add_argument("--verify", action="store_true", help="check every record (reads everything)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args) -> int:
    from augpipe.format import inspect

    progress = not args.json and sys.stderr.isatty()
    if "://" in args.path:  # a URL: cache in $AUGPIPE_CACHE_DIR (see docs/remote.md)
        from augpipe.format.dataset import ShardDataset
        from augpipe.remote import inspect as remote_inspect

        ds = ShardDataset(args.path)
        problems = remote_inspect.verify(ds, progress) if args.verify else None
        summary = remote_inspect.summary(ds)  # after verify: what the cache now holds
    else:
        summary = inspect.summary(args.path)
        problems = inspect.verify(args.path, progress=progress) if args.verify else None
    if args.json:
        if problems is not None:
            summary["verify"] = {"ok": not problems, "problems": problems}
        print(json.dumps(summary, indent=1))
    else:
        print(inspect.format_summary(summary))
        if problems is not None and not problems:
            print(f"  verify: all {summary['count']} records OK")
    if problems:
        for line in problems:
            print(f"augpipe inspect: {args.path}: {line}", file=sys.stderr)
        print(f"augpipe inspect: verify FAILED: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    return 0
