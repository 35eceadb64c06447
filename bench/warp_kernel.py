"""The warp kernel's cost, and Mosaic's against the single-image 640 pipeline (issues 12, 10).

    python bench/warp_kernel.py [--quick] [--repeats 40] [--images 16] [--tree PATH] [--json]
        [--parts kernel,tile,pipeline]

Each figure is the minimum over ``--repeats`` short timed calls of identical work (the same
inputs, the same seed and epoch), so that the noise of a shared machine drops out:

- ``warp`` rows: ``augpipe.ops.kernels.warp`` called directly on a synthetic smooth source,
  with a colour matrix; affine (rotation + scale) and projective (a perspective row) maps, 640
  px output from a 700 px region and 224 px output from a 256 px region (a policy's
  rotate/shear at ImageNet size); milliseconds per call.
- ``tile`` rows (when the tree has ``render_item_spans``): one Mosaic-like tile (a
  perspective map into a sub-frame whose right part is masked off per row), rendered into a
  scratch tile and copied run by run, against the span entry that writes the runs directly.
- ``pipeline`` rows: ``TargetPipeline.run_batch`` on ``--images`` corpus photos (JPEG kept,
  restart rows, 12 seeded boxes each; ``bench/detection_speed.py``'s packing), the
  single-image 640 pipeline and the Mosaic one (Mosaic + RandomScale + Affine with
  perspective 0.0005 + flip + HSV); milliseconds per image and their ratio.

``--tree PATH`` imports augpipe from another checkout (for before/after figures in one
session: export the older commit with ``git archive`` and build its extensions there).
``--quick``: few repeats and images, to check that it runs. Prints one table, or JSON with
``--json``; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def _args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few repeats, to check it runs")
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--tree", type=Path, default=None, help="import augpipe from this checkout")
    ap.add_argument("--photos", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--parts", default="kernel,tile,pipeline",
                    help="which rows: kernel, tile, pipeline (comma-separated)")  # fmt: skip
    a = ap.parse_args(argv)
    if a.quick:
        a.repeats, a.images = 3, 6
    return a


def best_ms(fn, repeats: int) -> float:
    fn()  # warm-up: compilation, caches
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def _source(n: int, seed: int = 0):
    import cv2
    import numpy as np

    small = np.random.default_rng(seed).integers(0, 256, (n // 8, n // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (n, n), interpolation=cv2.INTER_CUBIC)


def _maps(size: int, src: int, proj: bool):
    """A1 (centred output -> centred units: rotate 10 degrees, scale 0.9), A2 (-> source edge
    coordinates around the source's centre; a perspective row when ``proj``)."""
    import numpy as np

    t = np.deg2rad(10.0)
    s = 0.9 * (src / size)
    A1 = np.array([[s * np.cos(t), -s * np.sin(t), 0.0], [s * np.sin(t), s * np.cos(t), 0.0],
                   [0.0, 0.0, 1.0]])  # fmt: skip
    A2 = np.array([[1.0, 0.02, src / 2], [0.0, 1.0, src / 2], [0.0, 0.0, 1.0]])
    if proj:
        A2[2, :2] = (0.0005 * 640 / size, -0.0003 * 640 / size)
    return A1, A2


def kernel_rows(repeats: int) -> dict[str, float]:
    import numpy as np

    from augpipe.ops import kernels

    cmat = np.array([[1.1, 0.05, 0.0], [0.0, 0.9, 0.05], [0.02, 0.0, 1.05]], np.float32)
    coff = np.array([3.0, -2.0, 1.0], np.float32)
    rows = {}
    for size, n in ((640, 700), (224, 256)):
        src = _source(n)
        out = np.empty((size, size, 3), np.uint8)
        for proj in (False, True):
            A1, A2 = _maps(size, n, proj)

            def call(A1=A1, A2=A2, src=src, out=out, n=n):
                kernels.warp(src, False, 0, n, 0, n, A1, 0.0, A2, 114.0, cmat, coff, True, out)

            rows[f"warp {'projective' if proj else 'affine'} {size}, colour (ms)"] = best_ms(
                call, repeats * 3)  # fmt: skip
    return rows


def tile_rows(repeats: int) -> dict[str, float]:
    """One Mosaic-like tile through ``render_item`` + a run copy, and through the span entry."""
    import numpy as np

    from augpipe.ops import fused

    if not hasattr(fused, "render_item_spans"):
        return {}
    from augpipe.ops.params import param_dtype

    S, sh, sw, n = 640, 400, 420, 700
    rec = np.zeros(1, param_dtype(1))
    rec["geo"][0] = rec["cgeo"][0, 0] = np.eye(3)
    A1, A2 = _maps(sw, n, True)
    rec["A1"][0], rec["A2"][0, 0] = A1, A2
    rec["cmat"][0] = np.array([[1.1, 0.05, 0.0], [0.0, 0.9, 0.05], [0.02, 0.0, 1.05]])
    rec["coff"][0], rec["color"][0], rec["src_hw"][0] = (3.0, -2.0, 1.0), True, (n, n)
    f = fused.fields(rec)
    src = _source(n)
    lo = np.zeros(sh, np.int64)
    hi = np.minimum(sw, (np.arange(sh) * 0.3 + sw * 0.75).astype(np.int64))  # a slanted edge
    out = np.zeros((S, S, 3), np.uint8)
    tile = np.empty((1, sh, sw, 3), np.uint8)

    from augpipe.targets.mosaic import _copy_runs

    def scratch():  # what run_mosaic did before the span entry
        fused.render_item(src, False, f, 0, tile, 114.0)
        _copy_runs(tile.reshape(sh, sw * 3), out.reshape(S, S * 3), 10, 20, 3, lo, hi)

    def spans():
        fused.render_item_spans(src, False, f, 0, out, 10, 20, lo, hi, sw, 114.0)

    return {"tile 400x420 render_item (no copy) (ms)": best_ms(
                lambda: fused.render_item(src, False, f, 0, tile, 114.0), repeats * 3),
            "tile 400x420 render_item + copy (ms)": best_ms(scratch, repeats * 3),
            "tile 400x420 render_item_spans (ms)": best_ms(spans, repeats * 3)}  # fmt: skip


def pipeline_rows(photos: Path, images: int, repeats: int) -> dict[str, float]:
    import numpy as np

    from augpipe import Affine, Compose, HorizontalFlip
    from augpipe.format.dataset import ShardDataset
    from augpipe.format.pack import pack
    from augpipe.ops.detection.hsv import HSVJitter
    from augpipe.ops.detection.letterbox import Letterbox
    from augpipe.ops.detection.mosaic import Mosaic
    from augpipe.ops.detection.random_scale import RandomScale
    from augpipe.targets.batch import TargetPipeline
    from augpipe.targets.transform import TargetOptions
    from bench.detection_speed import build, photo_list

    S = 640
    single = Compose(
        [
            Letterbox(S),
            RandomScale((0.5, 1.5)),
            Affine(rotate=10, translate=0.1, shear=5),
            HorizontalFlip(),
            HSVJitter(),
        ]
    )
    mosaic = Compose([Mosaic(S), RandomScale((0.5, 1.5)),
                      Affine(rotate=10, translate=0.1, shear=5, perspective=0.0005),
                      HorizontalFlip(), HSVJitter()])  # fmt: skip
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        js, _, _ = build(photo_list(photos, images), 12, work)
        pack(None, work / "boxes.packed", coco=js, root="/", keep_jpeg=True, restart_rows=True,
             progress=False)  # fmt: skip
        ds = ShardDataset(work / "boxes.packed")
        n = len(ds)
        idx = np.arange(n)
        for name, pipe in (("single-image 640", single), ("Mosaic 640", mosaic)):
            tp = TargetPipeline(pipe.bind(ds), ds, TargetOptions(min_visibility=0.1), n)
            out = np.empty((n, *tp.output_shape), np.uint8)
            extra = np.zeros(tp.extra_bytes(n), np.uint8)

            def run(tp=tp, out=out, extra=extra):
                tp.run_batch(ds, idx, 0, 1, out, extra)

            ms = best_ms(run, repeats)
            rows[f"pipeline {name} (ms/image)"] = ms / n
    rows["Mosaic / single-image"] = (rows["pipeline Mosaic 640 (ms/image)"]
                                     / rows["pipeline single-image 640 (ms/image)"])  # fmt: skip
    return rows


def main(argv=None) -> int:
    a = _args(argv)
    here = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(here))  # bench.* from this checkout
    if a.tree is not None:
        sys.path.insert(0, str(a.tree.resolve()))  # augpipe from the other one
    import cv2

    import augpipe
    from bench.common import PHOTOS

    cv2.setNumThreads(1)
    rows = {"tree": str(Path(augpipe.__file__).parent.parent)}
    parts = set(a.parts.split(","))
    if "kernel" in parts:
        rows.update(kernel_rows(a.repeats))
    if "tile" in parts:
        rows.update(tile_rows(a.repeats))
    if "pipeline" in parts:
        rows.update(pipeline_rows(a.photos or PHOTOS, a.images, a.repeats))
    if a.json:
        print(json.dumps(rows))
        return 0
    for k, v in rows.items():
        print(f"{k:48s} {v if isinstance(v, str) else f'{v:.3f}'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
