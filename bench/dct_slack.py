"""Evaluation: DCT-scaled decode when the scaled crop is slightly smaller than the output.

    python bench/dct_slack.py [--corpus both|standard|detail] [--res 160,192,224]
        [--slack 0.9,0.8] [--images 1000] [--repeats 5] [--quick]

Today a record is decoded at 1/d (d in 8, 4, 2) only when the crop still has at least one
decoded pixel per output pixel (``augpipe.decode.dct_factor``: ``scale >= d``). With
``Compose(dct_slack=s)``, s < 1, the rule is ``scale >= s d``: the crop may come out of the
decoder up to 1/s times smaller than the output and be upsampled by the fused kernel. This
script measures, on the standard pipeline (RandomResizedCrop + HorizontalFlip, the axis
kernel), per corpus and resolution: the share of samples whose factor changes, the PSNR of
their outputs against the exact rule's (minimum and median over those samples), and the
decode + augment rate per core (CPU time of this process, interleaved repeats, median), the
exact rule against each slack. Prints a markdown table; ``--quick``: 100 images, 1 repeat,
res 160 (a check that it runs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import add_corpus_args, chosen_corpora, machine_metadata, metadata_line  # noqa


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per image, dB (inf where equal)."""
    mse = np.mean((a.astype(np.float64) - b) ** 2, axis=tuple(range(1, a.ndim)))
    with np.errstate(divide="ignore"):
        return 10 * np.log10(255.0**2 / mse)


def measure(packed: str, res: int, slacks: list[float], n: int, repeats: int) -> list[str]:
    import cv2

    from augpipe import Compose, HorizontalFlip, RandomResizedCrop, ShardDataset, decode
    from augpipe.ops.params import min_scales

    cv2.setNumThreads(1)
    ds = ShardDataset(packed)
    idx = np.random.default_rng(0).permutation(len(ds))[: min(n, len(ds))].astype(np.int64)
    pipe = Compose([RandomResizedCrop(res), HorizontalFlip()]).bind(ds)
    scales = min_scales(pipe.sample_params(np.asarray(ds.sizes)[idx], idx, 0, 0))
    rule = decode.dct_factor
    pipes = {v: Compose([RandomResizedCrop(res), HorizontalFlip()], dct_slack=v).bind(ds)
             for v in [1.0, *slacks]}  # fmt: skip
    outs = {v: np.empty((len(idx), res, res, 3), np.uint8) for v in pipes}
    rates: dict[float, list[float]] = {v: [] for v in pipes}
    for rep in range(repeats + 1):
        for v, p in pipes.items():
            t0 = time.process_time()
            p.run_batch(ds, idx, 0, 0, outs[v])
            if rep:
                rates[v].append(len(idx) / (time.process_time() - t0))
    base = rates[1.0]
    rows = []
    for s in slacks:
        moved = np.array([rule(x, s) != rule(x) for x in scales])
        p = _psnr(outs[s][moved], outs[1.0][moved])
        gain = statistics.median(b / a for a, b in zip(base, rates[s]))
        lo = f"{p.min():.1f}" if moved.any() else "-"
        med = f"{np.median(p):.1f}" if moved.any() else "-"
        rows.append(f"| {res} | {s} | {moved.mean():.1%} | {lo} | {med} | "
                    f"{statistics.median(base):,.0f} | {statistics.median(rates[s]):,.0f} | "
                    f"{gain:.3f}× |")  # fmt: skip
    ds.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_corpus_args(ap)
    ap.add_argument("--res", default="160,192,224")
    ap.add_argument("--slack", default="0.9,0.8")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    sizes = [int(v) for v in args.res.split(",") if v]
    slacks = [float(v) for v in args.slack.split(",") if v]
    if args.quick:
        args.images, args.repeats, sizes = 100, 1, [160]
    import tempfile

    parts = [metadata_line(machine_metadata())]
    with tempfile.TemporaryDirectory(prefix="augpipe-slack-") as tmp:
        for name, (_photos, packed) in chosen_corpora(args, tmp, 256).items():
            rows = [
                "| res | slack | samples moved to a coarser factor | PSNR of those vs today, "
                "min (dB) | median (dB) | today, images/s per core | with the slack | "
                "gain (median of per-repeat ratios) |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for res in sizes:
                print(f"[dct_slack] {name} at {res} ...", file=sys.stderr, flush=True)
                rows += measure(str(packed), res, slacks, args.images, args.repeats)
            parts.append(f"### Corpus `{name}`\n\n" + "\n".join(rows))  # fmt: skip
    print("\n\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
