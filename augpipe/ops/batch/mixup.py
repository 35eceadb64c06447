"""Mixup and CutMix with timm's semantics (``timm/data/mixup.py``), as a batch op.

Per batch (``mode="batch"``), per pair (``"pair"``: i and B-1-i share one draw and mix with
each other) or per element (``"elem"``): with probability ``prob`` mix, choosing CutMix with
probability ``switch_prob`` when both are on; λ ~ Beta(α, α). Mixup: ``x = λ x + (1-λ) x'``;
CutMix pastes the partner's box (side √(1-λ) of the image, centre uniform, clipped; or sides
uniform in ``cutmix_minmax``) and λ becomes 1 - box area / image area (``correct_lam``). The
partner of sample i is B-1-i. Targets: ``λ onehot(y) + (1-λ) onehot(y')`` with label
smoothing (off = s / classes, on = 1 - s + off), float, shape (B, classes).

Parameters are drawn from (seed, epoch, batch) only, so determinism and resume hold. It runs
where it is cheapest: ``stage="device"`` (default) on what the Loader yields, after the copy
(torch tensors on the GPU, vectorised); ``stage="host"`` on the uint8 NumPy batch, in place,
in the loader worker that built it (``augpipe.loader.stages``; an integer blend with λ on the
grid of 1/256, within 1 of timm's ``FastCollateMixup``: ``augpipe.ops.batch.blend``), with the
soft targets made in the main process. A Mixup λ is always on that grid (every stage), so the
targets hold the λ the pixels got.

>>> Compose([RandomResizedCrop(224), HorizontalFlip(), Mixup(0.8, 1.0, label_smoothing=0.1)])
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from numba import njit

from augpipe import rng
from augpipe.errors import bad_param
from augpipe.ops.base import Op, number, positive_int, probability
from augpipe.ops.batch.blend import mix_inplace
from augpipe.ops.batch.draws import MODES, epoch_key, mix_params

_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class Mixup(Op):
    """timm's Mixup/CutMix (see the module docstring); ``num_classes`` comes from the dataset
    when the pipeline is bound (Loader) unless given.

    >>> Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode="batch")
    """

    mixup_alpha: float = 1.0
    cutmix_alpha: float = 0.0
    cutmix_minmax: tuple[float, float] | None = None
    prob: float = 1.0
    switch_prob: float = 0.5
    mode: str = "batch"
    correct_lam: bool = True
    label_smoothing: float = 0.1
    num_classes: int | None = None
    stage: str = "device"
    kind: ClassVar[str] = "batch"

    def __post_init__(self):
        number("Mixup.mixup_alpha", self.mixup_alpha, 0.0, 100.0)
        number("Mixup.cutmix_alpha", self.cutmix_alpha, 0.0, 100.0)
        if self.cutmix_minmax is not None:
            if not isinstance(self.cutmix_minmax, (tuple, list)) or len(self.cutmix_minmax) != 2:
                raise bad_param("Mixup.cutmix_minmax", "(min, max) fractions", self.cutmix_minmax)
            lo = number("Mixup.cutmix_minmax[0]", self.cutmix_minmax[0], 0.0, 1.0)
            hi = number("Mixup.cutmix_minmax[1]", self.cutmix_minmax[1], 0.0, 1.0)
            if lo >= hi:
                raise bad_param("Mixup.cutmix_minmax", "min < max", self.cutmix_minmax)
        if self.mixup_alpha <= 0 and self.cutmix_alpha <= 0 and self.cutmix_minmax is None:
            alphas = (self.mixup_alpha, self.cutmix_alpha)
            raise bad_param("Mixup", "mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax",
                            alphas, "e.g. Mixup(0.8, 1.0)")  # fmt: skip
        probability("Mixup.prob", self.prob)
        probability("Mixup.switch_prob", self.switch_prob)
        if self.mode not in MODES:
            raise bad_param("Mixup.mode", f"one of {tuple(MODES)}", self.mode)
        number("Mixup.label_smoothing", self.label_smoothing, 0.0, 1.0)
        if self.num_classes is not None:
            positive_int("Mixup.num_classes", self.num_classes)
        if self.stage not in ("host", "device"):
            raise bad_param("Mixup.stage", "'host' or 'device'", self.stage)

    def bind(self, dataset):
        if self.num_classes is not None:
            return self
        return replace(self, num_classes=len(dataset.classes))

    @property
    def _cut_alpha(self) -> float:
        return 1.0 if self.cutmix_minmax is not None else self.cutmix_alpha

    def params(self, seed: int, epoch: int, key: int, batch_size: int, hw, pos: int = 0):
        """(lam (B,) float32: a Mixup λ on the grid of 1/256, a CutMix λ after the area
        correction; cut (B,) bool; boxes (B, 4) y0 y1 x0 x1)."""
        B = int(batch_size)
        n = max({"batch": 1, "pair": B // 2, "elem": B}[self.mode], 1)
        base = ((rng.stream_id(pos, 0) << 24) + int(key) * 64) & _U64  # 64 streams per batch
        mix_a, cut_a = float(self.mixup_alpha), float(self._cut_alpha)
        H, W = int(hw[0]), int(hw[1])
        lo, hi = self.cutmix_minmax or (0.0, 0.0)
        lo_hi = np.array([int(H * lo), int(H * hi), int(W * lo), int(W * hi)], np.int64)
        # every draw in one compiled call (augpipe.ops.batch.draws): uniforms (base + 0,
        # 5..9), Beta(mix_a) on base + 1 and Beta(cut_a) on base + 3
        return mix_params(
            epoch_key(seed, epoch), np.uint64(base), n, B, MODES[self.mode], mix_a, cut_a,
            mix_a > 0 and cut_a > 0, cut_a > 0, float(self.switch_prob), float(self.prob),
            H, W, self.cutmix_minmax is not None, lo_hi, bool(self.correct_lam),
        )  # fmt: skip

    def targets(self, labels: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """Soft targets (B, classes), float32: ``λ y + (1-λ) y'`` of the smoothed one-hot rows
        of each sample and its partner, evaluated in float32 (the four values a row can hold,
        written once each: no (B, classes) temporaries)."""
        labels = np.asarray(labels)
        if labels.dtype != np.int64:
            labels = labels.astype(np.int64)
        labels = labels.reshape(-1)
        C = int(self.num_classes)
        off = np.float32(self.label_smoothing / C)
        on = np.float32(1.0 - self.label_smoothing + self.label_smoothing / C)
        lam = np.ascontiguousarray(lam, np.float32).reshape(-1)
        t, bad = _soft_rows(labels, lam, off, on, C)
        if bad >= 0:
            raise bad_param("labels", f"class indices in [0, {C}) (Mixup.num_classes)",
                            int(labels[bad]))  # fmt: skip
        return t

    def mix_inplace(self, images: np.ndarray, seed: int, epoch: int, key: int, pos: int):
        """The pixel half of ``run`` on a C-contiguous uint8 NHWC batch, in place (what a
        loader worker does for ``stage="host"``); returns λ (B,) float32, from which
        ``targets`` makes the other half (``soft_targets`` draws it again)."""
        lam, cut, boxes = self.params(seed, epoch, key, len(images), images.shape[1:3], pos)
        mix_inplace(images, lam, cut, boxes)
        return lam

    def soft_targets(self, labels, hw, seed: int, epoch: int, key: int, pos: int) -> np.ndarray:
        """The targets half of ``run``: (B, classes) float32 for the batch of ``labels``."""
        self._check_bound()
        lam = self.params(seed, epoch, key, len(labels), tuple(hw), pos)[0]
        return self.targets(np.asarray(labels), lam)

    def _check_bound(self) -> None:
        if self.num_classes is None:
            raise bad_param("Mixup.num_classes", "the class count (bind the pipeline to a "
                            "dataset, or pass num_classes=)", None)  # fmt: skip

    def run(self, images, labels, seed: int, epoch: int, key: int, pos: int, indices=None):
        """Mix a batch: NHWC NumPy or NCHW torch images; returns (images, soft targets)."""
        self._check_bound()
        B = len(labels)
        torch_in = not isinstance(images, np.ndarray)
        hw = tuple(images.shape[-2:]) if torch_in else tuple(images.shape[1:3])
        lam, cut, boxes = self.params(seed, epoch, key, B, hw, pos)
        lab = labels.cpu().numpy() if torch_in else np.asarray(labels)
        t = self.targets(lab, lam)
        if torch_in:
            from augpipe.ops.batch.mix_torch import mix_torch

            return mix_torch(images, lam, cut, boxes), _like(labels, t, images)
        return mix_numpy(images, lam, cut, boxes), t


@njit(nogil=True, cache=True, error_model="numpy", boundscheck=False)
def _soft_rows(labels, lam, off, on, C):
    """``targets``' rows: float32 ``λ`` times the row of the label plus ``1-λ`` times the
    partner's (``off * λ + off * (1-λ)`` elsewhere), each value evaluated as in NumPy; and
    the position of the first label outside [0, C), -1 if none."""
    B = labels.shape[0]
    t = np.empty((B, C), np.float32)
    for i in range(B):
        if labels[i] < 0 or labels[i] >= C:
            return t, i
    for i in range(B):
        lam_i = lam[i]
        w = np.float32(1.0) - lam_i
        y, o = labels[i], labels[B - 1 - i]
        t[i, :] = off * lam_i + off * w  # neither label
        if y == o:
            t[i, y] = on * lam_i + on * w
        else:
            t[i, y] = on * lam_i + off * w
            t[i, o] = off * lam_i + on * w
    return t, -1


def _like(labels, t, images):
    import torch

    return torch.from_numpy(t).to(images.device, non_blocking=True)


def mix_numpy(images: np.ndarray, lam, cut, boxes) -> np.ndarray:
    """NHWC batch, mixed into a new array: CutMix boxes copied from the partner, Mixup
    blended (uint8: the integer rule of ``augpipe.ops.batch.blend``; float: unrounded)."""
    if images.dtype == np.uint8:
        return mix_inplace(np.ascontiguousarray(images).copy(), lam, cut, boxes)
    partner = images[::-1]
    out = images.copy()
    for i in np.flatnonzero((lam < 1.0) & ~cut):
        w = lam[i]
        out[i] = (images[i] * w + partner[i] * (1.0 - w)).astype(images.dtype)
    for i in np.flatnonzero(cut):
        y0, y1, x0, x1 = (int(v) for v in boxes[i])
        out[i, y0:y1, x0:x1] = partner[i, y0:y1, x0:x1]
    return out
