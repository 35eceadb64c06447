"""The built-in trainer behind ``augpipe train`` (see docs/train.md).

``TrainConfig`` and ``train`` resolve lazily so ``augpipe.train.config`` (used to build the
command line) imports without torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "augpipe.train.config",
    "train": "augpipe.train.trainer",
    "TrainingInterrupted": "augpipe.train.preempt",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'augpipe.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
