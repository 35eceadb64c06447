"""timm's policies (``timm/data/auto_augment.py``): RandAugment, AutoAugment, their op list and
magnitude mapping, drawn per sample from (seed, epoch, index).

Each applied op draws its magnitude: m itself, or N(m, mstd) (``mstd`` > 0), or U(0, m)
(``mstd`` = inf, AugMix's default), clipped to [0, mmax or 10]; level = magnitude / 10. Signed
ops negate their argument with probability 1/2. Fill (124, 116, 104): timm's ImageNet mean.

>>> Compose([RandomResizedCrop(224), HorizontalFlip(), TimmRandAugment(9, 2, mstd=0.5, inc=True)])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.errors import bad_param
from augpipe.ops.base import Op, number, positive_int, probability
from augpipe.ops.pixel import program as P
from augpipe.ops.policies import vocab as V

TIMM_FILL = (124, 116, 104)


def _enhance(lv, neg):
    return lv * 1.8 + 0.1


def _enhance_inc(lv, neg):
    return np.maximum(0.1, 1.0 + np.where(neg, -1.0, 1.0) * lv * 0.9)


def _signed(scale):
    return lambda lv, neg: np.where(neg, -1.0, 1.0) * lv * scale


def _solarize(lv, neg):
    return np.minimum(256, (lv * 256).astype(np.int64)).astype(np.float64)


def _posterize(lv, neg):
    return (lv * 4).astype(np.int64).astype(np.float64)


def _const(lv, neg):
    return np.zeros_like(lv)


# name -> (kind, level -> argument); translate is a fraction of the image side (x 0.45)
OPS = {
    "AutoContrast": (V.step(P.AUTOCONTRAST), _const),
    "Equalize": (V.step(P.EQUALIZE), _const),
    "Invert": (V.step(P.INVERT), _const),
    "Rotate": (V.ROTATE, _signed(30.0)),
    "Posterize": (V.step(P.POSTERIZE), _posterize),
    "PosterizeIncreasing": (V.step(P.POSTERIZE), lambda lv, neg: 4 - _posterize(lv, neg)),
    "PosterizeOriginal": (V.step(P.POSTERIZE), lambda lv, neg: _posterize(lv, neg) + 4),
    "Solarize": (V.step(P.SOLARIZE), _solarize),
    "SolarizeIncreasing": (V.step(P.SOLARIZE), lambda lv, neg: 256 - _solarize(lv, neg)),
    "SolarizeAdd": (V.step(P.SOLARIZE_ADD),
                    lambda lv, neg: np.minimum(128, (lv * 110).astype(np.int64)) * 1.0),
    "Color": (V.step(P.COLOR), _enhance),
    "ColorIncreasing": (V.step(P.COLOR), _enhance_inc),
    "Contrast": (V.step(P.CONTRAST), _enhance),
    "ContrastIncreasing": (V.step(P.CONTRAST), _enhance_inc),
    "Brightness": (V.step(P.BRIGHTNESS), _enhance),
    "BrightnessIncreasing": (V.step(P.BRIGHTNESS), _enhance_inc),
    "Sharpness": (V.step(P.SHARPNESS), _enhance),
    "SharpnessIncreasing": (V.step(P.SHARPNESS), _enhance_inc),
    "ShearX": (V.SHEAR_X, _signed(0.3)),
    "ShearY": (V.SHEAR_Y, _signed(0.3)),
    "TranslateXRel": (V.TRANSLATE_X, _signed(0.45)),
    "TranslateYRel": (V.TRANSLATE_Y, _signed(0.45)),
}  # fmt: skip

RAND_TRANSFORMS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize",
                   "SolarizeAdd", "Color", "Contrast", "Brightness", "Sharpness", "ShearX",
                   "ShearY", "TranslateXRel", "TranslateYRel")  # fmt: skip
RAND_INCREASING = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing",
                   "SolarizeIncreasing", "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing",
                   "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY",
                   "TranslateXRel", "TranslateYRel")  # fmt: skip
RAND_WEIGHTS = {"Rotate": 3, "ShearX": 2, "ShearY": 2, "TranslateXRel": 1, "TranslateYRel": 1,
                "ColorIncreasing": 0.25, "SharpnessIncreasing": 0.25, "AutoContrast": 0.25,
                "SolarizeIncreasing": 0.05, "SolarizeAdd": 0.05, "ContrastIncreasing": 0.05,
                "BrightnessIncreasing": 0.05, "Equalize": 0.05, "PosterizeIncreasing": 0.05,
                "Invert": 0.05}  # fmt: skip


def apply_ops(names, which, level, neg, out_hw):
    """(kinds, values) for op ``which`` (index into names) at ``level`` (magnitude / 10)."""
    kinds = np.zeros(len(which), np.int64)
    values = np.zeros(len(which))
    H, W = out_hw
    for i, name in enumerate(names):
        sel = which == i
        if not np.any(sel):
            continue
        kind, fn = OPS[name]
        kinds[sel] = kind
        v = fn(level[sel], neg[sel])
        if kind == V.TRANSLATE_X:
            v = v * W
        elif kind == V.TRANSLATE_Y:
            v = v * H
        values[sel] = v
    return kinds, values


def magnitudes(m, mstd, mmax, seed, epoch, indices, stream) -> np.ndarray:
    """timm's per-application magnitude: m, N(m, mstd) or U(0, m) (mstd > 100 or inf),
    clipped to [0, mmax or 10]. ``m`` a number or one per index."""
    m = np.broadcast_to(np.asarray(m, np.float64), (len(indices),))
    if mstd == math.inf or mstd > 100:
        mag = m * rng.uniform(seed, epoch, indices, stream)
    elif mstd > 0:
        mag = m + rng.normal(seed, epoch, indices, stream, 0.0, mstd)
    else:
        mag = m.copy()
    return np.clip(mag, 0.0, mmax or 10.0)


def check_fill(name: str, fill) -> tuple[int, int, int]:
    if not isinstance(fill, (tuple, list)) or len(fill) != 3:
        raise bad_param(name, "three integers (R, G, B) in 0..255", fill)
    return tuple(int(number(name, v, 0, 255)) for v in fill)


@dataclass(frozen=True)
class TimmRandAugment(Op):
    """timm's RandAugment (``rand-m9-n2-mstd0.5-inc1``): ``n`` ops per sample chosen uniformly
    with replacement (``t="weights"``: timm's weighted list, without replacement), each applied
    with probability ``p``, magnitude ``m`` (noise ``mstd``, cap ``mmax``), timm's increasing
    op variants when ``inc``.

    >>> TimmRandAugment(m=9, n=2, mstd=0.5, inc=True)
    """

    m: float = 10.0
    n: int = 2
    p: float = 0.5
    mstd: float = 0.0
    mmax: float | None = None
    inc: bool = False
    t: str = ""
    fill: tuple[int, int, int] = TIMM_FILL
    kind: ClassVar[str] = "policy"

    def __post_init__(self):
        number("TimmRandAugment.m", self.m, 0.0, 100.0)
        if positive_int("TimmRandAugment.n", self.n) > 16:
            raise bad_param("TimmRandAugment.n", "at most 16 ops per sample", self.n)
        probability("TimmRandAugment.p", self.p)
        number("TimmRandAugment.mstd", self.mstd, 0.0)  # > 100: uniform in [0, m]
        if self.mmax is not None:
            number("TimmRandAugment.mmax", self.mmax, 0.0, 100.0)
        if self.t not in ("", "weights"):
            raise bad_param("TimmRandAugment.t", "'' (the standard list) or 'weights'", self.t)
        check_fill("TimmRandAugment.fill", self.fill)

    def names(self) -> tuple[str, ...]:
        if self.t == "weights":
            return tuple(RAND_WEIGHTS)
        return RAND_INCREASING if self.inc else RAND_TRANSFORMS

    def draw(self, indices, seed: int, epoch: int, pos: int, out_hw):
        names = self.names()
        n = len(indices)
        kinds = np.zeros((n, self.n), np.int64)
        values = np.zeros((n, self.n))
        taken = np.zeros((n, len(names)), dtype=bool)
        w = np.array(list(RAND_WEIGHTS.values())) if self.t == "weights" else None
        mstd = self.mstd
        for j in range(self.n):
            s = lambda k, b=16 * j: rng.stream_id(pos, b + k)  # noqa: E731
            if w is None:
                which = V.choice(seed, epoch, indices, s(0), len(names))
            else:  # without replacement: weights of the ops already taken drop to 0
                ww = np.where(taken, 0.0, w[None, :])
                cdf = np.cumsum(ww, axis=1)
                u = rng.uniform(seed, epoch, indices, s(0)) * cdf[:, -1]
                which = np.minimum((cdf <= u[:, None]).sum(axis=1), len(names) - 1)
                taken[np.arange(n), which] = True
            on = rng.uniform(seed, epoch, indices, s(1)) <= self.p
            lv = magnitudes(self.m, mstd, self.mmax, seed, epoch, indices, s(2)) / 10.0
            neg = rng.uniform(seed, epoch, indices, s(4)) > 0.5
            k, v = apply_ops(names, which, lv, neg, out_hw)
            kinds[:, j] = np.where(on, k, V.IDENTITY)
            values[:, j] = np.where(on, v, np.nan)
        return kinds, values

    def policy(self, indices, seed: int, epoch: int, pos: int, out_hw) -> dict:
        kinds, values = self.draw(indices, seed, epoch, pos, out_hw)
        return V.assemble(kinds, values, out_hw, self.fill)


AA_ORIGINAL = [
    [("PosterizeOriginal", 0.4, 8), ("Rotate", 0.6, 9)],
    [("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)],
    [("Equalize", 0.8, 8), ("Equalize", 0.6, 3)],
    [("PosterizeOriginal", 0.6, 7), ("PosterizeOriginal", 0.6, 6)],
    [("Equalize", 0.4, 7), ("Solarize", 0.2, 4)],
    [("Equalize", 0.4, 4), ("Rotate", 0.8, 8)],
    [("Solarize", 0.6, 3), ("Equalize", 0.6, 7)],
    [("PosterizeOriginal", 0.8, 5), ("Equalize", 1.0, 2)],
    [("Rotate", 0.2, 3), ("Solarize", 0.6, 8)],
    [("Equalize", 0.6, 8), ("PosterizeOriginal", 0.4, 6)],
    [("Rotate", 0.8, 8), ("Color", 0.4, 0)],
    [("Rotate", 0.4, 9), ("Equalize", 0.6, 2)],
    [("Equalize", 0.0, 7), ("Equalize", 0.8, 8)],
    [("Invert", 0.6, 4), ("Equalize", 1.0, 8)],
    [("Color", 0.6, 4), ("Contrast", 1.0, 8)],
    [("Rotate", 0.8, 8), ("Color", 1.0, 2)],
    [("Color", 0.8, 8), ("Solarize", 0.8, 7)],
    [("Sharpness", 0.4, 7), ("Invert", 0.6, 8)],
    [("ShearX", 0.6, 5), ("Equalize", 1.0, 9)],
    [("Color", 0.4, 0), ("Equalize", 0.6, 3)],
    [("Equalize", 0.4, 7), ("Solarize", 0.2, 4)],
    [("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)],
    [("Invert", 0.6, 4), ("Equalize", 1.0, 8)],
    [("Color", 0.6, 4), ("Contrast", 1.0, 8)],
    [("Equalize", 0.8, 8), ("Equalize", 0.6, 3)],
]
AA_V0 = [
    [("Equalize", 0.8, 1), ("ShearY", 0.8, 4)],
    [("Color", 0.4, 9), ("Equalize", 0.6, 3)],
    [("Color", 0.4, 1), ("Rotate", 0.6, 8)],
    [("Solarize", 0.8, 3), ("Equalize", 0.4, 7)],
    [("Solarize", 0.4, 2), ("Solarize", 0.6, 2)],
    [("Color", 0.2, 0), ("Equalize", 0.8, 8)],
    [("Equalize", 0.4, 8), ("SolarizeAdd", 0.8, 3)],
    [("ShearX", 0.2, 9), ("Rotate", 0.6, 8)],
    [("Color", 0.6, 1), ("Equalize", 1.0, 2)],
    [("Invert", 0.4, 9), ("Rotate", 0.6, 0)],
    [("Equalize", 1.0, 9), ("ShearY", 0.6, 3)],
    [("Color", 0.4, 7), ("Equalize", 0.6, 0)],
    [("Posterize", 0.4, 6), ("AutoContrast", 0.4, 7)],
    [("Solarize", 0.6, 8), ("Color", 0.6, 9)],
    [("Solarize", 0.2, 4), ("Rotate", 0.8, 9)],
    [("Rotate", 1.0, 7), ("TranslateYRel", 0.8, 9)],
    [("ShearX", 0.0, 0), ("Solarize", 0.8, 4)],
    [("ShearY", 0.8, 0), ("Color", 0.6, 4)],
    [("Color", 1.0, 0), ("Rotate", 0.6, 2)],
    [("Equalize", 0.8, 4), ("Equalize", 0.0, 8)],
    [("Equalize", 1.0, 4), ("AutoContrast", 0.6, 2)],
    [("ShearY", 0.4, 7), ("SolarizeAdd", 0.6, 7)],
    [("Posterize", 0.8, 2), ("Solarize", 0.6, 10)],
    [("Solarize", 0.6, 8), ("Equalize", 0.6, 1)],
    [("Color", 0.8, 6), ("Rotate", 0.4, 5)],
]


def _research(policy):  # timm's "r" variants: Posterize* -> PosterizeIncreasing
    return [[("PosterizeIncreasing" if o.startswith("Posterize") else o, p, m) for o, p, m in sp]
            for sp in policy]  # fmt: skip


AA_POLICIES = {"original": AA_ORIGINAL, "originalr": _research(AA_ORIGINAL), "v0": AA_V0,
               "v0r": _research(AA_V0)}  # fmt: skip


def run_subpolicies(policy, indices, seed, epoch, pos, out_hw, mstd=0.0, signs=True):
    """A sub-policy chosen uniformly per sample, each of its ops applied with its probability:
    (kinds, values) of shape (n, 2) (``mstd`` as timm's AugmentOp)."""
    n = len(indices)
    sub = V.choice(seed, epoch, indices, rng.stream_id(pos, 0), len(policy))
    L = max(len(sp) for sp in policy)
    kinds = np.zeros((n, L), np.int64)
    values = np.full((n, L), np.nan)
    for j in range(L):
        s = lambda k, b=16 * (j + 1): rng.stream_id(pos, b + k)  # noqa: E731
        u = rng.uniform(seed, epoch, indices, s(1))
        neg = rng.uniform(seed, epoch, indices, s(4)) > 0.5
        name_i = np.zeros(n, np.int64)
        m = np.zeros(n)
        names = sorted({sp[j][0] for sp in policy if j < len(sp)})
        on = np.zeros(n, dtype=bool)
        for i, sp in enumerate(policy):
            if j < len(sp):
                sel = sub == i
                name_i[sel] = names.index(sp[j][0])
                m[sel] = sp[j][2]
                on[sel] = u[sel] < sp[j][1]
        lv = magnitudes(m, mstd, None, seed, epoch, indices, s(2)) / 10.0
        k, v = apply_ops(names, name_i, lv, neg, out_hw)
        kinds[on, j], values[on, j] = k[on], v[on]
    return kinds, values


@dataclass(frozen=True)
class TimmAutoAugment(Op):
    """timm's AutoAugment: ``policy`` "original" (the paper's ImageNet policy), "originalr",
    "v0" (TPU EfficientNet's) or "v0r"; ``mstd`` magnitude noise; fill (124, 116, 104).

    >>> TimmAutoAugment("original")
    """

    policy_name: str = "v0"
    mstd: float = 0.0
    fill: tuple[int, int, int] = TIMM_FILL
    kind: ClassVar[str] = "policy"

    def __post_init__(self):
        if self.policy_name not in AA_POLICIES:
            raise bad_param("TimmAutoAugment.policy_name", f"one of {tuple(AA_POLICIES)}",
                            self.policy_name)  # fmt: skip
        number("TimmAutoAugment.mstd", self.mstd, 0.0, 100.0)
        check_fill("TimmAutoAugment.fill", self.fill)

    def draw(self, indices, seed: int, epoch: int, pos: int, out_hw):
        return run_subpolicies(AA_POLICIES[self.policy_name], indices, seed, epoch, pos, out_hw,
                               self.mstd)  # fmt: skip

    def policy(self, indices, seed: int, epoch: int, pos: int, out_hw) -> dict:
        kinds, values = self.draw(indices, seed, epoch, pos, out_hw)
        return V.assemble(kinds, values, out_hw, self.fill)
