"""`augpipe pack SRC OUT`: images -> LMDB shards + manifest.json (see docs/format.md)."""

from __future__ import annotations

import argparse
import signal
import sys

from augpipe.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "pack",
        help="pack an image folder or list file into LMDB shards",
        description="Pack an ImageFolder tree (SRC OUT) or a Caffe list file "
        "(--list FILE [--root DIR] OUT) into a dataset directory OUT.",
    )
    p.add_argument("paths", nargs="+", metavar="SRC OUT", help="image folder and output dir "
                   "(with --list: just OUT, or ROOT OUT)")  # fmt: skip
    p.add_argument(
        "--list",
        dest="list_file",
        metavar="FILE",
        help="list file of 'relative/path label' lines (Caffe convert_imageset)",
    )
    p.add_argument(
        "--root",
        metavar="DIR",
        help="folder the list's paths are relative to (default: the list file's folder)",
    )
    p.add_argument(
        "--format",
        choices=("jpeg", "raw"),
        default="jpeg",
        help="store JPEG bytes (default) or raw HWC uint8 pixels",
    )
    p.add_argument("--quality", type=int, default=90, help="JPEG quality 1..100 (default 90)")
    p.add_argument(
        "--keep-jpeg",
        action="store_true",
        help="store source JPEGs that need no rotation/resize as they are (metadata "
        "stripped) instead of re-encoding: faster, no generation loss (with --restart-rows "
        "they get the markers by a lossless transcode: the same pixels)",
    )
    p.add_argument(
        "--restart-rows",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write JPEG restart markers every few 16-pixel blocks, rows holding whole "
        "segments (default; +4-6%% bytes, the same pixels): region decodes then entropy-decode "
        "only the segments under each crop; --no-restart-rows writes plain JPEGs",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--max-side",
        type=int,
        default=0,
        metavar="N",
        help="downscale so the longer side is at most N (never upscales)",
    )
    size.add_argument(
        "--short-side",
        type=int,
        default=0,
        metavar="N",
        help="downscale so the shorter side is at most N (never upscales)",
    )
    p.add_argument(
        "--shard-size",
        type=float,
        default=256,
        metavar="MB",
        help="target shard size in MiB (default 256)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="decode/encode processes (default 1); output is identical for any N",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        metavar="N",
        help="skip images with more pixels than this (decompression bombs; "
        "default 89478485, Pillow's limit)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 2) on the first bad input instead of skipping it",
    )
    p.add_argument(
        "--shuffle",
        type=int,
        default=None,
        metavar="SEED",
        help="pack the inputs in a seeded random order instead of sorted order (mixes "
        "classes within shards)",
    )
    p.add_argument(
        "--part",
        metavar="i/N",
        default=None,
        help="pack only part i (0-based) of N into the part directory OUT; join the parts "
        "with 'augpipe merge PART0 .. PART{N-1} OUT' (byte-identical to one pack)",
    )
    for flag, meta, what in (
        ("--coco", "FILE", "COCO instances/keypoints JSON (images under --root DIR)"),
        ("--yolo", "DIR", "YOLO txt folders: DIR/images + DIR/labels"),
        ("--voc", "DIR", "Pascal VOC: DIR/Annotations/*.xml + DIR/JPEGImages"),
        ("--masks", "DIR", "semantic masks: DIR/images + DIR/masks (PNG, 255 = ignore)"),
    ):
        p.add_argument(flag, metavar=meta, help=f"pack targets from {what}; give only OUT")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it is a dataset "
                   "(with --part: a part)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)  # fmt: skip


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM: unwind like Ctrl-C so the temp directory is removed


def run(args) -> int:
    from augpipe.format.imageio import DEFAULT_MAX_PIXELS
    from augpipe.format.pack import pack

    paths = args.paths
    targets = {k: getattr(args, k) for k in ("coco", "yolo", "voc", "masks")}
    if any(v is not None for v in targets.values()):
        if len(paths) != 1 or args.list_file:
            raise UserError(
                f"pack: with --coco/--yolo/--voc/--masks expected just OUT, got "
                f"{len(paths)} path(s)" + (" and --list" if args.list_file else "")
            )
        src, out = None, paths[0]
    elif args.list_file:
        if len(paths) == 2 and args.root:
            raise UserError("pack: with --list give ROOT OUT or --root ROOT with OUT, not both")
        if len(paths) > 2:
            raise UserError(f"pack: with --list expected [ROOT] OUT, got {len(paths)} paths")
        src, out = (paths[0], paths[1]) if len(paths) == 2 else (None, paths[0])
    elif len(paths) != 2:
        raise UserError(
            f"pack: expected SRC OUT, got {len(paths)} path(s); for a list file use --list FILE"
        )
    else:
        src, out = paths
    old = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = pack(
            src,
            out,
            list_file=args.list_file,
            root=args.root,
            format=args.format,
            quality=args.quality,
            max_side=args.max_side,
            short_side=args.short_side,
            shard_size_mb=args.shard_size,
            workers=args.workers,
            strict=args.strict,
            max_pixels=args.max_pixels if args.max_pixels is not None else DEFAULT_MAX_PIXELS,
            overwrite=args.overwrite,
            keep_jpeg=args.keep_jpeg,
            restart_rows=args.restart_rows,
            shuffle_seed=args.shuffle,
            part=args.part,
            progress=not args.no_progress,
            **targets,
        )
    finally:
        signal.signal(signal.SIGTERM, old)
    print(report.summary(), file=sys.stderr)
    return 0
