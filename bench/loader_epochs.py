"""Loader start-up per start method, and the data wait at an epoch boundary (persistent workers).

    python bench/loader_epochs.py [--packed data/corpus/packed] [--quick]

``bench/loader_speed.py`` runs these too and puts them in its ``## Loader speed`` section; this
script alone only prints (``--quick``: a small synthetic dataset in a temporary folder, small
batches, to check that it runs).

- Start-up: a new Loader's workers until every one has reported ready (``fork``: forked from
  this process; ``spawn``: fresh interpreters of ``augpipe.loader.fresh`` that import augpipe,
  rebuild the dataset and pipeline from JSON and load the Numba cache), and the time to its first
  batch. Medians of ``--repeats``.
- Epoch boundary: a consumer that spends ``--step`` × (the loader's own time per batch) on each
  batch (a sleeping "GPU step", so the workers keep the cores) runs epochs 2 and 3 on one
  persistent loader (epoch 0 warms up, epoch 1 without pause measures the loader's time per
  batch); the data wait is how long each ``next()`` blocks. Reported: the median wait in steady
  state (epoch 2 without its first 3 batches), the wait for the first batch of epoch 3 (the
  boundary after a steady epoch), and the same with the next-epoch prefetch switched off (the
  loader before it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PACKED, machine_metadata, metadata_line  # noqa: E402


def _loader(packed: str, batch: int, size: int, **kw):
    from augpipe.loader.loader import Loader
    from augpipe.transforms import Compose, HorizontalFlip, RandomResizedCrop

    pipe = Compose([RandomResizedCrop(size), HorizontalFlip()])
    return Loader(packed, batch, pipe, workers=kw.pop("workers", 2), output="numpy", **kw)


def startup(packed: str, method: str, batch: int, size: int) -> tuple[float, float]:
    """(seconds until all workers are ready, seconds to the first batch) of a new Loader."""
    lo = _loader(packed, batch, size, start_method=method)
    t0 = time.perf_counter()
    it = iter(lo)  # kept: a dropped iterator would stop the workers before we read the time
    next(it)
    first = time.perf_counter() - t0
    ready = lo._pool.started_s
    it.close()
    lo.close()
    return ready, first


def epoch_waits(packed: str, batch: int, size: int, step: float, ahead: bool) -> dict:
    """Data wait (s) of every batch of epochs 2 and 3 on one persistent loader, whose consumer
    sleeps ``step`` × the loader's own time per batch on each batch. Epoch 0 warms up; epoch 1,
    consumed without pause (the workers never idle), measures the time per batch."""
    lo = _loader(packed, batch, size)
    for _ in lo:
        pass
    t0, n = time.perf_counter(), sum(1 for _ in lo)
    per_batch = (time.perf_counter() - t0) / n
    lo._sched.ahead = ahead  # epoch 2 was prepared ahead at the end of epoch 1 either way
    waits: dict[int, list[float]] = {2: [], 3: []}
    for epoch in (2, 3):
        it = iter(lo)
        while True:
            t = time.perf_counter()
            try:
                next(it)
            except StopIteration:
                break
            waits[epoch].append(time.perf_counter() - t)
            time.sleep(step * per_batch)  # the model's step: the workers have the cores
    lo.close()
    return {"per_batch_s": per_batch, "waits": waits}


def measure(packed: str, batch: int, size: int, repeats: int, step: float) -> dict:
    startup(packed, "fork", batch, size)  # fills the Numba cache
    starts = {m: [startup(packed, m, batch, size) for _ in range(repeats)]
              for m in ("fork", "spawn")}  # fmt: skip
    on = epoch_waits(packed, batch, size, step, ahead=True)
    off = epoch_waits(packed, batch, size, step, ahead=False)
    return {"startup": starts, "ahead": on, "no_ahead": off, "step": step}


def report(r: dict, batch: int) -> str:
    med = statistics.median
    lines = []
    for m, runs in r["startup"].items():
        lines.append(f"{m}: workers ready {med(x[0] for x in runs):.2f} s, first batch "
                     f"{med(x[1] for x in runs):.2f} s")  # fmt: skip
    on, off = r["ahead"], r["no_ahead"]
    steady = med(on["waits"][2][3:]) if len(on["waits"][2]) > 3 else float("nan")
    lines.append(
        f"Epoch boundary (2 workers, batch {batch}, consumer step {r['step']:.1f} × the "
        f"loader's {on['per_batch_s'] * 1e3:.0f} ms per batch): data wait of a new epoch's first "
        f"batch {on['waits'][3][0] * 1e3:.1f} ms with the next epoch prepared ahead, "
        f"{off['waits'][3][0] * 1e3:.1f} ms without; steady state (median) "
        f"{steady * 1e3:.1f} ms."
    )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packed", default=str(PACKED))
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--step", type=float, default=1.5)
    ap.add_argument("--quick", action="store_true", help="small synthetic dataset, small batches")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            from augpipe.format.pack import pack
            from augpipe.synth import make_image_folder

            folder = make_image_folder(Path(tmp) / "img", n_classes=4, per_class=60,
                                       min_side=64, max_side=160, seed=0)  # fmt: skip
            args.packed = str(Path(tmp) / "packed")
            pack(folder, args.packed, progress=False)
            args.batch, args.size, args.repeats = 16, 64, 1
        r = measure(args.packed, args.batch, args.size, args.repeats, args.step)
    print(metadata_line(machine_metadata()))
    print(report(r, args.batch))
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
