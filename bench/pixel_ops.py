"""Per-op cost of the policy ops: the extra microseconds per image each of torchvision's
RandAugment ops costs over augpipe's standard pipeline (RandomResizedCrop 224 + flip), one core.

    python bench/pixel_ops.py [--packed data/corpus/packed] [--images 200] [--repeats 7]
        [--magnitude 9] [--quick]

Each row forces one op of ``RandAugment(2, 9)``'s list on every sample (one slot, magnitude 9,
sign drawn per sample as torchvision does) after the standard crop and flip. Two timings per
row, both the median (``--stat min``: the minimum) over ``--repeats`` interleaved passes after one
warm-up:

- ``render``: the fused kernel call alone (``render_item``) on sources decoded once beforehand;
- ``total``: ``run_batch`` (crop-aware decode + render), as ``bench/recipe_speed.py`` times it.

The last line is the expected extra per image of ``RandAugment(2, 9)``: twice the mean over its
14 ops (each slot draws one op uniformly). ``--quick``: 24 images, 1 repeat (checks it runs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from augpipe import rng  # noqa: E402
from augpipe import transforms as T  # noqa: E402
from augpipe.format.dataset import ShardDataset  # noqa: E402
from augpipe.ops.fused import render_item  # noqa: E402
from augpipe.ops.policies.torchvision import RANDAUGMENT_OPS, _slot  # noqa: E402
from bench.common import PACKED, metadata_line, shown  # noqa: E402


@dataclass(frozen=True)
class Forced(T.RandAugment):
    """RandAugment with one slot that always draws op ``name`` (bench only)."""

    name: str = "Identity"

    def draw(self, indices, seed: int, epoch: int, pos: int, out_hw):
        n = len(indices)
        which = np.full(n, RANDAUGMENT_OPS.index(self.name), np.int64)
        neg = rng.uniform(seed, epoch, indices, rng.stream_id(pos, 1)) <= 0.5
        k, v = _slot(RANDAUGMENT_OPS, which, np.full(n, self.magnitude), neg,
                     self.num_magnitude_bins, out_hw, False)  # fmt: skip
        return k[:, None], v[:, None]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packed", default=str(PACKED))
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--magnitude", type=int, default=9)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--ops", default="", help="comma-separated subset of the op names")
    ap.add_argument(
        "--stat",
        choices=("median", "min"),
        default="median",
        help="per-row statistic over the passes (min: less noise on a busy machine)",
    )
    ap.add_argument("--quick", action="store_true", help="24 images, 1 repeat")
    args = ap.parse_args()
    if args.quick:
        args.images, args.repeats = min(args.images, 24), 1
    cv2.setNumThreads(1)
    ds = ShardDataset(args.packed)
    n = min(args.images, len(ds))
    idx = np.arange(n, dtype=np.int64)
    S = args.size
    names = [s for s in args.ops.split(",") if s] or list(RANDAUGMENT_OPS)
    rows = {"standard": []}
    rows.update({nm: [Forced(1, args.magnitude, name=nm)] for nm in names})
    rows["RandAugment(2, 9)"] = [T.RandAugment(2, args.magnitude)]
    pipes = {k: T.Compose([T.RandomResizedCrop(S), T.HorizontalFlip(), *v]).bind(ds)
             for k, v in rows.items()}  # fmt: skip
    out = np.empty((n, S, S, 3), np.uint8)
    decoded = {}
    for k, p in pipes.items():  # sources decoded once, for the render-only timing
        decoded[k] = [(img.copy(), bgr, sc, off, f, j)
                      for j, (img, bgr, sc, off, f) in p._decoded(ds, idx, 0, 0)]  # fmt: skip

    def render(k):
        p = pipes[k]
        for img, bgr, sc, off, f, j in decoded[k]:
            render_item(img, bgr, f, j, out[j : j + 1], p.fill, sc, off)

    def total(k):
        pipes[k].run_batch(ds, idx, 0, 0, out)

    t_render = {k: [] for k in rows}
    t_total = {k: [] for k in rows}
    for rep in range(args.repeats + 1):  # interleaved; pass 0 (compilation, cache) discarded
        for k in rows:
            for fn, acc in ((render, t_render), (total, t_total)):
                t0 = time.perf_counter()
                fn(k)
                if rep:
                    acc[k].append((time.perf_counter() - t0) / n * 1e6)
    stat = min if args.stat == "min" else statistics.median
    med_r = {k: stat(v) for k, v in t_render.items()}
    med_t = {k: stat(v) for k, v in t_total.items()}
    print(f"| op (forced on, m{args.magnitude}) | render µs/img | extra | total µs/img | extra |")
    print("|---|---|---|---|---|")
    for k in rows:
        print(f"| {k} | {med_r[k]:.1f} | {med_r[k] - med_r['standard']:+.1f} | "
              f"{med_t[k]:.1f} | {med_t[k] - med_t['standard']:+.1f} |")  # fmt: skip
    if len(names) == len(RANDAUGMENT_OPS):
        er = 2 * statistics.mean(med_r[k] - med_r["standard"] for k in names)
        et = 2 * statistics.mean(med_t[k] - med_t["standard"] for k in names)
        print(f"\nexpected RandAugment(2, {args.magnitude}) extra from the per-op rows: render "
              f"{er:+.1f} µs, total {et:+.1f} µs; cost vs standard (total) "
              f"{(med_t['standard'] + et) / med_t['standard']:.2f}x")  # fmt: skip
    print(f"\n{n} records of `{shown(args.packed)}`, {args.repeats} interleaved passes after "
          f"1 warm-up, {args.stat} per row, {S}x{S} uint8.\n{metadata_line()}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
