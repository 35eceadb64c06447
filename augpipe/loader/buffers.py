"""Recycled host memory for the batches the main process builds (copies, reorders, casts).

A batch the Loader returns as its own memory (``copy=True``, NCHW uint8, float outputs on the
CPU) used to be a fresh allocation every batch; at 256 x 224 x 224 x 3 that is 38 MB of new
pages, and faulting them in costs the main process ~19 ms a batch, ten times the copy itself
(one core, AMD EPYC), time taken from the workers on a machine with as many workers as cores.
``BatchBuffers.empty`` hands out memory of a batch that no one references any more instead:

>>> bufs = BatchBuffers()
>>> a = bufs.empty((2, 3), np.uint8)
>>> a_ptr = a.ctypes.data
>>> del a  # the consumer dropped the batch: its memory comes back
>>> bufs.empty((2, 3), np.uint8).ctypes.data == a_ptr
True

A block comes back only when the array handed out for it is gone, and with it everything that
references it: NumPy views (their base chain ends at that array, whose own base is the block,
an object of another type, where NumPy stops collapsing bases), ``torch.from_numpy`` tensors and
their views (the storage holds the array) and ``tensor.numpy()`` arrays (they hold the
tensor). A consumer that keeps its batches simply gets fresh blocks, up to ``keep`` per shape
and dtype, then plain allocations: nothing it holds is ever reused.
"""

from __future__ import annotations

import math
import weakref

import numpy as np


class BatchBuffers:
    """Blocks of host memory reused once the arrays made from them are unreferenced."""

    def __init__(self, keep: int = 4):
        self.keep = keep
        self._free: dict[tuple, list[bytearray]] = {}
        self._made: dict[tuple, int] = {}

    def empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised C-contiguous array (recycled memory when some is free)."""
        dtype = np.dtype(dtype)
        shape = tuple(int(v) for v in shape)
        key = (shape, dtype.str)
        free = self._free.setdefault(key, [])
        if free:
            block = free.pop()
        elif self._made.get(key, 0) < self.keep:
            self._made[key] = self._made.get(key, 0) + 1
            block = bytearray(max(1, math.prod(shape) * dtype.itemsize))
        else:
            return np.empty(shape, dtype)
        flat = np.frombuffer(block, dtype, math.prod(shape))  # base: the block (a bytearray)
        weakref.finalize(flat, free.append, block)  # every view keeps ``flat`` alive
        return flat.reshape(shape)
