"""FFCV peer: runs inside peers/ffcv (ffcv 1.0.2, torch 2.13.0 CPU), prints JSON.

    peers/ffcv/bin/python bench/peers/ffcv_loader.py data/corpus/photos \
        --beton /tmp/photos.beton --workers 2 --batch-size 256 --repeats 5

Writes a .beton from the same ImageFolder with FFCV's own writer (JPEG at ``--quality``, default
90, original sizes; skipped when the file exists and --rewrite is not given), then times FFCV's
Loader with RandomResizedCropRGBImageDecoder(224) + RandomHorizontalFlip, uint8 NHWC out, random
order, ``--workers`` threads, whole epochs. The first epoch (JIT compilation) is discarded.
The last stdout line is one JSON object with images/s per repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from importlib.metadata import version

import numpy as np
from PIL import Image

EXTS = (".jpg", ".jpeg", ".png")


class Folder:
    """Minimal ImageFolder (FFCV's venv has no torchvision): (HWC uint8 array, label)."""

    def __init__(self, root: str):
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        self.samples = []
        for label, c in enumerate(classes):
            for name in sorted(os.listdir(os.path.join(root, c))):
                if name.lower().endswith(EXTS):
                    self.samples.append((os.path.join(root, c, name), label))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB")), label


def write_beton(root: str, beton: str, workers: int, quality: int = 90) -> None:
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    tmp = beton + ".tmp"
    fields = {
        "image": RGBImageField(write_mode="jpg", jpeg_quality=quality),
        "label": IntField(),
    }
    DatasetWriter(tmp, fields, num_workers=workers).from_indexed_dataset(Folder(root))
    os.replace(tmp, beton)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", help="ImageFolder root")
    ap.add_argument("--beton", required=True, help="where to write/read the .beton file")
    ap.add_argument("--rewrite", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality of the .beton")
    args = ap.parse_args()

    if args.rewrite or not os.path.exists(args.beton):
        t0 = time.perf_counter()
        write_beton(args.root, args.beton, args.workers, args.quality)
        print(f"wrote {args.beton} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)

    import torch
    from ffcv.fields.decoders import IntDecoder, RandomResizedCropRGBImageDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import RandomHorizontalFlip, Squeeze, ToTensor

    torch.set_num_threads(1)
    loader = Loader(
        args.beton,
        batch_size=args.batch_size,
        num_workers=args.workers,
        order=OrderOption.RANDOM,
        os_cache=True,
        drop_last=False,
        pipelines={
            "image": [
                RandomResizedCropRGBImageDecoder((args.size, args.size)),
                RandomHorizontalFlip(),
                ToTensor(),
            ],
            "label": [IntDecoder(), ToTensor(), Squeeze()],
        },
    )
    rates = []
    for rep in range(args.repeats + 1):  # epoch 0: Numba compilation, discarded
        n = 0
        t0 = time.perf_counter()
        for images, _labels in loader:
            n += images.shape[0]
        dt = time.perf_counter() - t0
        if rep > 0:
            rates.append(n / dt)
    out = {
        "peer": "ffcv",
        "mode": "loader",
        "workers": args.workers,
        "batch_size": args.batch_size,
        "output": "uint8",
        "beton_bytes": os.path.getsize(args.beton),
        "rates": rates,
        "median": statistics.median(rates),
        "versions": {"ffcv": version("ffcv"), "torch": torch.__version__},
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
