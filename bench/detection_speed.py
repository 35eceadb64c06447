"""Detection pipeline speed per core: augpipe (images + boxes, + a semantic mask) against
Albumentations 2.0.8 on the same photos with the same seeded boxes.

    python bench/detection_speed.py [--photos data/corpus/photos] [--images 300]
        [--repeats 5] [--boxes 12] [--size 640] [--quick] [--no-write] [--skip-peers]
        [--no-restart-rows]

The pipeline (YOLO-like, issue 12): long side to 640 and pad (augpipe ``Letterbox``;
Albumentations ``LongestMaxSize + PadIfNeeded``), scale 0.5-1.5, rotate +-10 degrees,
translate +-10%, shear +-5 degrees, horizontal flip, HSV jitter, boxes filtered at
min_visibility 0.1. Each image gets ``--boxes`` random boxes (seeded by its position); the
mask rows add a semantic mask (the boxes painted with their class). augpipe packs the photos
(``--keep-jpeg``, and the default ``--restart-rows``: the kept JPEGs are transcoded losslessly
to carry restart markers, so region decodes skip what lies outside them) with the boxes as
COCO JSON and times ``TargetPipeline.run_batch`` (JPEG decode from the shard + the fused
warp + targets) in this process on one core; the peer
(``peers/tv``) decodes the same JPEG files with cv2 and runs Albumentations, one core. The
Mosaic rows: Mosaic(640) + ultralytics' RandomPerspective (RandomScale + Affine with its
perspective term, 0.0005) + flip + HSV, against the single-image pipeline's cost; the peer's
is Albumentations' Mosaic (2 x 2, "contain", the next three photos as partners, each
decoded) + Affine + Perspective(0.02-0.05) + flip + HSV. Results go to bench/RESULTS.md
("Detection speed") unless --no-write; --quick runs a few images once to check that
everything works, and checks the outputs (row-run masks, mask values, Mosaic boxes in the
frame, restart markers in the packed records). ``--no-restart-rows`` packs the kept JPEGs
as they are (no markers), for the comparison without the transcode (printed, not written).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from augpipe import Affine, Compose, HorizontalFlip  # noqa: E402
from augpipe.format import restart  # noqa: E402
from augpipe.format.dataset import ShardDataset  # noqa: E402
from augpipe.format.pack import pack  # noqa: E402
from augpipe.ops.detection.hsv import HSVJitter  # noqa: E402
from augpipe.ops.detection.letterbox import Letterbox  # noqa: E402
from augpipe.ops.detection.mosaic import Mosaic  # noqa: E402
from augpipe.ops.detection.random_scale import RandomScale  # noqa: E402
from augpipe.targets.batch import TargetPipeline  # noqa: E402
from augpipe.targets.transform import TargetOptions  # noqa: E402
from bench.common import (  # noqa: E402
    PHOTOS,
    TV_VENV,
    PeerError,
    load_note,
    machine_metadata,
    metadata_line,
    run_peer,
    shown,
    summarize,
    write_results_section,
)


def photo_list(photos: Path, n: int) -> list[Path]:
    files = sorted(p for p in photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not files:
        raise SystemExit(f"no JPEGs under {photos}: make the corpus (README, 'Developing')")
    return files[:n]


def seeded_boxes(h: int, w: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wh = rng.uniform(0.05, 0.4, (n, 2)) * (w, h)
    xy = rng.uniform(0, 1, (n, 2)) * ((w, h) - wh)
    return np.round(np.concatenate([xy, xy + wh], axis=1), 1)


def build(files, n_boxes: int, work: Path):
    """COCO JSON + mask folder for ``files``; returns (coco json, masks dir, peer items)."""
    images, anns, items = [], [], []
    (work / "seg" / "images").mkdir(parents=True)
    (work / "seg" / "masks").mkdir()
    for i, f in enumerate(files):
        with Image.open(f) as im:  # the header's size (corpus photos carry no EXIF rotation)
            w, h = im.size
        boxes = seeded_boxes(h, w, n_boxes, i)
        labels = [int(k % 5) for k in range(n_boxes)]
        images.append({"id": i, "file_name": str(f), "height": h, "width": w})
        for j, (b, c) in enumerate(zip(boxes, labels)):
            anns.append({"id": i * 1000 + j, "image_id": i, "category_id": c + 1, "iscrowd": 0,
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})  # fmt: skip
        mask = np.zeros((h, w), np.uint8)
        for b, c in zip(boxes.astype(int), labels):
            mask[b[1] : b[3], b[0] : b[2]] = c + 1
        name = f"{i:06d}"
        os.symlink(f, work / "seg" / "images" / f"{name}.jpg")
        cv2.imwrite(str(work / "seg" / "masks" / f"{name}.png"), mask)
        items.append({"path": str(f), "boxes": boxes.tolist(), "labels": labels,
                      "mask": str(work / "seg" / "masks" / f"{name}.png")})  # fmt: skip
    cats = [{"id": k + 1, "name": f"c{k}"} for k in range(5)]
    js = work / "boxes.json"
    js.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return js, work / "seg", items


def augpipe_runner(ds, pipe, batch: int = 32):
    """One pass of ``TargetPipeline.run_batch`` over ``ds`` (a new epoch each call)."""
    tp = TargetPipeline(pipe.bind(ds), ds, TargetOptions(min_visibility=0.1), batch)
    n = len(ds)
    out = np.empty((batch, *tp.output_shape), np.uint8)
    extra = np.zeros(tp.extra_bytes(batch), np.uint8)
    epoch = [0]

    def run():
        epoch[0] += 1
        for s in range(0, n, batch):
            idx = np.arange(s, min(s + batch, n))
            tp.run_batch(ds, idx, 0, epoch[0], out[: len(idx)], extra)

    return run


def interleaved_rates(runs: dict, n: int, repeats: int) -> dict:
    """Rates of each runner, timed in turns (one pass of each per repeat, the order rotated
    from one repeat to the next), so drift of the machine's speed reaches all of them alike;
    one discarded warm-up pass each. Also each repeat's times, for paired ratios."""
    names = list(runs)
    for name in names:
        runs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t0)
    rows = {name: summarize([n / t for t in ts]) for name, ts in times.items()}
    return rows, times


def quick_checks(seg, boxes, pipe, mosaic, size: int, restart_rows: bool = True) -> list[str]:
    """``--quick``: what the timed pipelines produce is sound (no timing): the semantic masks
    are stored as row runs and come out holding only their own values or 255, and Mosaic's
    boxes are non-empty and inside the frame."""
    from augpipe.targets.maskcode import RowRuns

    problems = []
    if not isinstance(seg.targets(0, mask_runs=True).semantic, RowRuns):
        problems.append("the mask dataset's semantic masks are not stored as row runs")
    idx = np.arange(min(8, len(seg)))
    _, t = TargetPipeline(pipe.bind(seg), seg, TargetOptions(min_visibility=0.1)).sample(seg, idx)
    extra = set(np.unique(t["masks"]).tolist()) - set(range(6)) - {255}
    if extra:
        problems.append(f"warped semantic masks hold values {sorted(extra)} no mask has")
    if restart._jpegrestart is not None and restart_rows:  # kept JPEGs carry restart markers
        bare = [i for i in range(len(boxes)) if not restart.has_restarts(boxes.raw(i))]
        if bare:
            problems.append(f"{len(bare)} of {len(boxes)} packed records have no restart markers")
    tp = TargetPipeline(mosaic.bind(boxes), boxes, TargetOptions(min_visibility=0.1))
    _, t = tp.sample(boxes, np.arange(min(8, len(boxes))))
    b = t["boxes"]
    if not len(b) or b.min() < 0 or b.max() > size or (b[:, 2:] <= b[:, :2]).any():
        problems.append(f"Mosaic boxes missing, empty or outside the {size} px frame")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--boxes", type=int, default=12)
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--quick", action="store_true",
                    help="20 images, one pass, no RESULTS.md; checks the outputs")  # fmt: skip
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--no-restart-rows", dest="restart_rows", action="store_false",
                    help="pack the kept JPEGs as they are (no restart markers): the "
                    "comparison without the transcode; printed only")  # fmt: skip
    a = ap.parse_args(argv)
    if a.quick:
        a.images, a.repeats, a.no_write = 20, 1, True
    a.no_write = a.no_write or not a.restart_rows  # a comparison run keeps RESULTS.md
    cv2.setNumThreads(1)
    if restart._jpegrestart is None:
        note = "the packed JPEGs carry no restart markers (python setup.py build_ext --inplace)"
        print(f"note: augpipe._jpegrestart is not built: {note}", file=sys.stderr)
    files = photo_list(a.photos, a.images)
    S = a.size
    pipe = Compose([Letterbox(S), RandomScale((0.5, 1.5)),
                    Affine(rotate=10, translate=0.1, shear=5), HorizontalFlip(),
                    HSVJitter()])  # fmt: skip
    loads, rows = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        js, seg, items = build(files, a.boxes, work)
        rst = a.restart_rows
        pack(None, work / "boxes.packed", coco=js, root="/", keep_jpeg=True, restart_rows=rst,
             progress=False)  # fmt: skip
        pack(None, work / "seg.packed", masks=seg, keep_jpeg=True, restart_rows=rst,
             progress=False)  # fmt: skip
        boxes_ds, seg_ds = ShardDataset(work / "boxes.packed"), ShardDataset(work / "seg.packed")
        mosaic = Compose([Mosaic(S), RandomScale((0.5, 1.5)),
                          Affine(rotate=10, translate=0.1, shear=5, perspective=0.0005),
                          HorizontalFlip(), HSVJitter()])  # fmt: skip
        runs = {"augpipe, boxes": augpipe_runner(boxes_ds, pipe),
                "augpipe, semantic mask": augpipe_runner(seg_ds, pipe),
                "augpipe, Mosaic + boxes": augpipe_runner(boxes_ds, mosaic)}  # fmt: skip
        ours, times = interleaved_rates(runs, len(files), a.repeats)
        rows.update(ours)
        loads.append(os.getloadavg()[0])
        if a.quick:
            problems = quick_checks(seg_ds, boxes_ds, pipe, mosaic, S, a.restart_rows)
            for p in problems:
                print(f"quick check failed: {p}", file=sys.stderr)
            if problems:
                return 1
            print("quick checks: ok (row-run masks, mask values, Mosaic boxes in the frame, "
                  "restart markers in the kept JPEGs)")  # fmt: skip
        peer = None
        if not a.skip_peers:
            spec = work / "spec.json"
            spec.write_text(json.dumps({"size": S, "items": items}))
            try:
                peer = run_peer(TV_VENV, "albu_detection.py", [spec, a.repeats])
            except PeerError as exc:
                print(f"peer skipped: {exc}", file=sys.stderr)
            loads.append(os.getloadavg()[0])
    if peer:
        rows[f"Albumentations {peer['albumentations']}, boxes"] = summarize(peer["boxes"])
        if "mask" in peer:
            rows[f"Albumentations {peer['albumentations']}, semantic mask"] = summarize(
                peer["mask"])  # fmt: skip
        if "mosaic" in peer:  # Mosaic + Affine + Perspective + flip + HSV (peers/albu_detection)
            rows[f"Albumentations {peer['albumentations']}, Mosaic + boxes"] = summarize(
                peer["mosaic"])  # fmt: skip
    lines = ["| pipeline | images/s (median) | min | max |", "|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['median']:.0f} | {r['min']:.0f} | {r['max']:.0f} |")
    if peer:
        for kind in ("boxes", "semantic mask", "Mosaic + boxes"):
            ours = rows[f"augpipe, {kind}"]["median"]
            theirs = rows.get(f"Albumentations {peer['albumentations']}, {kind}")
            if theirs:
                lines.append(f"\naugpipe / Albumentations, {kind}: {ours / theirs['median']:.2f}x")
    cost = rows["augpipe, boxes"]["median"] / rows["augpipe, Mosaic + boxes"]["median"]
    paired = [m / b for m, b in zip(times["augpipe, Mosaic + boxes"], times["augpipe, boxes"])]
    lines.append(f"\nMosaic cost / single-image cost (augpipe): {cost:.2f}x from the medians; "
                 f"{statistics.median(paired):.2f}x the median of the {len(paired)} repeats' "
                 f"paired ratios ({min(paired):.2f}-{max(paired):.2f}x; the pipelines are timed "
                 "in turns)")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if not a.no_write:
        meta = machine_metadata()
        body = (f"{len(files)} photos from {shown(a.photos)}, {a.boxes} seeded boxes each, "
                f"{S} px, one core, {a.repeats} passes (median).\n\n{text}\n\n"
                f"{load_note(loads)}\n\n"
                f"{metadata_line(meta)}")  # fmt: skip
        write_results_section("Detection speed", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
