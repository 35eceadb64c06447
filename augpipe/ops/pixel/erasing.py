"""RandomErasing (timm's semantics), written into the output tile at the end of the program.

With probability ``p`` a box of area ``scale`` x the output (uniform) and aspect ratio
``ratio`` (log-uniform) is placed uniformly; up to 10 attempts, the first box that fits strictly
inside wins (none fits: no erase), as timm's ``RandomErasing._erase`` with count 1. timm erases
the normalised tensor; in uint8 its modes become:

- ``const``: the normalisation mean colour (timm's zeros), or ``value`` when given;
- ``rand``: one colour per box, mean + std * N(0, 1) per channel;
- ``pixel``: mean + std * N(0, 1) per pixel and channel (noise from (seed, epoch, index)).

>>> Compose([RandomResizedCrop(224), RandomErasing(0.25, mode="pixel")])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.errors import bad_param
from augpipe.ops.base import Op, interval, number, probability

MODES = {"const": 1, "rand": 2, "pixel": 3}
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
_ATTEMPTS = 10


@dataclass(frozen=True)
class RandomErasing(Op):
    """Erase one random box per sample with probability ``p`` (see the module docstring).

    >>> RandomErasing(p=0.25, scale=(0.02, 1 / 3), ratio=(0.3, 1 / 0.3), mode="const")
    """

    p: float = 0.5
    scale: tuple[float, float] = (0.02, 1 / 3)
    ratio: tuple[float, float] = (0.3, 1 / 0.3)
    mode: str = "const"
    value: tuple[float, float, float] | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    kind: ClassVar[str] = "erase"

    def __post_init__(self):
        probability("RandomErasing.p", self.p)
        interval("RandomErasing.scale", self.scale, 0.0, 1.0)
        lo, _ = interval("RandomErasing.ratio", self.ratio, 0.0, 100.0)
        if lo <= 0:
            raise bad_param("RandomErasing.ratio", "aspect ratios > 0", self.ratio, "(0.3, 3.3)")
        if self.mode not in MODES:
            raise bad_param("RandomErasing.mode", f"one of {tuple(MODES)}", self.mode)
        for name in ("mean", "std") + (("value",) if self.value is not None else ()):
            v = getattr(self, name)
            if not isinstance(v, (tuple, list)) or len(v) != 3:
                raise bad_param(f"RandomErasing.{name}", "three numbers (R, G, B) in 0..255", v)
            for c in v:
                number(f"RandomErasing.{name}", c, 0.0, 255.0)

    def erase_box(self, indices, seed: int, epoch: int, pos: int, out_hw) -> dict:
        n = len(indices)
        H, W = out_hw
        on = rng.bernoulli(seed, epoch, indices, rng.stream_id(pos, 0), self.p)
        lo, hi = self.scale
        lr = np.log(np.asarray(self.ratio, dtype=np.float64))
        box = np.zeros((n, 4), np.int32)
        found = np.zeros(n, dtype=bool)
        for a in range(_ATTEMPTS):
            if found.all():  # later attempts only change samples without a box yet
                break
            u = rng.uniform(seed, epoch, indices, rng.stream_id(pos, 1 + 4 * a), lo, hi)
            ar = np.exp(rng.uniform(seed, epoch, indices, rng.stream_id(pos, 2 + 4 * a), *lr))
            area = u * H * W
            # capped before the cast: a huge finite side (extreme ratio) would wrap to a negative
            # int64 and pass the size test below
            with np.errstate(over="ignore"):  # an overflow is inf, capped like any huge side
                h = np.round(np.minimum(np.nan_to_num(np.sqrt(area * ar), posinf=H), H))
                w = np.round(np.minimum(np.nan_to_num(np.sqrt(area / ar), posinf=W), W))
            h, w = h.astype(np.int64), w.astype(np.int64)
            ok = (w < W) & (h < H) & ~found
            ty = rng.uniform(seed, epoch, indices, rng.stream_id(pos, 3 + 4 * a))
            tx = rng.uniform(seed, epoch, indices, rng.stream_id(pos, 4 + 4 * a))
            top = np.minimum((ty * (H - h + 1)).astype(np.int64), H - h)
            left = np.minimum((tx * (W - w + 1)).astype(np.int64), W - w)
            box[ok] = np.stack([top, left, h, w], axis=1)[ok]
            found |= ok
        on &= found
        mean = np.asarray(self.value if self.value is not None else self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        col = np.tile(mean, (n, 1))
        if self.mode == "rand":
            z = np.stack(
                [rng.normal(seed, epoch, indices, rng.stream_id(pos, 60 + c)) for c in range(3)],
                axis=1,
            )
            col = (mean + std * z).astype(np.float32)
        return {
            "ebox": box,
            "emode": np.where(on, MODES[self.mode], 0).astype(np.int8),
            "ecol": col,
            "estd": np.tile(std, (n, 1)),
            "ekey": rng.bits(seed, epoch, indices, rng.stream_id(pos, 64)),
        }
