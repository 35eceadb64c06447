"""Running validated ops on one image: the shared core of ``Op.__call__`` and ``Compose``.

Kept apart from ``augpipe.transforms`` so that an op's convenience ``__call__`` does not need
the pipeline module (which imports every op): this module imports no op at all.
"""

from __future__ import annotations

import numpy as np

from augpipe.errors import ConfigError, ConfigTypeError, bad_param
from augpipe.ops.fused import render
from augpipe.ops.params import sample_params


def check_image(image) -> np.ndarray:
    """An HWC uint8 RGB array, C-contiguous; project errors for anything else."""
    if not isinstance(image, np.ndarray):
        raise ConfigTypeError(
            f"image: expected an HWC uint8 NumPy array, got {type(image).__name__}"
        )
    if image.dtype != np.uint8:
        raise ConfigTypeError(
            f"image: expected dtype uint8, got {image.dtype}; convert with "
            "np.clip(x, 0, 255).astype(np.uint8) (pixels in 0..255)"
        )
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise bad_param(
            "image",
            "shape (H, W, 3), RGB",
            image.shape,
            "grey images: np.repeat(img[..., None], 3, axis=2)",
        )
    return np.ascontiguousarray(image)


def check_ready(ops) -> None:
    """Ops that need dataset statistics (PCALighting without eigval) cannot run unbound."""
    for op in ops:
        if getattr(op, "needs_stats", False):
            raise ConfigError(
                "PCALighting: eigval/eigvec are not set; pass eigval= and eigvec=, or bind "
                "the pipeline to a packed dataset with pipe.bind(dataset)"
            )


def size_op(ops):
    return next((op for op in ops if op.kind == "size"), None)


def render_record(ops, image: np.ndarray, rec, fill: int) -> np.ndarray:
    """The record's crops of ``image`` as (K, H, W, 3) uint8 (``image`` already checked)."""
    if tuple(rec["src_hw"]) != image.shape[:2]:
        raise bad_param(
            "params",
            f"a record drawn for an image of size {image.shape[:2]}",
            tuple(rec["src_hw"]),
            "draw it with sample_params([image.shape[:2]], ...)",
        )
    sop = size_op(ops)
    H, W = sop.out_hw if sop is not None else image.shape[:2]
    out = np.empty((rec["A2"].shape[0], H, W, 3), dtype=np.uint8)
    render(image, False, rec, out, fill)
    return out


def run_ops(ops, image, index: int, seed: int, epoch: int, fill: int = 0) -> np.ndarray:
    """Draw the parameters of ``ops`` for (seed, epoch, index) and render them on ``image``."""
    image = check_image(image)
    check_ready(ops)
    rec = sample_params(ops, [image.shape[:2]], [index], int(seed), int(epoch))[0]
    out = render_record(ops, image, rec, fill)
    return out if out.shape[0] > 1 else out[0]
