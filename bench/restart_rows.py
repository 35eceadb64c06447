"""What restart markers (``augpipe pack``'s default ``--restart-rows``) buy: the same images
packed without markers, with one restart interval per MCU row (packs made before the segment
rule) and with segment intervals (k MCUs dividing the MCU row, ``augpipe/format/restart.py``),
interleaved in one run.

    python bench/restart_rows.py --plain DIR --restart DIR [--segments DIR]
        [--plain DIR2 --restart DIR2 --segments DIR3] [--res 224,160] [--images 1000]
        [--repeats 5] [--epochs 3] [--no-loader] [--quick]

For each group of packed datasets (the same inputs and options but the markers; checked: the
same sizes and labels), the payload bytes of each, and for each ``--res`` with RandomResizedCrop
+ HorizontalFlip: decode only (``decode.load_region`` of each image's standard crop, µs per
image, one process), decode + augment per core (images/s), then the Loader with 2 workers
(``--epochs`` whole epochs after a warm-up epoch each; ``--no-loader`` leaves it out). One
process, ``--images`` records, ``--repeats`` interleaved passes after a warm-up; medians, and
the gains as medians of the per-pass ratios. ``--quick``: 200 images, 1 repeat, 1 epoch, res
160 (a check that it runs). Prints a markdown table.

The run on the two benchmark corpora (AUGPIPE_CORPUS: the folder that holds them):

    python bench/restart_rows.py \\
        --plain $AUGPIPE_CORPUS/packed --restart $AUGPIPE_CORPUS/packed-rst \\
        --segments $AUGPIPE_CORPUS/packed-seg \\
        --plain $AUGPIPE_CORPUS/detail/packed --restart $AUGPIPE_CORPUS/detail/packed-rst \\
        --segments $AUGPIPE_CORPUS/detail/packed-seg
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine_metadata, metadata_line, shown  # noqa: E402

NAMES = ("plain", "restart rows", "segments")


def _payload_bytes(ds) -> int:
    return sum(len(ds.raw(i)) for i in range(len(ds)))


def _order(rep: int, n: int) -> list[int]:
    return list(range(n)) if rep % 2 else list(range(n))[::-1]


def per_core(dss: list, res: int, n: int, repeats: int) -> tuple[list, list]:
    """(decode-only µs per image, decode + augment images/s), one list of passes per pack."""
    import cv2

    from augpipe import Compose, HorizontalFlip, RandomResizedCrop, decode
    from augpipe.ops.fused import fields, source_boxes
    from augpipe.ops.params import min_scales

    cv2.setNumThreads(1)
    idx = np.random.default_rng(0).permutation(len(dss[0]))[:n].astype(np.int64)
    pipes = [Compose([RandomResizedCrop(res), HorizontalFlip()]).bind(d) for d in dss]
    recs = pipes[0].sample_params(dss[0].sizes[idx], idx, 0, 0)
    scales, boxes = min_scales(recs), source_boxes(fields(recs), (res, res))
    out = np.empty((len(idx), res, res, 3), np.uint8)
    us: list = [[] for _ in dss]
    rates: list = [[] for _ in dss]
    for rep in range(repeats + 1):
        for k in _order(rep, len(dss)):
            ds = dss[k]
            t0 = time.perf_counter()
            for j, i in enumerate(idx):
                decode.load_region(ds, int(i), float(scales[j]), boxes[j, :4], boxes[j, 4],
                                   reuse=True)  # fmt: skip
            t1 = time.perf_counter()
            pipes[k].run_batch(ds, idx, 0, rep, out)
            t2 = time.perf_counter()
            if rep:
                us[k].append((t1 - t0) / len(idx) * 1e6)
                rates[k].append(len(idx) / (t2 - t1))
    return us, rates


def loader(packs: list, res: int, epochs: int) -> list:
    from augpipe import Compose, HorizontalFlip, Loader, RandomResizedCrop

    loaders = [Loader(p, 256, Compose([RandomResizedCrop(res), HorizontalFlip()]), workers=2,
                      output="numpy") for p in packs]  # fmt: skip
    rates: list = [[] for _ in packs]
    try:
        for ep in range(epochs + 1):
            for k in _order(ep, len(packs)):
                lo = loaders[k]
                lo.set_epoch(ep)
                n, t0 = 0, time.perf_counter()
                for images, _ in lo:
                    n += len(images)
                if ep:
                    rates[k].append(n / (time.perf_counter() - t0))
    finally:
        for lo in loaders:
            lo.close()
    return rates


def _row(what: str, runs: list, fmt: str, lower_is_better: bool = False) -> str:
    """Medians per pack, then each pack's gain over plain and (segments) over restart rows."""
    cells = [format(statistics.median(r), fmt) for r in runs]

    def gain(a, b):  # median of the per-pass speed ratios of b over a
        return statistics.median((x / y) if lower_is_better else (y / x) for x, y in zip(a, b))

    gains = [f"{gain(runs[0], r):.3f}×" for r in runs[1:]]
    if len(runs) == 3:
        gains.append(f"{gain(runs[1], runs[2]):.3f}×")
    return f"| {what} | " + " | ".join(cells + gains) + " |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plain", action="append", required=True, help="packed without markers")
    ap.add_argument("--restart", action="append", required=True,
                    help="the same, one restart interval per MCU row")  # fmt: skip
    ap.add_argument("--segments", action="append", default=[],
                    help="the same, segment intervals (the current pack default)")  # fmt: skip
    ap.add_argument("--res", default="224,160")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--no-loader", action="store_true", help="leave the Loader rows out")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if len(args.plain) != len(args.restart) or len(args.segments) not in (0, len(args.plain)):
        ap.error("give as many --plain as --restart (and --segments, if any) datasets")
    sizes = [int(v) for v in args.res.split(",") if v]
    if args.quick:
        args.images, args.repeats, args.epochs, sizes = 200, 1, 1, [160]
    from augpipe import ShardDataset

    parts = [metadata_line(machine_metadata())]
    segs = args.segments or [None] * len(args.plain)
    for group in zip(args.plain, args.restart, segs):
        packs = [p for p in group if p is not None]
        dss = [ShardDataset(p) for p in packs]
        for p, d in zip(packs[1:], dss[1:]):
            if not (np.array_equal(dss[0].sizes, d.sizes)
                    and np.array_equal(dss[0].labels, d.labels)):  # fmt: skip
                raise SystemExit(f"{p}: not the same images as {packs[0]} (sizes or labels)")
        nbytes = [_payload_bytes(d) for d in dss]
        names = NAMES[: len(packs)]
        described = ", ".join(f"`{shown(p)}` ({name}, {b / len(d) / 1024:.1f} KiB per image"
                              + (f", {b / nbytes[0] - 1:+.2%} bytes" if k else "") + ")"
                              for k, (p, name, b, d) in enumerate(zip(packs, names, nbytes,
                                                                      dss)))  # fmt: skip
        gains = [f"{n} ÷ plain" for n in names[1:]] + (["segments ÷ rows"] if len(packs) == 3
                                                       else [])  # fmt: skip
        rows = [described + ":", "", "| what | " + " | ".join(names + tuple(gains)) + " |",
                "|---|" + "---:|" * (len(names) + len(gains))]  # fmt: skip
        for res in sizes:
            print(f"[restart_rows] {shown(packs[0])} group at {res} ...", file=sys.stderr,
                  flush=True)  # fmt: skip
            us, rates = per_core(dss, res, args.images, args.repeats)
            rows.append(_row(f"decode only, µs per image, res {res}", us, ".1f", True))
            rows.append(_row(f"decode + augment per core, images/s, res {res}", rates, ",.0f"))
            if not args.no_loader:
                rows.append(_row(f"Loader, 2 workers, images/s, res {res}",
                                 loader(packs, res, args.epochs), ",.0f"))  # fmt: skip
        parts.append("\n".join(rows))
    print("\n\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
