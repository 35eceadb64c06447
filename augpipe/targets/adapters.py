"""Batch adapters: the loader's flat target layout to what common detection code expects.

Each takes ``(images, targets)`` as the Loader yields them (NumPy or torch) and returns the same
kind of arrays.

>>> images, targets = next(iter(loader))
>>> imgs, dicts = to_torchvision((images, targets))   # list of {"boxes", "labels", ...}
>>> batch = to_ultralytics((images, targets))         # {"img", "batch_idx", "cls", "bboxes"}
>>> fixed = to_padded((images, targets), max_boxes=100)
"""

from __future__ import annotations

import numpy as np

from augpipe.errors import ConfigError


def _is_torch(a) -> bool:
    return type(a).__module__.startswith("torch")


def _hw(images, targets) -> tuple[int, int]:
    shape = tuple(images.shape)
    # NHWC (NumPy / channels-last views) or NCHW (torch output)
    if shape[-1] == 3 and not (_is_torch(images) and shape[1] == 3):
        return shape[1], shape[2]
    return shape[2], shape[3]


def instance_masks(targets) -> list:
    """Per image, its instances' masks (n_b, H, W) bool from ``instance_map``."""
    imap = targets["instance_map"]
    offsets = [int(v) for v in targets["offsets"]]
    out = []
    for b in range(len(offsets) - 1):
        n = offsets[b + 1] - offsets[b]
        ids = (np.arange(1, n + 1) if not _is_torch(imap) else
               __import__("torch").arange(1, n + 1, device=imap.device))  # fmt: skip
        out.append(imap[b][None] == ids[:, None, None])
    return out


def to_torchvision(batch):
    """(images, [{"boxes" (n, 4) xyxy float, "labels" (n,) int64, "iscrowd", "keypoints"
    (n, K, 3), "masks" (n, H, W) uint8}, ...]) as torchvision's detection models take them."""
    images, t = batch
    offsets = [int(v) for v in t["offsets"]]
    masks = instance_masks(t) if "instance_map" in t else None
    dicts = []
    for b in range(len(offsets) - 1):
        sl = slice(offsets[b], offsets[b + 1])
        d = {"boxes": t["boxes"][sl], "labels": t["labels"][sl], "iscrowd": t["iscrowd"][sl]}
        if "keypoints" in t:
            d["keypoints"] = t["keypoints"][sl]
        if masks is not None:
            d["masks"] = masks[b].to(dtype=__import__("torch").uint8) if _is_torch(
                masks[b]) else masks[b].astype(np.uint8)  # fmt: skip
        if "masks" in t:
            d["semantic"] = t["masks"][b]
        dicts.append(d)
    return images, dicts


def to_ultralytics(batch) -> dict:
    """ultralytics' training batch: ``img``, ``batch_idx`` (M,), ``cls`` (M, 1), ``bboxes``
    (M, 4) normalised centre-x, centre-y, w, h; ``keypoints`` normalised x, y (v kept) when
    present; ``masks`` (B, H, W): the instance map (ultralytics' overlap_mask layout)."""
    images, t = batch
    H, W = _hw(images, t)
    b = t["boxes"]
    xywh = b * 1.0  # a new array / tensor of the same kind
    xywh[:, 0] = (b[:, 0] + b[:, 2]) / (2 * W)
    xywh[:, 1] = (b[:, 1] + b[:, 3]) / (2 * H)
    xywh[:, 2] = (b[:, 2] - b[:, 0]) / W
    xywh[:, 3] = (b[:, 3] - b[:, 1]) / H
    out = {"img": images, "batch_idx": t["batch_idx"], "cls": t["labels"][:, None] * 1.0,
           "bboxes": xywh}  # fmt: skip
    if "keypoints" in t:
        kp = t["keypoints"] * 1.0
        kp[..., 0] = kp[..., 0] / W
        kp[..., 1] = kp[..., 1] / H
        out["keypoints"] = kp
    if "instance_map" in t:
        out["masks"] = t["instance_map"]
    return out


def to_padded(batch, max_boxes: int, pad_label: int = -1, truncate: bool = False) -> dict:
    """Fixed shapes for compiled models: ``boxes`` (B, max_boxes, 4), ``labels`` (B, max_boxes)
    (``pad_label`` where empty), ``valid`` (B, max_boxes) bool, ``count`` (B,), and
    ``keypoints`` (B, max_boxes, K, 3). An image with more than ``max_boxes`` boxes is a
    ConfigError unless ``truncate=True`` (then its first ``max_boxes`` are kept)."""
    images, t = batch
    if isinstance(max_boxes, bool) or not isinstance(max_boxes, int) or max_boxes < 1:
        raise ConfigError(f"max_boxes: expected a positive integer, got {max_boxes!r}")
    offsets = np.asarray([int(v) for v in t["offsets"]])
    counts = np.diff(offsets)
    if counts.size and counts.max() > max_boxes and not truncate:
        raise ConfigError(
            f"max_boxes: an image in this batch has {int(counts.max())} boxes, more than "
            f"max_boxes={max_boxes}; raise it or pass truncate=True"
        )
    B = len(counts)
    n = np.minimum(counts, max_boxes)
    rows = np.concatenate([np.arange(offsets[b], offsets[b] + n[b]) for b in range(B)]) if B else []
    rows = np.asarray(rows, np.int64)
    bi = np.repeat(np.arange(B), n)
    slot = np.concatenate([np.arange(k) for k in n]) if B else np.zeros(0, np.int64)
    boxes = np.zeros((B, max_boxes, 4), np.float32)
    labels = np.full((B, max_boxes), pad_label, np.int64)
    valid = np.zeros((B, max_boxes), bool)
    tb = _np(t["boxes"])
    boxes[bi, slot] = tb[rows]
    labels[bi, slot] = _np(t["labels"])[rows]
    valid[bi, slot] = True
    out = {"boxes": boxes, "labels": labels, "valid": valid, "count": n.astype(np.int64)}
    if "keypoints" in t:
        kp = _np(t["keypoints"])
        pk = np.zeros((B, max_boxes) + kp.shape[1:], np.float32)
        pk[bi, slot] = kp[rows]
        out["keypoints"] = pk
    if _is_torch(t["boxes"]):
        import torch

        out = {k: torch.from_numpy(v) for k, v in out.items()}
    out["images"] = images
    return out


def _np(a) -> np.ndarray:
    return a.cpu().numpy() if _is_torch(a) else np.asarray(a)
