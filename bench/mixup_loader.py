"""Mixup/CutMix's cost in the Loader's throughput: the standard pipeline (RandomResizedCrop 224
+ flip) through ``Loader(workers=2, output="numpy")``, with and without Mixup/CutMix (timm's
0.8 / 1.0, switch 0.5, elem mode, prob 1: every sample mixes), same run, interleaved.

    python bench/mixup_loader.py [--packed data/corpus/packed] [--images 2000] [--repeats 5]
        [--workers 2] [--batch 64] [--quick]

Rows: no Mixup; ``stage="host"`` (pixels mixed in place in the worker that built the batch,
targets in the main process); ``stage="device"`` on the NumPy batch (the whole op in the main
process, on a copy: where the host stage used to run). Each measurement is a fresh Loader: one
warm-up epoch (worker start, caches), then one epoch timed after the batches built ahead of
it (prefetch); medians of ``--repeats``. The cost
is ``1 - rate / rate without Mixup`` (target, issue 10: <= 5%). ``--quick``: 640 images, 1
repeat (checks the script runs). bench/recipe_speed.py prints these rows too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from augpipe import transforms as T  # noqa: E402
from augpipe.format.dataset import ShardDataset  # noqa: E402
from augpipe.loader.loader import Loader  # noqa: E402
from augpipe.ops.batch.mixup import Mixup  # noqa: E402
from augpipe.train.split import SubsetDataset  # noqa: E402
from bench.common import PACKED, metadata_line, shown, summarize  # noqa: E402

BASE = "Loader, standard pipeline, no Mixup"
VARIANTS = {
    BASE: None,
    "+ Mixup/CutMix host stage (in the workers)": "host",
    "+ Mixup/CutMix on the NumPy batch in the main process": "device",
}


def _pipe(stage: str | None, size: int) -> T.Compose:
    ops = [T.RandomResizedCrop(size), T.HorizontalFlip()]
    if stage is not None:
        ops.append(Mixup(0.8, 1.0, switch_prob=0.5, mode="elem", stage=stage))
    return T.Compose(ops)


def _epoch_rate(ds, pipe, batch: int, workers: int) -> float:
    with Loader(ds, batch, pipe, seed=0, workers=workers, output="numpy", drop_last=True) as lo:
        for _ in lo:  # warm-up epoch: worker start, Numba caches, decode buffers
            pass
        # the next epoch's first batches were built ahead (prefetch): the clock starts after
        # them, when the consumer waits on the workers again
        skip = lo.prefetch + 1
        if len(lo) < skip + 4:
            raise SystemExit(f"--images: {len(lo)} batches per epoch, need {skip + 4}")
        for b, _ in enumerate(lo):
            if b == skip:
                t0 = time.perf_counter()
        return (len(lo) - 1 - skip) * batch / (time.perf_counter() - t0)


def loader_rows(packed, images: int, repeats: int, workers: int = 2, batch: int = 64,
                size: int = 224) -> dict[str, dict]:  # fmt: skip
    """Loader images/s per variant (see the module docstring), interleaved."""
    base = ShardDataset(packed)
    ds = SubsetDataset(base, np.arange(min(images, len(base)), dtype=np.int64))
    pipes = {name: _pipe(stage, size) for name, stage in VARIANTS.items()}
    rates: dict[str, list[float]] = {k: [] for k in pipes}
    for _ in range(repeats):
        for name, pipe in pipes.items():
            rates[name].append(_epoch_rate(ds, pipe, batch, workers))
    return {name: summarize(r) for name, r in rates.items()}


def markdown(rows: dict[str, dict], workers: int) -> list[str]:
    base = rows[BASE]["median"]
    lines = [f"| Loader, {workers} workers, RRC 224 + flip, uint8 NumPy out | images/s median | "
             "min–max | cost vs no Mixup (target ≤ 5%) |", "|---|---|---|---|"]  # fmt: skip
    for name, r in rows.items():
        cost = "—" if name == BASE else f"{1 - r['median'] / base:.1%}"
        lines.append(f"| {name} | {r['median']:,.0f} | {r['min']:,.0f}–{r['max']:,.0f} | {cost} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packed", default=str(PACKED))
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="640 images, 1 repeat")
    args = ap.parse_args()
    if args.quick:
        args.images, args.repeats = min(args.images, 640), 1
    rows = loader_rows(args.packed, args.images, args.repeats, args.workers, args.batch)
    lines = markdown(rows, args.workers)
    lines += ["", f"{args.images} records of `{shown(args.packed)}`, batch {args.batch}, "
              f"{args.repeats} interleaved repeats (fresh Loader, 1 warm-up epoch, 1 timed "
              "after the prefetched batches).", "", metadata_line()]  # fmt: skip
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
