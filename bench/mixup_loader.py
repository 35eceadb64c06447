"""Mixup/CutMix's cost in the Loader's throughput: the standard pipeline (RandomResizedCrop 224
+ flip) through ``Loader(workers=2, output="numpy")``, with and without Mixup/CutMix (timm's
0.8 / 1.0, switch 0.5, elem mode, prob 1: every sample mixes), and per image in one process.

    python bench/mixup_loader.py [--packed data/corpus/packed] [--images 2000] [--repeats 7]
        [--epochs 3] [--workers 2] [--batch 64] [--quick]

Loader rows: no Mixup; ``stage="host"`` (pixels mixed in place in the worker that built the
batch, targets in the main process); ``stage="device"`` on the NumPy batch (the whole op in
the main process, on a copy). Each measurement is a fresh Loader: one warm-up epoch (worker
start, caches), then ``--epochs`` epochs timed as one span, from the first batch the workers
had not built ahead (prefetch) to the last. The variants run back to back within a repeat,
in alternating order (A B C, C B A, ...), so each Mixup row always runs next to the row
without Mixup; the cost is ``1 - median over repeats of (rate / rate without Mixup in the
same repeat)`` (paired: slow drifts of a shared machine cancel), beside ``1 - median / median``
(target, issue 10: <= 5%). Beside the rate, the CPU the Loader's processes (main + workers,
``/proc/PID/schedstat``) spent per image over the same span, and its paired cost ``median of
(CPU / CPU without Mixup) - 1``: what the throughput cost is where the cores are the limit,
and far less sensitive than the rate to other load on a shared machine.

One-process rows (this process, one thread): per batch, the standard
pipeline's ``run_batch`` (what a worker does without Mixup), then the worker's Mixup on the
batch it just built (``Mixup.mix_inplace``: the draws and the blend) and the main process's
soft targets from the λ the worker drew (``Mixup.targets``; the Loader hands λ over in the
slot), interleaved batch by batch; the share is their time over the pipeline's, the CPU that
Mixup/CutMix adds per image wherever it runs.

``--quick``: 640 images, 1 repeat, 1 timed epoch (checks the script runs).
bench/recipe_speed.py prints the Loader rows too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from augpipe import transforms as T  # noqa: E402
from augpipe.format.dataset import ShardDataset  # noqa: E402
from augpipe.loader.loader import Loader  # noqa: E402
from augpipe.ops.batch.blend import mix_inplace  # noqa: E402
from augpipe.ops.batch.mixup import Mixup  # noqa: E402
from augpipe.train.split import SubsetDataset  # noqa: E402
from bench.common import PACKED, metadata_line, shown, summarize  # noqa: E402

BASE = "Loader, standard pipeline, no Mixup"
VARIANTS = {
    BASE: None,
    "+ Mixup/CutMix host stage (in the workers)": "host",
    "+ Mixup/CutMix on the NumPy batch in the main process": "device",
}


def _mixup(stage: str = "host", classes: int | None = None) -> Mixup:
    return Mixup(0.8, 1.0, switch_prob=0.5, mode="elem", stage=stage, num_classes=classes)


def _pipe(stage: str | None, size: int) -> T.Compose:
    ops = [T.RandomResizedCrop(size), T.HorizontalFlip()]
    if stage is not None:
        ops.append(_mixup(stage))
    return T.Compose(ops)


def _cpu_ns(pids) -> float:
    """CPU time (ns) the processes ``pids`` have run so far; NaN where /proc cannot say."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return float("nan")
    return float(total)


def _epochs_rate(ds, pipe, batch: int, workers: int, epochs: int) -> tuple[float, float]:
    """(images/s, CPU µs per image of the main process and the workers) over the timed span."""
    with Loader(ds, batch, pipe, seed=0, workers=workers, output="numpy", drop_last=True) as lo:
        for _ in lo:  # warm-up epoch: worker start, Numba caches, decode buffers
            pass
        # the next epoch's first batches were built ahead (prefetch): the clock starts after
        # them, when the consumer waits on the workers again, and runs over all timed epochs
        skip = lo.prefetch + 1
        if len(lo) < skip + 4:
            raise SystemExit(f"--images: {len(lo)} batches per epoch, need {skip + 4}")
        t0 = None
        pids = [os.getpid(), *lo.worker_pids]
        for _ in range(epochs):
            for b, _ in enumerate(lo):
                if t0 is None and b == skip:
                    t0, c0 = time.perf_counter(), _cpu_ns(pids)
        n = (epochs * len(lo) - 1 - skip) * batch
        return n / (time.perf_counter() - t0), (_cpu_ns(pids) - c0) / n / 1e3


def loader_rows(packed, images: int, repeats: int, workers: int = 2, batch: int = 64,
                size: int = 224, epochs: int = 3) -> dict[str, dict]:  # fmt: skip
    """Loader images/s per variant (see the module docstring); the Mixup rows also carry
    ``paired_cost``: 1 - the median of their per-repeat ratio to the row without Mixup; every
    row ``cpu_us`` (CPU µs per image: median, min, max) and the Mixup rows ``cpu_cost``."""
    base = ShardDataset(packed)
    ds = SubsetDataset(base, np.arange(min(images, len(base)), dtype=np.int64))
    pipes = {name: _pipe(stage, size) for name, stage in VARIANTS.items()}
    rates: dict[str, list[float]] = {k: [] for k in pipes}
    cpu: dict[str, list[float]] = {k: [] for k in pipes}
    names = list(pipes)
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else names[::-1]:
            rate, us = _epochs_rate(ds, pipes[name], batch, workers, epochs)
            rates[name].append(rate)
            cpu[name].append(us)
    rows = {name: summarize(r) for name, r in rates.items()}
    for name in names:
        rows[name]["cpu_us"] = summarize(cpu[name])
    for name in names[1:]:
        ratios = [m / b for m, b in zip(rates[name], rates[BASE])]
        rows[name]["paired_cost"] = 1.0 - statistics.median(ratios)
        used = [m / b for m, b in zip(cpu[name], cpu[BASE])]
        rows[name]["cpu_cost"] = statistics.median(used) - 1.0
    return rows


def one_process_rows(packed, images: int, repeats: int, batch: int = 64,
                     size: int = 224) -> dict[str, dict]:  # fmt: skip
    """Per image in this process: µs of the standard pipeline's ``run_batch``, of the worker's
    Mixup on the batch just built (``Mixup.mix_inplace``: its draws, ``Mixup.params``, and the
    blend, ``blend.mix_inplace``, timed apart), of the main process's soft targets from its λ
    (one value per pass over ``images``; pass 0, compilation and caches, discarded)."""
    ds = ShardDataset(packed)
    n = min(images, len(ds)) // batch * batch
    if n == 0:
        raise SystemExit(f"--images: need at least one batch of {batch}")
    pipe, op = _pipe(None, size), _mixup("host", len(ds.classes))
    out = np.empty((batch, size, size, 3), np.uint8)
    labels = np.asarray(ds.labels)
    us: dict[str, list[float]] = {"pipeline": [], "draws": [], "blend": [], "targets": []}
    for rep in range(repeats + 1):
        spent = dict.fromkeys(us, 0.0)
        for b in range(n // batch):
            idx = np.arange(b * batch, (b + 1) * batch, dtype=np.int64)
            t0 = time.perf_counter()
            pipe.run_batch(ds, idx, 0, 0, out)
            t1 = time.perf_counter()
            lam, cut, boxes = op.params(0, 0, b, batch, (size, size), 2)  # = op.mix_inplace
            t2 = time.perf_counter()
            mix_inplace(out, lam, cut, boxes)
            t3 = time.perf_counter()
            op.targets(labels[idx], lam)
            t4 = time.perf_counter()
            for k, dt in zip(us, np.diff([t0, t1, t2, t3, t4])):
                spent[k] += dt
        if rep:
            for k in us:
                us[k].append(spent[k] / n * 1e6)
    rows = {k: summarize(v) for k, v in us.items()}
    shares = [(d + m + t) / p for p, d, m, t in zip(*us.values())]
    rows["share"] = summarize(shares)
    return rows


def markdown(rows: dict[str, dict], workers: int) -> list[str]:
    base = rows[BASE]["median"]
    lines = [f"| Loader, {workers} workers, RRC 224 + flip, uint8 NumPy out | images/s median | "
             "min–max | cost: 1 − median of paired ratios (target ≤ 5%) | 1 − median ÷ median "
             "| CPU µs/image (main + workers), median (min–max) | CPU cost: median of paired "
             "ratios − 1 |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in rows.items():
        paired = f"{r['paired_cost']:.1%}" if "paired_cost" in r else "—"
        cost = "—" if name == BASE else f"{1 - r['median'] / base:.1%}"
        c = r.get("cpu_us")
        cpu = f"{c['median']:.1f} ({c['min']:.1f}–{c['max']:.1f})" if c else "—"
        cpu_cost = f"{r['cpu_cost']:.1%}" if "cpu_cost" in r else "—"
        lines.append(f"| {name} | {r['median']:,.0f} | {r['min']:,.0f}–{r['max']:,.0f} | "
                     f"{paired} | {cost} | {cpu} | {cpu_cost} |")  # fmt: skip
    return lines


def one_process_markdown(rows: dict[str, dict]) -> list[str]:
    names = {"pipeline": "standard pipeline (`run_batch`, in a worker)",
             "draws": "+ Mixup/CutMix draws (`Mixup.params`, in the worker)",
             "blend": "+ Mixup/CutMix pixels (`blend.mix_inplace`, in the worker)",
             "targets": "+ soft targets (`targets`, in the main process)"}  # fmt: skip
    lines = ["| one process, RRC 224 + flip, batch of 64 | µs per image, median | min–max |",
             "|---|---|---|"]  # fmt: skip
    for k, name in names.items():
        r = rows[k]
        lines.append(f"| {name} | {r['median']:.1f} | {r['min']:.1f}–{r['max']:.1f} |")
    s = rows["share"]
    spread = f"{s['min']:.1%}–{s['max']:.1%}"
    lines += ["", "Mixup/CutMix's CPU per image as a share of the standard pipeline's: "
              f"{s['median']:.1%} (median of the passes' shares; {spread})."]  # fmt: skip
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packed", default=str(PACKED))
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per Loader")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="640 images, 1 repeat, 1 epoch")
    args = ap.parse_args()
    if args.quick:
        args.images, args.repeats, args.epochs = min(args.images, 640), 1, 1
    one = one_process_rows(args.packed, min(args.images, 640), args.repeats, args.batch)
    rows = loader_rows(args.packed, args.images, args.repeats, args.workers, args.batch,
                       epochs=args.epochs)  # fmt: skip
    lines = markdown(rows, args.workers)
    lines += ["", f"{args.images} records of `{shown(args.packed)}`, batch {args.batch}, "
              f"{args.repeats} repeats in alternating order (fresh Loader, 1 warm-up epoch, "
              f"{args.epochs} timed after the prefetched batches).", ""]  # fmt: skip
    lines += one_process_markdown(one)
    lines += ["", f"One process: {min(args.images, 640)} records, {args.repeats} passes after "
              "1 warm-up, interleaved batch by batch.", "", metadata_line()]  # fmt: skip
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
