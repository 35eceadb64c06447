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

_N_STAGING = 2  # double buffering: fill one while the other's copy is in flight


def to_nchw(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W, C) -> (..., C, H, W) as a view: in memory it stays channels-last."""
    nd = x.dim()
    return x.permute(*range(nd - 3), nd - 1, nd - 3, nd - 2)


def convert(
    x: torch.Tensor,
    dtype: torch.dtype,
    mean: torch.Tensor | None,
    inv_std: torch.Tensor | None,
    channels_last: bool,
) -> torch.Tensor:
    """uint8 (..., H, W, C) -> dtype (..., C, H, W); normalised when mean is given.

    Without normalisation, float outputs are scaled to [0, 1].  The arithmetic runs in
    float32 and is cast at the end so float16/bfloat16 outputs lose nothing extra.
    """
    y = to_nchw(x)
    if not channels_last:
        y = y.contiguous()  # reorder while the pixels are still 1 byte each
    if dtype != torch.uint8:
        y = y.to(torch.float32)  # keeps the strides, channels-last or not
        if mean is not None:
            y.sub_(mean).mul_(inv_std)
        else:
            y.mul_(1.0 / 255.0)
        if dtype != torch.float32:
            y = y.to(dtype)
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
        y = convert(x, self.dtype, self.mean, self.inv_std, self.channels_last)
        keeps = y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
        if keeps and self.copy:
            y = y.clone()  # clone keeps the strides, so channels_last survives
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
