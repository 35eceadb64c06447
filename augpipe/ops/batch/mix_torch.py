"""Mixup/CutMix on an NCHW torch batch, on its device, vectorised (no per-sample loop); an
integer batch blends by the host kernel's rule (``augpipe.ops.batch.blend``)."""

from __future__ import annotations

import numpy as np
import torch

from augpipe.ops.batch.blend import ONE, weight


def mix_torch(x: torch.Tensor, lam: np.ndarray, cut: np.ndarray, boxes: np.ndarray):
    dev = x.device
    partner = x.flip(0)
    lam_t = torch.from_numpy(lam).to(dev)
    mixing = torch.from_numpy((lam < 1.0) & ~cut).to(dev)
    w = torch.where(mixing, lam_t, torch.ones_like(lam_t)).view(-1, 1, 1, 1)
    if x.is_floating_point():
        out = x * w.to(x.dtype) + partner * (1.0 - w).to(x.dtype)
    else:  # the host kernel's integer rule (augpipe.ops.batch.blend), bit for bit
        q = torch.from_numpy(np.where((lam < 1.0) & ~cut, weight(lam), ONE)).to(dev)
        q = q.view(-1, 1, 1, 1)
        out = ((x.long() * q + partner.long() * (ONE - q) + ONE // 2) >> 8).to(x.dtype)
    if cut.any():
        H, W = x.shape[-2:]
        b = torch.from_numpy(boxes).to(dev)
        yy = torch.arange(H, device=dev).view(1, H, 1)
        xx = torch.arange(W, device=dev).view(1, 1, W)
        b = b[:, :, None, None]
        m = (yy >= b[:, 0]) & (yy < b[:, 1]) & (xx >= b[:, 2]) & (xx < b[:, 3])
        m &= torch.from_numpy(cut).to(dev).view(-1, 1, 1)
        out = torch.where(m[:, None], partner, out)
    return out
