"""What restart markers per MCU row (``augpipe pack``'s default ``--restart-rows``) buy: the
same images packed with and without them, interleaved in one run.

    python bench/restart_rows.py --plain DIR --restart DIR [--plain DIR2 --restart DIR2]
        [--res 224,160] [--images 1000] [--repeats 5] [--epochs 3] [--quick]

For each (plain, restart) pair of packed datasets (the same inputs and options but
``--restart-rows``; checked: the same sizes and labels) and each ``--res``: decode + augment of
RandomResizedCrop + HorizontalFlip per core (one process, ``--images`` records, ``--repeats``
interleaved passes after a warm-up, medians of the rates and of the per-pass ratio), then the
Loader with 2 workers (``--epochs`` interleaved whole epochs after a warm-up epoch each). The
payload sizes of both are reported too. ``--quick``: 200 images, 1 repeat, 1 epoch, res 160 (a
check that it runs). Prints a markdown table.
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


def _bytes(packed: str) -> int:
    import json

    shards = json.loads((Path(packed) / "manifest.json").read_text())["shards"]
    return sum(int(s["bytes"]) for s in shards)


def per_core(pair: tuple[str, str], res: int, n: int, repeats: int) -> tuple[list, list]:
    import cv2

    from augpipe import Compose, HorizontalFlip, RandomResizedCrop, ShardDataset

    cv2.setNumThreads(1)
    dss = [ShardDataset(p) for p in pair]
    if not (
        np.array_equal(dss[0].sizes, dss[1].sizes) and np.array_equal(dss[0].labels, dss[1].labels)
    ):
        raise SystemExit(f"{pair}: not the same images (sizes or labels differ)")  # fmt: skip
    idx = np.random.default_rng(0).permutation(len(dss[0]))[:n].astype(np.int64)
    pipes = [Compose([RandomResizedCrop(res), HorizontalFlip()]).bind(d) for d in dss]
    out = np.empty((len(idx), res, res, 3), np.uint8)
    rates: tuple[list, list] = ([], [])
    for rep in range(repeats + 1):
        for k in (0, 1) if rep % 2 else (1, 0):
            t0 = time.perf_counter()
            pipes[k].run_batch(dss[k], idx, 0, rep, out)
            if rep:
                rates[k].append(len(idx) / (time.perf_counter() - t0))
    return rates


def loader(pair: tuple[str, str], res: int, epochs: int) -> tuple[list, list]:
    from augpipe import Compose, HorizontalFlip, Loader, RandomResizedCrop

    loaders = [Loader(p, 256, Compose([RandomResizedCrop(res), HorizontalFlip()]), workers=2,
                      output="numpy") for p in pair]  # fmt: skip
    rates: tuple[list, list] = ([], [])
    try:
        for ep in range(epochs + 1):
            for k in (0, 1) if ep % 2 else (1, 0):
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


def _row(what: str, rates: tuple[list, list]) -> str:
    a, b = rates
    gain = statistics.median(y / x for x, y in zip(a, b))
    return (f"| {what} | {statistics.median(a):,.0f} | {statistics.median(b):,.0f} | "
            f"{statistics.median(b) / statistics.median(a):.3f}× | {gain:.3f}× |")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plain", action="append", required=True, help="packed without markers")
    ap.add_argument("--restart", action="append", required=True, help="the same, with them")
    ap.add_argument("--res", default="224,160")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if len(args.plain) != len(args.restart):
        ap.error("give as many --plain as --restart datasets")
    sizes = [int(v) for v in args.res.split(",") if v]
    if args.quick:
        args.images, args.repeats, args.epochs, sizes = 200, 1, 1, [160]
    parts = [metadata_line(machine_metadata())]
    for plain, rst in zip(args.plain, args.restart):
        grow = _bytes(rst) / _bytes(plain) - 1
        rows = [f"`{shown(plain)}` (plain) against `{shown(rst)}` (restart markers, "
                f"{grow:+.2%} payload bytes):", "",
                "| what | plain, images/s | restart rows | ratio of medians | median of "
                "per-pass ratios |", "|---|---:|---:|---:|---:|"]  # fmt: skip
        for res in sizes:
            print(f"[restart_rows] {shown(rst)} at {res} ...", file=sys.stderr, flush=True)
            rows.append(
                _row(
                    f"decode + augment per core, res {res}",
                    per_core((plain, rst), res, args.images, args.repeats),
                )
            )
            rows.append(_row(f"Loader, 2 workers, res {res}",
                             loader((plain, rst), res, args.epochs)))  # fmt: skip
        parts.append("\n".join(rows))
    print("\n\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
