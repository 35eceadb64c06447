"""timm's training-recipe options for ``augpipe train``: ``--aa``, ``--reprob``/``--remode``,
``--mixup``/``--cutmix`` (+ minmax, prob, switch prob, mode), ``--smoothing``, ``--bce-loss``,
``--aug-repeats``; and the evaluation crop for small images.

Everything is built from the ``TrainConfig``: extra pipeline ops after the crop and flip (the
policy, RandomErasing, Mixup as the batch op), the loss for hard or soft targets, and the
training dataset wrapped for repeated augmentation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

REMODES = ("const", "rand", "pixel")
MIXUP_MODES = ("batch", "pair", "elem")


def mixing(cfg) -> bool:
    return cfg.mixup > 0 or cfg.cutmix > 0 or cfg.cutmix_minmax is not None


def recipe_ops(cfg, num_classes: int) -> list:
    """The ops ``--aa``, ``--reprob`` and ``--mixup``/``--cutmix`` add to the train pipeline."""
    from augpipe.ops.batch.mixup import Mixup
    from augpipe.ops.pixel.erasing import RandomErasing
    from augpipe.ops.policies.strings import policy_from_string

    ops = []
    if cfg.aa:
        ops.append(policy_from_string(cfg.aa))
    if cfg.reprob > 0:
        ops.append(RandomErasing(cfg.reprob, mode=cfg.remode))
    if mixing(cfg):
        ops.append(
            Mixup(
                mixup_alpha=cfg.mixup,
                cutmix_alpha=cfg.cutmix,
                cutmix_minmax=cfg.cutmix_minmax,
                prob=cfg.mixup_prob,
                switch_prob=cfg.mixup_switch_prob,
                mode=cfg.mixup_mode,
                label_smoothing=cfg.label_smoothing,
                num_classes=num_classes,
                # on a GPU after the copy; on the CPU in the loader workers (uint8, in place)
                stage="device" if getattr(cfg, "device", "cpu") == "cuda" else "host",
            )
        )
    return ops


class SoftTargetCrossEntropy(nn.Module):
    """-sum(t log softmax(x)) averaged over the batch (timm's, for Mixup/CutMix targets)."""

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sum(-target * torch.log_softmax(x.float(), dim=-1), dim=-1).mean()


class BinaryCrossEntropy(nn.Module):
    """BCE with logits on (smoothed) one-hot or soft targets (timm's ``--bce-loss``)."""

    def __init__(self, smoothing: float = 0.0):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim == 1:
            C = x.shape[-1]
            off = self.smoothing / C
            t = torch.full_like(x, off, dtype=torch.float32)
            target = t.scatter_(1, target.long().view(-1, 1), 1.0 - self.smoothing + off)
        return nn.functional.binary_cross_entropy_with_logits(x.float(), target.float())


def criterion(cfg) -> nn.Module:
    """The training loss for the config's targets (smoothing is in the Mixup targets)."""
    if cfg.bce_loss:
        return BinaryCrossEntropy(0.0 if mixing(cfg) else cfg.label_smoothing)
    if mixing(cfg):
        return SoftTargetCrossEntropy()
    return nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)


def repeated(dataset, cfg):
    """The training dataset, repeated ``--aug-repeats`` times (timm's RepeatAugSampler)."""
    if cfg.aug_repeats and cfg.aug_repeats > 1:
        from augpipe.loader.repeat import RepeatDataset

        return RepeatDataset(dataset, cfg.aug_repeats)
    return dataset


def stored_short_side(dataset) -> int | None:
    """The median short side of the stored images (None when the dataset has no sizes)."""
    sizes = np.asarray(getattr(dataset, "sizes", []))
    if sizes.ndim != 2 or not len(sizes):
        return None
    return int(np.median(sizes.min(axis=1)))
