"""The boxes of the samples being drawn, for sizing ops that choose their crop from them
(``RandomIoUCrop``). ``TargetPipeline`` sets them around its draws; nothing else does."""

from __future__ import annotations

import contextlib
from contextvars import ContextVar

_BOXES: ContextVar[dict | None] = ContextVar("augpipe_boxes", default=None)


@contextlib.contextmanager
def sample_boxes(boxes: dict):
    """``boxes``: dataset index -> (M, 4) xyxy boxes in the stored image's pixels."""
    token = _BOXES.set(boxes)
    try:
        yield
    finally:
        _BOXES.reset(token)


def boxes_for(index: int):
    """The boxes of dataset record ``index``, or None outside ``sample_boxes``."""
    current = _BOXES.get()
    return None if current is None else current.get(int(index))
