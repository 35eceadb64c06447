"""Mixup/CutMix on an NCHW torch batch, on its device, vectorised (no per-sample loop)."""

from __future__ import annotations

import numpy as np
import torch


def mix_torch(x: torch.Tensor, lam: np.ndarray, cut: np.ndarray, boxes: np.ndarray):
    dev = x.device
    partner = x.flip(0)
    lam_t = torch.from_numpy(lam).to(dev)
    mixing = torch.from_numpy((lam < 1.0) & ~cut).to(dev)
    w = torch.where(mixing, lam_t, torch.ones_like(lam_t)).view(-1, 1, 1, 1)
    if x.is_floating_point():
        out = x * w.to(x.dtype) + partner * (1.0 - w).to(x.dtype)
    else:
        out = (x.float() * w + partner.float() * (1.0 - w)).round_().to(x.dtype)
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
