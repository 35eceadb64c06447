"""User-defined ops by import path: Python code for what augpipe does not have.

- ``UserOp("mypkg.augs:Cutout", args={...})``, per sample: ``fn(image, rng) -> image`` on each
  HWC uint8 output of the fused pass (each crop of a test-time pipeline), in the process that
  builds the batch (a loader worker). ``rng`` is an ``augpipe.rng.Stream`` for (seed, epoch,
  index) and the op's position, so determinism and resume hold for any number of workers.
- ``UserBatchOp("mypkg.augs:mix", stage="host"|"device")``, per batch, in the main process:
  ``fn(images, labels, rng) -> (images, labels)`` on the assembled batch, either the NHWC
  uint8 NumPy batch before the device copy (``"host"``) or what the loader yields after the
  copy, conversion and normalisation (``"device"``). ``rng``: a Stream for (seed, epoch, batch).

The path names a function or a class; a class is instantiated once with ``args`` as keyword
arguments and its instances are called; a function is called with ``args`` as extra keyword
arguments. Both run in Python, outside the fused kernel: they cost what their NumPy code costs,
per sample (or batch), on top of the single fused pass.

>>> Compose([RandomResizedCrop(224), UserOp("mypkg.augs:Cutout", args={"size": 32})])
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.errors import AugpipeError, ConfigError, bad_param
from augpipe.ops.base import Op
from augpipe.spec.registry import import_path

STAGES = ("host", "device")


class UserOpError(AugpipeError, RuntimeError):
    """A user-defined op raised or returned something unusable; names the path and the sample."""


def _resolve(path: str, args: dict, what: str):
    obj = import_path(path, what)
    if isinstance(obj, type):
        try:
            obj = obj(**args)
        except Exception as exc:
            raise ConfigError(
                f"{what} {path!r}: {obj.__name__}(**{args!r}) failed "
                f"({type(exc).__name__}: {exc}); check args"
            ) from None
    elif args:
        obj = functools.partial(obj, **args)
    if not callable(obj):
        raise ConfigError(f"{what} {path!r}: expected a function or a class, got {obj!r}")
    return obj


def _check_common(op, what: str) -> None:
    if not isinstance(op.path, str) or not op.path:
        raise bad_param(f"{what}.path", "an import path 'package.module:name'", op.path)
    if not isinstance(op.args, dict):
        raise bad_param(f"{what}.args", "a dict of keyword arguments", op.args)
    try:  # JSON values only: the op must travel to workers as data
        args = json.loads(json.dumps(op.args, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise bad_param(f"{what}.args", "JSON values (numbers, strings, lists, dicts)",
                        op.args, str(exc)) from None  # fmt: skip
    object.__setattr__(op, "args", args)
    object.__setattr__(op, "_fn", _resolve(op.path, args, what))


class _PathOp(Op):
    def __eq__(self, other) -> bool:
        return type(other) is type(self) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self):
        return (self.path, json.dumps(self.args, sort_keys=True), getattr(self, "stage", None))


@dataclass(frozen=True, eq=False)
class UserOp(_PathOp):
    """Per-sample Python op on the fused pass's HWC uint8 output: ``fn(image, rng) -> image``
    (see the module docstring).

    >>> Compose([CenterCrop(224), UserOp("mypkg.augs:Cutout", args={"size": 32})])
    """

    path: str = ""
    args: dict = field(default_factory=dict)
    kind: ClassVar[str] = "sample"

    def __post_init__(self):
        _check_common(self, "UserOp")

    def run(self, image: np.ndarray, seed: int, epoch: int, index: int, pos: int, crop: int = 0):
        """Apply to one output image in place (``image`` is a view into the batch)."""
        r = rng.Stream(seed, epoch, index, rng.stream_id(pos, crop))
        try:
            out = self._fn(image, r)
        except Exception as exc:
            raise UserOpError(
                f"user op {self.path!r} failed on sample {index} (seed {seed}, epoch {epoch}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if out is image:
            return
        if not isinstance(out, np.ndarray) or out.shape != image.shape or out.dtype != np.uint8:
            got = (f"{out.dtype} array of shape {out.shape}" if isinstance(out, np.ndarray)
                   else type(out).__name__)  # fmt: skip
            raise UserOpError(
                f"user op {self.path!r} returned a {got} for sample {index}; return the image "
                f"as an HWC uint8 array of shape {image.shape} (it may be modified in place)"
            )
        image[...] = out

    def __call__(self, image: np.ndarray, index: int = 0, seed: int = 0, epoch: int = 0):
        from augpipe.ops.replay import check_image

        out = check_image(image).copy()
        self.run(out, seed, epoch, index, 0)
        return out


@dataclass(frozen=True, eq=False)
class UserBatchOp(_PathOp):
    """Per-batch Python op in the main process: ``fn(images, labels, rng) -> (images, labels)``
    on the host uint8 batch (``stage="host"``) or on what the loader yields (``"device"``).

    >>> Compose([RandomResizedCrop(224), UserBatchOp("mypkg.augs:mixup", args={"alpha": 0.2},
    ...                                              stage="device")])
    """

    path: str = ""
    args: dict = field(default_factory=dict)
    stage: str = "host"
    kind: ClassVar[str] = "batch"

    def __post_init__(self):
        if self.stage not in STAGES:
            raise bad_param("UserBatchOp.stage", "'host' or 'device'", self.stage)
        _check_common(self, "UserBatchOp")

    def run(self, images, labels, seed: int, epoch: int, key: int, pos: int, indices=None):
        r = rng.Stream(seed, epoch, key, rng.stream_id(pos, 0))
        where = f"batch {key} of epoch {epoch}"
        if indices is not None and len(indices):
            where += f", samples {int(indices[0])}..{int(indices[-1])}"
        try:
            out = self._fn(images, labels, r)
        except Exception as exc:
            raise UserOpError(
                f"user batch op {self.path!r} failed on {where}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(out, tuple) or len(out) != 2:
            raise UserOpError(
                f"user batch op {self.path!r} returned {type(out).__name__} on {where}; "
                "return the pair (images, labels)"
            )
        return out


def apply_batch_ops(ops, stage: str, images, labels, seed: int, epoch: int, key: int,
                    indices=None):  # fmt: skip
    """Run the ``stage`` ops of ``ops`` ((position, UserBatchOp) pairs) on one batch."""
    for pos, op in ops:
        if op.stage == stage:
            images, labels = op.run(images, labels, seed, epoch, key, pos, indices)
    return images, labels
