"""Semantic segmentation as paired image/mask folders (``augpipe pack --masks DIR OUT``).

Layout: ``DIR/images/**/NAME.ext`` and ``DIR/masks/**/NAME.png`` (same relative path and stem).
Masks are grey or indexed (palette) PNGs whose values are class indices, 255 = ignore; colour
masks need ``DIR/classes.txt`` lines ``name R G B`` (colours not listed become 255). Class names
from ``DIR/classes.txt`` (``name`` or ``name R G B`` per line), else "0".."max value". An image
without a mask is skipped and listed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from augpipe.errors import UserError
from augpipe.format.yolo import find_images
from augpipe.targets.core import IGNORE
from augpipe.targets.source import RawAnnotation, TargetSource


def _classes(path: Path):
    if not path.is_file():
        return None, None
    names, palette = [], {}
    for ln in path.read_text(encoding="utf-8").splitlines():
        parts = ln.split()
        if not parts:
            continue
        if len(parts) >= 4 and all(p.isdigit() for p in parts[-3:]):
            palette[tuple(int(p) for p in parts[-3:])] = len(names)
            names.append(" ".join(parts[:-3]))
        else:
            names.append(ln.strip())
    return names, palette or None


def mask_source(folder) -> TargetSource:
    root = Path(folder)
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise UserError(f"--masks: expected a folder with images/ and masks/, got {str(root)!r}")
    names, palette = _classes(root / "classes.txt")
    items, anns, problems = [], [], []
    top = 0
    for image in find_images(root / "images"):
        rel = Path(image).relative_to(root / "images")
        mask = (root / "masks" / rel).with_suffix(".png")
        if not mask.is_file():
            problems.append((os.path.relpath(image, root), "no mask: image skipped"))
            continue
        if names is None:
            from PIL import Image

            with Image.open(mask) as m:
                v = np.unique(np.asarray(m if m.mode in ("P", "L") else m.convert("L")))
            v = v[v != IGNORE]
            top = max(top, int(v.max()) + 1 if v.size else 0)
        items.append((image, -1))
        anns.append(RawAnnotation(None, np.zeros((0, 4)), np.zeros(0), semantic=str(mask)))
    if not items:
        raise UserError(f"--masks {str(root)!r}: no image has a mask in masks/")
    classes = names if names is not None else [str(k) for k in range(max(top, 1))]
    src = TargetSource(items, classes, str(root), anns, {"source": "masks", "semantic": True},
                       palette=palette)  # fmt: skip
    src.problems.extend(problems)
    return src
