"""What masks cost, sampled in the image's pass against a nearest pass of their own.

    python bench/mask_pass.py [--photos data/corpus/photos] [--images 200] [--repeats 7]
        [--size 640] [--quick]

The detection pipeline of bench/detection_speed.py (Letterbox, RandomScale, Affine, flip,
HSV) on the same photos with its 12 seeded boxes each, one core, ``TargetPipeline.run_batch``,
twice: with a semantic mask (the boxes painted with their class; a mask folder) and with 12
RLE instance masks (each box's rectangle; COCO), all packed ``--keep-jpeg``. Per group:
``same_pass = True`` (every mask sampled by the image's kernel call), ``False`` (the image
pass, then each mask's own nearest warp), ``None`` (the default: the image's pass for two or
more masks, a pass of its own for a lone one) and the image with boxes alone (the base). The
rows alternate pass by pass so that drifting machine load hits them alike; the report gives
each one's median images/s and the masks' cost per image (its time minus the base's). Times
are this thread's CPU time (the whole pipeline runs on it), so other processes' load shows
less than in wall time. Prints only; nothing is written. ``--quick``: 16 images, 2 passes.
"""

from __future__ import annotations

import argparse
import json
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


def _runner(ds, pipe, same_pass, masks: bool, batch: int = 32):
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


def _with_rle(js: Path, out: Path) -> Path:
    """``js``'s boxes each with an RLE instance mask (its rectangle), compressed as COCO's."""
    from pycocotools import mask as mask_utils

    data = json.loads(js.read_text())
    sizes = {im["id"]: (im["height"], im["width"]) for im in data["images"]}
    for ann in data["annotations"]:
        h, w = sizes[ann["image_id"]]
        x, y, bw, bh = ann["bbox"]
        m = np.zeros((h, w), np.uint8)
        m[int(y) : int(np.ceil(y + bh)), int(x) : int(np.ceil(x + bw))] = 1
        rle = mask_utils.encode(np.asfortranarray(m))
        ann["segmentation"] = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    out.write_text(json.dumps(data))
    return out


def _alternate(runs: dict, repeats: int) -> dict:
    for run in runs.values():  # warm-up (compiles, page cache)
        run()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for k, run in runs.items():
            times[k].append(run())
    return {k: statistics.median(v) for k, v in times.items()}


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
    groups = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        js, seg, _ = build(files, 12, work)
        pack(None, work / "seg.packed", masks=seg, keep_jpeg=True, progress=False)
        pack(None, work / "boxes.packed", coco=js, root="/", keep_jpeg=True, progress=False)
        rle = _with_rle(js, work / "rle.json")
        pack(None, work / "rle.packed", coco=rle, root="/", keep_jpeg=True, progress=False)
        seg_ds, boxes, inst = (ShardDataset(work / f"{k}.packed") for k in ("seg", "boxes", "rle"))
        groups["semantic mask"] = _alternate({
            "same pass": _runner(seg_ds, pipe, True, True),
            "separate pass": _runner(seg_ds, pipe, False, True),
            "default": _runner(seg_ds, pipe, None, True),
            "image + boxes": _runner(seg_ds, pipe, True, False)}, a.repeats)  # fmt: skip
        groups["12 RLE instance masks"] = _alternate({
            "same pass": _runner(inst, pipe, True, True),
            "separate pass": _runner(inst, pipe, False, True),
            "default": _runner(inst, pipe, None, True),
            "image + boxes": _runner(boxes, pipe, True, False)}, a.repeats)  # fmt: skip
    n = len(files)
    print(f"{n} photos, {S} px, one core, {a.repeats} alternating passes (median thread CPU "
          "time)\n")  # fmt: skip
    print("| masks | path | images/s | mask cost (ms/image) |\n|---|---|---|---|")
    for g, med in groups.items():
        base = med["image + boxes"]
        for k, t in med.items():
            cost = "" if k == "image + boxes" else f"{1e3 * (t - base) / n:.3f}"
            print(f"| {g} | {k} | {n / t:.0f} | {cost} |")
    for g, med in groups.items():
        base = med["image + boxes"]
        same, sep = med["same pass"] - base, med["separate pass"] - base
        if sep > 0:
            print(f"\n{g}: same-pass mask cost / separate-pass mask cost: {same / sep:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
