"""What a semantic mask costs, sampled in the image's pass against a nearest pass of its own.

    python bench/mask_pass.py [--photos data/corpus/photos] [--images 200] [--repeats 7]
        [--size 640] [--quick]

The detection pipeline of bench/detection_speed.py (Letterbox, RandomScale, Affine, flip,
HSV) on the same photos with the same seeded-box masks (packed ``--keep-jpeg`` from a mask
folder), one core, ``TargetPipeline.run_batch``: with the mask sampled by the image's kernel
call (``same_pass = True``, the default), with the older separate pass (``same_pass =
False``: image pass, then the mask's own nearest warp), and without masks
(``TargetOptions(masks=False)``: the image alone). The three alternate pass by pass so that
drifting machine load hits them alike; the report gives each one's median images/s and the
mask's cost per image (its time minus the image-alone time). Times are this thread's CPU time
(the whole pipeline runs on it), so other processes' load shows less than in wall time. Prints
only; nothing is written.
``--quick``: 16 images, 2 passes, to check that it runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from augpipe import Affine, Compose, HorizontalFlip  # noqa: E402
from augpipe.format.dataset import ShardDataset  # noqa: E402
from augpipe.format.pack import pack  # noqa: E402
from augpipe.ops.detection.hsv import HSVJitter  # noqa: E402
from augpipe.ops.detection.letterbox import Letterbox  # noqa: E402
from augpipe.ops.detection.random_scale import RandomScale  # noqa: E402
from augpipe.targets.batch import TargetPipeline  # noqa: E402
from augpipe.targets.transform import TargetOptions  # noqa: E402
from bench.common import PHOTOS  # noqa: E402
from bench.detection_speed import build, photo_list  # noqa: E402


def _runner(ds, pipe, same_pass: bool, masks: bool, batch: int = 32):
    tp = TargetPipeline(pipe.bind(ds), ds, TargetOptions(min_visibility=0.1, masks=masks), batch)
    tp.same_pass = same_pass
    out = np.empty((batch, *tp.output_shape), np.uint8)
    extra = np.zeros(tp.extra_bytes(batch), np.uint8)
    n = len(ds)
    epoch = [0]

    def run() -> float:
        epoch[0] += 1
        t0 = time.thread_time()
        for s in range(0, n, batch):
            idx = np.arange(s, min(s + batch, n))
            tp.run_batch(ds, idx, 0, epoch[0], out[: len(idx)], extra)
        return time.thread_time() - t0

    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, kind, default in (("--photos", Path, PHOTOS), ("--images", int, 200),
                                ("--repeats", int, 7), ("--size", int, 640)):  # fmt: skip
        ap.add_argument(name, type=kind, default=default)
    ap.add_argument("--quick", action="store_true", help="16 images, 2 passes")
    a = ap.parse_args(argv)
    if a.quick:
        a.images, a.repeats = 16, 2
    cv2.setNumThreads(1)
    files = photo_list(a.photos, a.images)
    S = a.size
    # bench/detection_speed.py's single-image pipeline
    geometry = [RandomScale((0.5, 1.5)), Affine(rotate=10, translate=0.1, shear=5)]
    pipe = Compose([Letterbox(S), *geometry, HorizontalFlip(), HSVJitter()])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _, seg, _ = build(files, 12, work)
        pack(None, work / "seg.packed", masks=seg, keep_jpeg=True, progress=False)
        ds = ShardDataset(work / "seg.packed")
        runs = {"mask, same pass": _runner(ds, pipe, True, True),
                "mask, separate pass": _runner(ds, pipe, False, True),
                "no mask (image alone)": _runner(ds, pipe, True, False)}  # fmt: skip
        for run in runs.values():  # warm-up (compiles, page cache)
            run()
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(a.repeats):
            for k, run in runs.items():
                times[k].append(run())
    n = len(files)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["no mask (image alone)"]
    print(f"{n} photos, {S} px, one core, {a.repeats} alternating passes (median)\n")
    print("| pipeline | images/s | mask cost (ms/image) |\n|---|---|---|")
    for k, t in med.items():
        cost = "" if k.startswith("no mask") else f"{1e3 * (t - base) / n:.3f}"
        print(f"| {k} | {n / t:.0f} | {cost} |")
    same, sep = med["mask, same pass"] - base, med["mask, separate pass"] - base
    if sep > 0:
        print(f"\nsame-pass mask cost / separate-pass mask cost: {same / sep:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
