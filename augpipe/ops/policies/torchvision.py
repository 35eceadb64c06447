"""torchvision v2's policies (``torchvision/transforms/v2/_auto_augment.py``): RandAugment,
TrivialAugmentWide and AutoAugment(imagenet), with their constructors, op lists and magnitude
bins, drawn per sample from (seed, epoch, index) (never once per batch).

Magnitude bins: ``linspace(0, max, bins)[magnitude]``; signed ops negate with probability 1/2;
Brightness/Color/Contrast/Sharpness use factor 1 + value; Posterize keeps
``round(8 - i / ((bins - 1) / 4))`` bits (TrivialAugmentWide: / 6); Solarize's threshold is
255 * linspace(1, 0, bins)[i]. Fill 0, as torchvision's default.

>>> Compose([RandomResizedCrop(224), HorizontalFlip(), RandAugment(num_ops=2, magnitude=9)])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.errors import ConfigTypeError, bad_param
from augpipe.ops.base import Op
from augpipe.ops.pixel import program as P
from augpipe.ops.policies import vocab as V
from augpipe.ops.policies.timm import check_fill

# name -> (kind, max of the linear bins or None, signed); "wide" for TrivialAugmentWide
_SPACE = {
    "Identity": (V.IDENTITY, None, False),
    "ShearX": (V.SHEAR_X, 0.3, True),
    "ShearY": (V.SHEAR_Y, 0.3, True),
    "TranslateX": (V.TRANSLATE_X, "x", True),
    "TranslateY": (V.TRANSLATE_Y, "y", True),
    "Rotate": (V.ROTATE, 30.0, True),
    "Brightness": (V.step(P.BRIGHTNESS), 0.9, True),
    "Color": (V.step(P.COLOR), 0.9, True),
    "Contrast": (V.CONTRAST_TV, 0.9, True),
    "Sharpness": (V.step(P.SHARPNESS), 0.9, True),
    "Posterize": (V.step(P.POSTERIZE), "bits", False),
    "Solarize": (V.step(P.SOLARIZE), "solarize", False),
    "AutoContrast": (V.step(P.AUTOCONTRAST), None, False),
    "Equalize": (V.step(P.EQUALIZE), None, False),
    "Invert": (V.step(P.INVERT), None, False),
}
RANDAUGMENT_OPS = tuple(k for k in _SPACE if k != "Invert")  # 14, Identity included
WIDE_MAX = {"ShearX": 0.99, "ShearY": 0.99, "TranslateX": 32.0, "TranslateY": 32.0,
            "Rotate": 135.0, "Brightness": 0.99, "Color": 0.99, "Contrast": 0.99,
            "Sharpness": 0.99}  # fmt: skip


def _value(name: str, i: np.ndarray, bins: int, out_hw, wide: bool) -> np.ndarray:
    """The bin value torchvision's magnitudes_fn(bins, H, W)[i] gives (before the sign)."""
    kind, top, _ = _SPACE[name]
    H, W = out_hw
    frac = i / max(bins - 1, 1)
    if top is None:
        return np.zeros(len(i))
    if top == "bits":
        return np.round(8 - i / ((bins - 1) / (6 if wide else 4))).astype(np.int64) * 1.0
    if top == "solarize":
        return 255.0 * (1.0 - frac)
    if wide:
        top = WIDE_MAX[name]
    elif top in ("x", "y"):
        top = 150.0 / 331.0 * (W if top == "x" else H)
    return top * frac


_ENHANCE = (V.step(P.BRIGHTNESS), V.step(P.COLOR), V.CONTRAST_TV, V.step(P.SHARPNESS))
_SHIFT = (V.TRANSLATE_X, V.TRANSLATE_Y)


def _final(kind: int, v: np.ndarray) -> np.ndarray:
    """The signed bin value as the op's argument."""
    if kind in _SHIFT:
        v = -np.trunc(v)  # int(magnitude) pixels; translate=[t, 0] moves content by +t: the
        # inverse map reads x - t
    if kind in _ENHANCE:
        v = 1.0 + v
    return v


def _slot(names, which, mag_idx, neg, bins, out_hw, wide):
    """(kinds, values) of op ``which`` at bin ``mag_idx`` (torchvision's argument rules): a
    table of every op's argument at every bin drawn, with either sign, then one lookup."""
    top = int(np.max(mag_idx)) + 1 if len(mag_idx) else 1
    b = np.arange(top)
    kinds = np.zeros(len(names), np.int64)
    pos = np.zeros((len(names), top))
    negv = np.zeros((len(names), top))
    for i, name in enumerate(names):
        kind, _, signed = _SPACE[name]
        v = _value(name, b, bins, out_hw, wide)
        kinds[i], pos[i] = kind, _final(kind, v)
        negv[i] = _final(kind, -v) if signed else pos[i]
    return kinds[which], np.where(neg, negv[which, mag_idx], pos[which, mag_idx])


def _int(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigTypeError(f"{name}: expected an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise bad_param(name, f"an integer in [{lo}, {hi}]", value)
    return int(value)


class _TvPolicy:
    """Shared by the torchvision policies (a mixin, not an Op)."""

    kind: ClassVar[str] = "policy"

    def policy(self, indices, seed: int, epoch: int, pos: int, out_hw) -> dict:
        kinds, values = self.draw(indices, seed, epoch, pos, out_hw)
        return V.assemble(kinds, values, out_hw, self.fill)


@dataclass(frozen=True)
class RandAugment(_TvPolicy, Op):
    """torchvision v2's RandAugment: ``num_ops`` ops per sample, uniform over its 14 (Identity
    included, no Invert), always applied, at bin ``magnitude`` of ``num_magnitude_bins``.

    >>> RandAugment(num_ops=2, magnitude=9, num_magnitude_bins=31)
    """

    num_ops: int = 2
    magnitude: int = 9
    num_magnitude_bins: int = 31
    fill: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self):
        _int("RandAugment.num_ops", self.num_ops, 0, 16)
        _int("RandAugment.num_magnitude_bins", self.num_magnitude_bins, 2)
        _int("RandAugment.magnitude", self.magnitude, 0, self.num_magnitude_bins - 1)
        check_fill("RandAugment.fill", self.fill)

    def draw(self, indices, seed: int, epoch: int, pos: int, out_hw):
        n = len(indices)
        L = max(self.num_ops, 1)
        kinds = np.zeros((n, L), np.int64)
        values = np.full((n, L), np.nan)
        idx = np.full(n, self.magnitude)
        for j in range(self.num_ops):
            which = V.choice(seed, epoch, indices, rng.stream_id(pos, 16 * j), 14)
            neg = rng.uniform(seed, epoch, indices, rng.stream_id(pos, 16 * j + 1)) <= 0.5
            kinds[:, j], values[:, j] = _slot(RANDAUGMENT_OPS, which, idx, neg,
                                              self.num_magnitude_bins, out_hw, False)  # fmt: skip
        return kinds, values


@dataclass(frozen=True)
class TrivialAugmentWide(_TvPolicy, Op):
    """torchvision v2's TrivialAugmentWide: one op per sample, uniform over its 14, at a bin
    drawn uniformly from ``num_magnitude_bins`` (the wide ranges: rotate 135 deg, shear 0.99,
    translate 32 px, enhance 1 +- 0.99, posterize 2..8 bits).

    >>> TrivialAugmentWide()
    """

    num_magnitude_bins: int = 31
    fill: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self):
        _int("TrivialAugmentWide.num_magnitude_bins", self.num_magnitude_bins, 2)
        check_fill("TrivialAugmentWide.fill", self.fill)

    def draw(self, indices, seed: int, epoch: int, pos: int, out_hw):
        which = V.choice(seed, epoch, indices, rng.stream_id(pos, 0), 14)
        idx = V.choice(seed, epoch, indices, rng.stream_id(pos, 1), self.num_magnitude_bins)
        neg = rng.uniform(seed, epoch, indices, rng.stream_id(pos, 2)) <= 0.5
        k, v = _slot(RANDAUGMENT_OPS, which, idx, neg, self.num_magnitude_bins, out_hw, True)
        return k[:, None], v[:, None]


IMAGENET_POLICY = [
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
    (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
    (("Color", 0.4, 0), ("Equalize", 0.6, None)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
]


@dataclass(frozen=True)
class AutoAugment(_TvPolicy, Op):
    """torchvision v2's AutoAugment(policy="imagenet"): one of 25 sub-policies per sample, each
    op applied with its probability at its bin of 10. timm's policies: ``TimmAutoAugment``.

    >>> AutoAugment("imagenet")
    """

    policy_name: str = "imagenet"
    fill: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self):
        if self.policy_name != "imagenet":
            raise bad_param("AutoAugment.policy_name", "'imagenet' (timm's: original, v0, ...: "
                            "TimmAutoAugment)", self.policy_name)  # fmt: skip
        check_fill("AutoAugment.fill", self.fill)

    def draw(self, indices, seed: int, epoch: int, pos: int, out_hw):
        n = len(indices)
        names = tuple(_SPACE)
        sub = V.choice(seed, epoch, indices, rng.stream_id(pos, 0), len(IMAGENET_POLICY))
        kinds = np.zeros((n, 2), np.int64)
        values = np.full((n, 2), np.nan)
        for j in range(2):
            u = rng.uniform(seed, epoch, indices, rng.stream_id(pos, 16 * (j + 1)))
            neg = rng.uniform(seed, epoch, indices, rng.stream_id(pos, 16 * (j + 1) + 1)) <= 0.5
            which = np.zeros(n, np.int64)
            idx = np.zeros(n, np.int64)
            on = np.zeros(n, dtype=bool)
            for i, sp in enumerate(IMAGENET_POLICY):
                sel = sub == i
                name, p, m = sp[j]
                which[sel] = names.index(name)
                idx[sel] = m or 0
                on[sel] = u[sel] <= p
            k, v = _slot(names, which, idx, neg, 10, out_hw, False)
            kinds[on, j], values[on, j] = k[on], v[on]
        return kinds, values
