"""Test-time augmentation: evaluate each image as several crops and average the softmax.

Modes (K = views per image):

- ``none`` (K=1): centre crop of side ``res`` after resizing the short side to res × 256/224;
- ``flip`` (K=2): that centre crop and its mirror image (the mirror is taken on the device);
- ``10crop`` (K=10): 4 corners + centre, and their mirrors (``TenCrop``);
- ``multiscale`` (K=50): ``10crop`` at 5 scales — the ResNet paper's short sides
  {224, 256, 384, 480, 640}, scaled by res / 224 (``MultiScaleTenCrop``).
"""

from __future__ import annotations

import torch

VIEWS = {"none": 1, "flip": 2, "10crop": 10, "multiscale": 50}
RESNET_SCALES = (224, 256, 384, 480, 640)


def eval_short_side(res: int, stored_short: int | None = None) -> int:
    """Short side the image is resized to before a centre crop of ``res`` (256 for 224).

    Images stored at about the training size (short side <= res * 256/224, e.g. 28 px
    Fashion-MNIST at res 28) are not enlarged and cropped: resizing to ``res`` keeps what
    training saw (training crops the whole stored image, not a 256-of-it window)."""
    side = int(round(res * 256 / 224))
    if stored_short is not None and stored_short <= side:
        return res
    return side


def multiscale_sides(res: int) -> tuple[int, ...]:
    return tuple(int(round(s * res / 224)) for s in RESNET_SCALES)


def val_pipeline(mode: str, res: int, stored_short: int | None = None):
    """The evaluation pipeline for a TTA mode, built from ``augpipe.transforms``
    (``stored_short``: the dataset's typical short side, see ``eval_short_side``)."""
    from augpipe.transforms import CenterCrop, Compose, MultiScaleTenCrop, TenCrop

    if mode in ("none", "flip"):
        return Compose([CenterCrop(res, short_side=eval_short_side(res, stored_short))])
    if mode == "10crop":
        return Compose([TenCrop(res, short_side=eval_short_side(res, stored_short))])
    if mode == "multiscale":
        return Compose([MultiScaleTenCrop(res, scales=multiscale_sides(res))])
    raise ValueError(mode)


def expand_views(images: torch.Tensor, mode: str) -> tuple[torch.Tensor, int]:
    """(B, C, H, W) or (B, K, C, H, W) → ((B·K', C, H, W), K') with every view of a sample
    adjacent, so ``view(B, K', -1)`` regroups them."""
    if images.ndim == 5:
        k = images.shape[1]
        images = images.flatten(0, 1)
    else:
        k = 1
    if mode == "flip":
        images = torch.stack([images, images.flip(-1)], dim=1).flatten(0, 1)
        k *= 2
    return images, k


def average_softmax(logits: torch.Tensor, k: int) -> torch.Tensor:
    """(B·K, classes) logits → (B, classes) mean of the K views' probabilities."""
    probs = torch.softmax(logits.float(), dim=-1)
    return probs.view(-1, k, probs.shape[-1]).mean(dim=1)


def predict(model: torch.nn.Module, images: torch.Tensor, mode: str, channels_last: bool = False):
    """Class probabilities (B, classes) of a batch under a TTA mode."""
    x, k = expand_views(images, mode)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return average_softmax(model(x), k)
