"""Write scikit-learn's bundled handwritten digits as an ImageFolder (a real dataset, no download).

The 1,797 8×8 digits ship inside the scikit-learn package (the test part of UCI "optdigits",
16 grey levels). The split is the one of scikit-learn's "Recognizing hand-written digits"
example — the first half trains, the second half tests, unshuffled — where an SVM
(``SVC(gamma=0.001)``) scores 0.97, so our figure compares with a published one.

scikit-learn is a tool-only dependency: run this with any Python that has scikit-learn and
Pillow (it does not import augpipe), e.g.

    python -m venv /tmp/sk && /tmp/sk/bin/pip install scikit-learn pillow
    /tmp/sk/bin/python tools/make_digits_folder.py /tmp/digits          # writes train/ and val/
    augpipe pack /tmp/digits/train /tmp/digits/train.packed --format raw
    augpipe pack /tmp/digits/val /tmp/digits/val.packed --format raw

Images are upscaled to ``--size`` pixels (bilinear, default 32) and written as grey PNGs in RGB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output directory (train/ and val/ are made in it)")
    p.add_argument("--size", type=int, default=32, help="side of the written images (px)")
    args = p.parse_args(argv)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        print("make_digits_folder: scikit-learn is not installed in this Python; "
              "pip install scikit-learn pillow (in a separate venv)", file=sys.stderr)  # fmt: skip
        return 2
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    half = len(images) // 2  # as in scikit-learn's example: train_test_split(shuffle=False)
    for split, sl in (("train", slice(0, half)), ("val", slice(half, None))):
        for i, (img, label) in enumerate(zip(images[sl], digits.target[sl])):
            folder = args.out / split / f"digit{label}"
            folder.mkdir(parents=True, exist_ok=True)
            big = Image.fromarray(img, "L").resize((args.size, args.size), Image.BILINEAR)
            big.convert("RGB").save(folder / f"{split}{i:04d}.png")
    print(f"wrote {half} train and {len(images) - half} val images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
