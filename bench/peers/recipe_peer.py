"""timm / torchvision v2 recipe peer: runs inside peers/tv (timm 1.0.31, torchvision 0.29.1,
pillow < 12), one process, one thread; prints one JSON object (images/s per repeat per row).

    peers/tv/bin/python bench/peers/recipe_peer.py data/corpus/photos --images 500 --repeats 5

Rows, each JPEG file -> RandomResizedCrop 224 + flip + policy -> uint8 HWC:
- timm: PIL decode, timm's RandomResizedCropAndInterpolation (bilinear) + flip, then timm's
  ``rand-m9-mstd0.5-inc1``, ``augmix-m5-w4-d2``, AutoAugment ``original``, or RandomErasing
  (p 0.25, mode pixel: timm erases the normalised float tensor, so that row ends in float);
- torchvision v2: decode_jpeg + v2.RandomResizedCrop + v2.RandomHorizontalFlip, then
  v2.RandAugment(2, 9), v2.TrivialAugmentWide(), v2.AutoAugment(IMAGENET), v2.AugMix(), or
  v2.RandomErasing(p 0.25) on the uint8 tensor.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def timm_rows(size: int):
    import timm
    from timm.data.auto_augment import (
        augment_and_mix_transform,
        auto_augment_transform,
        rand_augment_transform,
    )
    from timm.data.random_erasing import RandomErasing
    from timm.data.transforms import RandomResizedCropAndInterpolation
    from torchvision import transforms as v1

    hp = dict(translate_const=int(size * 0.45), img_mean=(124, 116, 104))
    base = [RandomResizedCropAndInterpolation(size, interpolation="bilinear"),
            v1.RandomHorizontalFlip()]  # fmt: skip

    def pil_chain(extra):
        tf = v1.Compose(base + extra)
        return lambda path: np.asarray(tf(Image.open(path).convert("RGB")))

    erase = RandomErasing(0.25, mode="pixel", device="cpu")
    to_t = v1.Compose([v1.ToTensor(), v1.Normalize(MEAN, STD)])
    crop = v1.Compose(base)
    rows = {
        "timm standard (RRC + flip)": pil_chain([]),
        "timm rand-m9-mstd0.5-inc1": pil_chain([rand_augment_transform("rand-m9-mstd0.5-inc1",
                                                                       dict(hp))]),
        "timm augmix-m5-w4-d2": pil_chain([augment_and_mix_transform("augmix-m5-w4-d2",
                                                                     dict(hp))]),
        "timm AutoAugment original": pil_chain([auto_augment_transform("original", dict(hp))]),
        "timm RandomErasing 0.25 pixel (float out)": lambda p: erase(
            to_t(crop(Image.open(p).convert("RGB")))),
    }  # fmt: skip
    return rows, {"timm": timm.__version__}


def tv_rows(size: int):
    import torchvision
    from torchvision.io import ImageReadMode, decode_jpeg, read_file
    from torchvision.transforms import v2

    base = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]

    def chain(extra):
        tf = v2.Compose(base + extra)
        return lambda path: tf(decode_jpeg(read_file(path), mode=ImageReadMode.RGB))

    rows = {
        "torchvision v2 standard (RRC + flip)": chain([]),
        "torchvision v2 RandAugment(2, 9)": chain([v2.RandAugment(2, 9)]),
        "torchvision v2 TrivialAugmentWide": chain([v2.TrivialAugmentWide()]),
        "torchvision v2 AutoAugment(imagenet)": chain([v2.AutoAugment()]),
        "torchvision v2 AugMix": chain([v2.AugMix()]),
        "torchvision v2 RandomErasing 0.25": chain([v2.RandomErasing(0.25)]),
    }
    return rows, {"torchvision": torchvision.__version__, "torch": torch.__version__}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("photos")
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import PIL

    files = sorted(str(p) for p in Path(args.photos).rglob("*.jpg"))[: args.images]
    if not files:
        print(f"no .jpg files under {args.photos}", file=sys.stderr)
        return 2
    fns, versions = {}, {"pillow": PIL.__version__}
    for make in (timm_rows, tv_rows):
        rows, v = make(args.size)
        fns.update(rows)
        versions.update(v)
    torch.manual_seed(0)
    rates: dict[str, list[float]] = {k: [] for k in fns}
    for rep in range(args.repeats + 1):  # interleaved; repeat 0 is the warm-up
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for f in files:
                fn(f)
            if rep:
                rates[name].append(len(files) / (time.perf_counter() - t0))
    print(json.dumps({"rates": rates, "images": len(files), "versions": versions}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
