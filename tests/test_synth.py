"""make_image_folder: deterministic, the requested layout, classes separable."""

from __future__ import annotations

import colorsys
import hashlib

import numpy as np
import pytest
from PIL import Image

from augpipe.errors import ConfigError
from augpipe.synth import make_image_folder


def _digest(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.jpg"))
    }


def test_layout_sizes_and_determinism(tmp_path):
    a = make_image_folder(tmp_path / "a", n_classes=3, per_class=5, min_side=20, max_side=40)
    b = make_image_folder(tmp_path / "b", n_classes=3, per_class=5, min_side=20, max_side=40)
    c = make_image_folder(tmp_path / "c", n_classes=3, per_class=5, min_side=20, max_side=40,
                          seed=1)  # fmt: skip
    assert sorted(p.name for p in a.iterdir()) == ["class00", "class01", "class02"]
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    sizes = set()
    for p in a.rglob("*.jpg"):
        with Image.open(p) as im:
            assert im.mode == "RGB"
            assert 20 <= im.width <= 40 and 20 <= im.height <= 40
            sizes.add(im.size)
    assert len(sizes) > 3  # mixed sizes


def test_classes_are_separable_by_object_hue(tmp_path):
    """The saturated object's hue alone identifies the class: the task is learnable."""
    n = 6
    root = make_image_folder(tmp_path / "s", n_classes=n, per_class=10, min_side=40, max_side=64)
    correct = total = 0
    for k in range(n):
        for p in sorted((root / f"class{k:02d}").glob("*.jpg")):
            rgb = np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) / 255
            flat = rgb.reshape(-1, 3)
            hsv = np.array([colorsys.rgb_to_hsv(*px) for px in flat[::3]])
            sat = hsv[hsv[:, 1] > 0.55]
            angles = sat[:, 0] * 2 * np.pi
            hue = (np.arctan2(np.sin(angles).mean(), np.cos(angles).mean()) / (2 * np.pi)) % 1
            guess = int(np.round(hue * n)) % n
            correct += guess == k
            total += 1
    assert correct / total >= 0.9


def test_bad_arguments():
    with pytest.raises(ConfigError, match="n_classes"):
        make_image_folder("/nonexistent", n_classes=0)
    with pytest.raises(ConfigError, match="min_side"):
        make_image_folder("/nonexistent", min_side=50, max_side=40)
