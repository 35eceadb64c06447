"""What a user op costs: ``run_batch`` per core with and without Python ops after the fused pass.

    python bench/user_ops.py [--packed data/corpus/packed] [--images 500] [--repeats 5]
        [--size 224] [--quick] [--no-write]

Rows, all on the same records, one process, one core: the fused pass alone
(RandomResizedCrop + flip); the same + ``UserOp`` of an identity function (the per-sample
Python call and the Stream it is given); + a Cutout (a NumPy slice assignment, two draws).
The extra microseconds per sample are the rows' time per sample minus the first's. Without the
corpus (or with --quick) a small synthetic dataset is packed in a temporary directory.
Medians of ``--repeats`` timed passes after one warm-up; results go to bench/RESULTS.md
(section "User ops") unless --no-write or --quick.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from augpipe import transforms as T  # noqa: E402
from augpipe.format.dataset import ShardDataset  # noqa: E402
from bench.common import PACKED, batch_runner, median_rate, metadata_line, write_results_section  # noqa: E402


def identity(image, rng):
    return image


def cutout(image, rng, size: int = 56):
    h, w = image.shape[:2]
    y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    image[y : y + size, x : x + size] = 0
    return image


def _dataset(packed: str, quick: bool, tmp: str) -> ShardDataset:
    if not quick and Path(packed).exists():
        return ShardDataset(packed)
    from augpipe.format.pack import pack
    from augpipe.synth import make_image_folder

    root = make_image_folder(Path(tmp) / "img", n_classes=2, per_class=32, min_side=240,
                             max_side=400, seed=0)  # fmt: skip
    pack(root, Path(tmp) / "packed", progress=False)
    return ShardDataset(Path(tmp) / "packed")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packed", default=str(PACKED))
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="synthetic data, 2 repeats, no write")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    repeats = 2 if args.quick else args.repeats
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        ds = _dataset(args.packed, args.quick, tmp)
        n = min(args.images, len(ds))
        idx = np.arange(n, dtype=np.int64)
        base = [T.RandomResizedCrop(args.size), T.HorizontalFlip()]
        rows = {
            "fused pass alone": T.Compose(base),
            "+ UserOp(identity)": T.Compose([*base, T.UserOp("bench.user_ops:identity")]),
            "+ UserOp(cutout 56 px)": T.Compose([*base, T.UserOp("bench.user_ops:cutout")]),
        }
        out = np.empty((args.batch, args.size, args.size, 3), np.uint8)
        rates = {}
        for name, pipe in rows.items():
            fn = batch_runner(pipe.bind(ds), ds, idx, args.batch, out)
            rates[name] = median_rate(fn, n, repeats)["median"]
    ref_us = 1e6 / rates["fused pass alone"]
    lines = ["| pipeline | images/s (one core) | µs per image | extra µs per image |",
             "|---|---|---|---|"]  # fmt: skip
    for name, r in rates.items():
        us = 1e6 / r
        lines.append(f"| {name} | {r:,.0f} | {us:,.1f} | {us - ref_us:+,.1f} |")
    table = "\n".join(lines)
    print(table)
    if not (args.quick or args.no_write):
        write_results_section("User ops", f"{n} images, {args.size} px, median of {repeats}.\n\n"
                              f"{table}\n\n{metadata_line()}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
