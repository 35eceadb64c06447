"""FFCV writer peer: runs inside peers/ffcv (ffcv 1.0.2), prints JSON.

    peers/ffcv/bin/python bench/peers/ffcv_pack.py LIST ROOT --out /tmp/x.beton \
        --workers 2 --repeats 3

Times FFCV's ``DatasetWriter`` (``RGBImageField(write_mode="jpg", jpeg_quality=90)`` + label,
original sizes) over the images named in LIST (``relative/path label`` lines, paths relative
to ROOT): the same images and settings that bench/pack_speed.py gives ``augpipe pack``. Each
repeat writes a fresh file; the last stdout line is one JSON object with images/s per repeat.
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


class ListDataset:
    """(HWC uint8 RGB array, label) for each line of a list file."""

    def __init__(self, list_file: str, root: str):
        self.samples = []
        with open(list_file) as f:
            for line in f:
                if line.strip():
                    path, label = line.rsplit(maxsplit=1)
                    self.samples.append((os.path.join(root, path), int(label)))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB")), label


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("list_file")
    ap.add_argument("root")
    ap.add_argument("--out", required=True, help="where to write the .beton (overwritten)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    ds = ListDataset(args.list_file, args.root)
    rates, size = [], 0
    for _ in range(args.repeats):
        if os.path.exists(args.out):
            os.remove(args.out)
        fields = {"image": RGBImageField(write_mode="jpg", jpeg_quality=90), "label": IntField()}
        t0 = time.perf_counter()
        DatasetWriter(args.out, fields, num_workers=args.workers).from_indexed_dataset(ds)
        rates.append(len(ds) / (time.perf_counter() - t0))
        size = os.path.getsize(args.out)
    os.remove(args.out)
    print(json.dumps({
        "peer": "ffcv", "mode": "writer", "workers": args.workers, "images": len(ds),
        "bytes": size, "rates": rates, "median": statistics.median(rates),
        "versions": {"ffcv": version("ffcv")},
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
