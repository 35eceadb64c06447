"""Turning a uint8 NHWC batch into torch tensors on the requested device.

CPU: the batch is wrapped without a copy (``torch.from_numpy``) and converted there.
CUDA: the batch is copied once into one of two reused pinned staging buffers (after which its
shared-memory slot is free again), copied to the GPU with ``non_blocking=True`` on a side
stream, and converted there (uint8 -> float32/float16/bfloat16, normalised, NCHW or
channels_last), so the copy and the conversion overlap with the model's work on the current
stream.  The current stream waits on the side stream before it can see the tensors, and
``record_stream`` tells the caching allocator that the current stream uses them.

``TorchConverter(..., staged=True)`` runs that staging path on the CPU too (no pinning, no
streams), so CI exercises the same code.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from augpipe.errors import ConfigError
from augpipe.loader.buffers import BatchBuffers

_N_STAGING = 2  # double buffering: fill one while the other's copy is in flight


def to_nchw(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W, C) -> (..., C, H, W) as a view: in memory it stays channels-last."""
    nd = x.dim()
    return x.permute(*range(nd - 3), nd - 1, nd - 3, nd - 2)


# torch dtypes the recycled host buffers (augpipe.loader.buffers) can hold
_NUMPY_DTYPES = {torch.uint8: np.uint8, torch.float32: np.float32, torch.float16: np.float16}


def _empty_like(y: torch.Tensor, dtype: torch.dtype, bufs: BatchBuffers | None) -> torch.Tensor:
    """An uninitialised tensor of ``y``'s shape and memory layout (NCHW, or NCHW over NHWC
    memory), in recycled host memory when ``bufs`` is given and can hold it."""
    if bufs is not None and dtype in _NUMPY_DTYPES and y.dim() == 4 and y.device.type == "cpu":
        n, c, h, w = y.shape
        if y.is_contiguous():
            return torch.from_numpy(bufs.empty((n, c, h, w), _NUMPY_DTYPES[dtype]))
        if y.is_contiguous(memory_format=torch.channels_last):
            return to_nchw(torch.from_numpy(bufs.empty((n, h, w, c), _NUMPY_DTYPES[dtype])))
    return torch.empty_like(y, dtype=dtype)  # keeps the strides of a dense layout


def _splittable(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.uint8 and x.dim() == 4
            and 2 <= x.shape[-1] <= 4 and x.is_contiguous())  # fmt: skip


def planar(x: torch.Tensor, bufs: BatchBuffers | None = None) -> torch.Tensor:
    """A new contiguous (N, C, H, W) uint8 tensor from a contiguous (N, H, W, C) uint8 CPU one
    (2 to 4 channels): OpenCV's vectorised channel split, image by image, straight into the
    planes. The main process pays this for every batch of a CPU Loader without
    ``channels_last``: 2 ms for 256 x 224 x 224 x 3 into recycled memory, where torch's strided
    copy into new memory took 33 ms (one core, AMD EPYC)."""
    import cv2

    n, h, w, c = x.shape
    if bufs is None:
        out = torch.empty((n, c, h, w), dtype=torch.uint8)
    else:
        out = torch.from_numpy(bufs.empty((n, c, h, w), np.uint8))
    src, dst = x.numpy(), out.numpy()
    for i in range(len(src)):
        cv2.split(src[i], list(dst[i]))  # writes into the given planes (same shape and type)
    return out


def convert(
    x: torch.Tensor,
    dtype: torch.dtype,
    mean: torch.Tensor | None,
    inv_std: torch.Tensor | None,
    channels_last: bool,
    bufs: BatchBuffers | None = None,
) -> torch.Tensor:
    """uint8 (..., H, W, C) -> dtype (..., C, H, W); normalised when mean is given.

    Without normalisation, float outputs are scaled to [0, 1].  The arithmetic runs in
    float32 and is cast at the end so float16/bfloat16 outputs lose nothing extra. ``bufs``:
    where the new tensors' host memory comes from (CPU outputs).
    """
    y = to_nchw(x)
    if not channels_last:  # reorder while the pixels are still 1 byte each
        y = planar(x, bufs) if _splittable(x) else y.contiguous()
    if dtype != torch.uint8:
        f = _empty_like(y, torch.float32, bufs)  # the strides of y, channels-last or not
        y = f.copy_(y)
        if mean is not None:
            y.sub_(mean).mul_(inv_std)
        else:
            y.mul_(1.0 / 255.0)
        if dtype != torch.float32:
            y = _empty_like(f, dtype, bufs).copy_(f)
    return y


class TorchConverter:
    """Callable: (images uint8 NHWC numpy view, labels int64) -> ((images, labels), keeps_slot).

    ``keeps_slot`` is True when the returned images still point into the slot (CPU, uint8,
    channels_last, no copy requested): the loader then holds the slot until the next batch.
    """

    def __init__(
        self,
        device: str | torch.device,
        dtype: torch.dtype,
        mean: np.ndarray | None,
        std: np.ndarray | None,
        channels_last: bool,
        batch_shape: tuple[int, ...],
        copy: bool = False,
        staged: bool | None = None,
    ):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and not torch.cuda.is_available():
            raise ConfigError(
                "device: expected a CUDA device to be available, got device='cuda' but "
                "torch.cuda.is_available() is False; use device='cpu' or install a CUDA build "
                "of torch"
            )
        self.dtype = dtype
        self.channels_last = channels_last
        self.copy = copy
        self.staged = self.cuda if staged is None else (staged or self.cuda)
        self.mean = self.inv_std = None
        if mean is not None:
            shape = (len(mean), 1, 1)
            self.mean = torch.tensor(mean, dtype=torch.float32).reshape(shape).to(self.device)
            inv = 1.0 / torch.tensor(std, dtype=torch.float32)
            self.inv_std = inv.reshape(shape).to(self.device)
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        if self.cuda:  # mean/std were copied on the current stream; the side stream reads them
            torch.cuda.current_stream(self.device).synchronize()
        # host memory of the batches built here (recycled once the consumer drops them)
        self._bufs = None if self.staged else BatchBuffers()
        self._staging: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._events: list = [None] * _N_STAGING
        self._turn = 0
        if self.staged:
            for _ in range(_N_STAGING):
                img = torch.empty(batch_shape, dtype=torch.uint8, pin_memory=self.cuda)
                lab = torch.empty(batch_shape[0], dtype=torch.int64, pin_memory=self.cuda)
                self._staging.append((img, lab))

    def __call__(self, images: np.ndarray, labels: np.ndarray):
        if self.staged:
            return self._staged(images, labels), False
        x = torch.from_numpy(images)
        y = convert(x, self.dtype, self.mean, self.inv_std, self.channels_last, self._bufs)
        keeps = y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
        if keeps and self.copy:
            y = _empty_like(y, y.dtype, self._bufs).copy_(y)  # the strides: channels_last stays
            keeps = False
        return (y, torch.from_numpy(labels)), keeps

    def _staged(self, images: np.ndarray, labels: np.ndarray):
        i = self._turn
        self._turn = (i + 1) % _N_STAGING
        if self._events[i] is not None:
            # the copy that last read this staging buffer must finish before we overwrite it
            self._events[i].synchronize()
        n = len(images)
        img_st, lab_st = self._staging[i]
        img_st = img_st[:n]
        lab_st = lab_st[:n]
        img_st.numpy()[...] = images  # the one host copy; the slot is free after this
        lab_st.numpy()[...] = labels
        ctx = torch.cuda.stream(self.stream) if self.cuda else contextlib.nullcontext()
        with ctx:
            # copy=True: on the CPU .to() would otherwise return the staging buffer itself
            x = img_st.to(self.device, non_blocking=True, copy=True)
            lab = lab_st.to(self.device, non_blocking=True, copy=True)
            if self.cuda:
                ev = torch.cuda.Event()
                ev.record(self.stream)
                self._events[i] = ev
            y = convert(x, self.dtype, self.mean, self.inv_std, self.channels_last)
        if self.cuda:
            current = torch.cuda.current_stream(self.device)
            current.wait_stream(self.stream)
            # allocated on the side stream, used on the current one
            y.record_stream(current)
            lab.record_stream(current)
        return y, lab

    def synchronize(self) -> None:
        if self.cuda:
            self.stream.synchronize()
