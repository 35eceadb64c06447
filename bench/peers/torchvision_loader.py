"""torchvision peer: runs inside peers/tv (torch 2.14.1 + torchvision 0.29.1), prints JSON.

    peers/tv/bin/python bench/peers/torchvision_loader.py data/corpus/photos \
        --version v1 --workers 2 --batch-size 256 --batches 10 --repeats 5

Modes:
- loader (default): ImageFolder + DataLoader (persistent workers), the standard recipe.
  v1: PIL decode + RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor (float32 out).
  v2: torchvision.io.decode_jpeg + v2.RandomResizedCrop(224) + v2.RandomHorizontalFlip (uint8 out).
- --decode-augment: one process, dataset[i] in a loop (decode + augment per core).
- --augment-only: one process, images decoded beforehand, only the transforms timed.

The last stdout line is one JSON object with images/s per repeat (the warm-up repeat, which
includes starting the workers, is discarded).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
import torchvision
from torchvision import datasets
from torchvision import transforms as v1
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms import v2


def load_v2(path: str) -> torch.Tensor:
    return decode_jpeg(read_file(path), mode=ImageReadMode.RGB)


def make_dataset(root: str, version: str, size: int) -> datasets.ImageFolder:
    if version == "v1":
        tf = v1.Compose([v1.RandomResizedCrop(size), v1.RandomHorizontalFlip(), v1.ToTensor()])
        return datasets.ImageFolder(root, transform=tf)
    tf = v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()])
    return datasets.ImageFolder(root, transform=tf, loader=load_v2)


def time_loader(ds, args) -> list[float]:
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        drop_last=False,
    )
    rates = []
    for rep in range(args.repeats + 1):  # repeat 0 is the warm-up (worker start-up)
        n = 0
        t0 = time.perf_counter()
        for b, (images, _labels) in enumerate(loader):
            n += images.shape[0]
            if args.batches and b + 1 >= args.batches:
                break
        dt = time.perf_counter() - t0
        if rep > 0:
            rates.append(n / dt)
    return rates


def time_single(ds, args) -> list[float]:
    n = min(len(ds), args.images)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(ds), generator=g)[:n].tolist()
    if args.augment_only:
        paths = [ds.samples[i][0] for i in order]
        images = [ds.loader(p) for p in paths]  # decoded once, outside the timed region
        tf = ds.transform
    rates = []
    for rep in range(args.repeats + 1):
        t0 = time.perf_counter()
        if args.augment_only:
            for img in images:
                tf(img)
        else:
            for i in order:
                ds[i]
        dt = time.perf_counter() - t0
        if rep > 0:
            rates.append(n / dt)
    return rates


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", help="ImageFolder root")
    ap.add_argument("--version", choices=("v1", "v2"), default="v1")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--batches", type=int, default=0, help="batches per repeat (0: whole epoch)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--images", type=int, default=500, help="images in the single-process modes")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--decode-augment", action="store_true")
    mode.add_argument("--augment-only", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(1)  # one core per process: the comparison is per core / per worker
    ds = make_dataset(args.root, args.version, args.size)
    if args.augment_only or args.decode_augment:
        rates = time_single(ds, args)
        mode_name = "augment-only" if args.augment_only else "decode-augment"
    else:
        rates = time_loader(ds, args)
        mode_name = "loader"
    out = {
        "peer": f"torchvision-{args.version}",
        "mode": mode_name,
        "workers": args.workers if mode_name == "loader" else 1,
        "batch_size": args.batch_size,
        "output": "float32" if args.version == "v1" else "uint8",
        "rates": rates,
        "median": statistics.median(rates),
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__},
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
