"""Per-image decode and kernel time of one pipeline, each sample timed on its own: a driver for
``bench/augment_speed.py`` that also runs against an older checkout (``--baseline REV``).

    python bench/kernel_time.py PACKED --pipeline standard --size 224 --images 300 --passes 5
        [--save OUT.npy]

For each record: ``decode.load_region`` (the crop-aware region decode ``run_batch`` does), then
the fused kernel (``render_item``) on the just-decoded pixels, as in a worker; both timed with
``perf_counter`` around the single call. Per record the minimum over ``--passes`` passes is kept
(a 50 µs call is rarely interrupted, so the minimum is robust to other load on the machine),
and the means over records are printed as one JSON object: decode_us, kernel_us, total_us.
``--save`` writes the kernel's outputs (records x size x size x 3, uint8) to a .npy file, so
that two trees' outputs can be compared (``augment_speed.py --baseline``: max difference, PSNR).
Uses only API that has not changed since the first region decode (``fields``, ``source_boxes``,
``render_item``, ``min_scales``, ``load_region``), so it can time old commits too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def pipeline(name: str, size: int):
    from augpipe import transforms as T

    ops = [T.RandomResizedCrop(size), T.HorizontalFlip()]
    if name == "warp":  # the warp kernel: rotation/shear/lens + colour
        ops += [T.Affine(rotate=10, shear=5, translate=0.05, stretch=(0.9, 1.1)),
                T.LensDistortion((-0.2, 0.2)), T.ColorJitter(0.4, 0.4, 0.4)]  # fmt: skip
    return T.Compose(ops)


def measure(packed: str, name: str, size: int, images: int, passes: int, save=None) -> dict:
    from augpipe import decode
    from augpipe.format.dataset import ShardDataset
    from augpipe.ops.fused import fields, render_item, source_boxes
    from augpipe.ops.params import min_scales

    ds = ShardDataset(packed)
    n = min(images, len(ds))
    idx = np.arange(n, dtype=np.int64)
    pipe = pipeline(name, size).bind(ds)
    recs = pipe.sample_params(ds.sizes[idx], idx, 0, 0)
    f = fields(recs)
    scales = min_scales(recs)
    boxes = source_boxes(f, (size, size))
    out = np.empty((n, 1, size, size, 3), np.uint8)
    td = np.full(n, np.inf)
    tk = np.full(n, np.inf)
    pc = time.perf_counter
    for p in range(passes + 1):  # pass 0: warm-up (compilation, page cache)
        for j in range(n):
            t0 = pc()
            img, bgr, sc, off = decode.load_region(ds, j, float(scales[j]), boxes[j, :4],
                                                   boxes[j, 4], reuse=True)  # fmt: skip
            t1 = pc()
            render_item(img, bgr, f, j, out[j], 0.0, sc, off)
            t2 = pc()
            if p:
                td[j] = min(td[j], t1 - t0)
                tk[j] = min(tk[j], t2 - t1)
    if save:
        np.save(save, out[:, 0])
    return {"decode_us": td.mean() * 1e6, "kernel_us": tk.mean() * 1e6,
            "total_us": (td.mean() + tk.mean()) * 1e6, "images": n}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("packed")
    ap.add_argument("--pipeline", choices=("standard", "warp"), default="standard")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--save", help="write the kernel outputs to this .npy file")
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)
    print(
        json.dumps(
            measure(args.packed, args.pipeline, args.size, args.images, args.passes, args.save)
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
