"""Drawing a batch's parameters: every op's draws composed into one record per sample.

A record (one row of the structured array ``sample_params`` returns) holds everything the
fused kernel needs, so ``Compose.apply(image, record)`` replays a sample exactly:

- ``A2`` (K, 3, 3): frame before the lens -> source edge coordinates (crop, scale, flips and
  the geometric ops listed before the lens), one per crop;
- ``k``, ``A1`` (3, 3): lens coefficient, and output frame -> lens frame (ops after the lens);
- ``cmat`` (3, 3), ``coff`` (3,), ``cmean`` (3, 3): ``rgb' = cmat rgb + coff + cmean mu``,
  mu = the source crop's mean RGB; ``color``: whether any of it differs from the identity.
- ``index``, ``src_hw``: the dataset index and the (height, width) the record was drawn for.
- the program run on the output tile after resampling (``augpipe.ops.pixel``): ``prog`` (S,)
  step codes and ``parg`` (S, 4) their arguments; ``geo`` (3, 3), a policy's geometry (output
  frame -> crop frame, applied as ``A2 geo A1``) and ``clip``, whether pixels it maps outside the
  crop canvas become ``pfill``; the erase box ``ebox`` (y0, x0, h, w) with ``emode`` (0 none,
  1 constant, 2 per-channel colour, 3 per-pixel noise), ``ecol``, ``estd``, ``ekey``; AugMix's
  ``nchain`` chains (``chain``/``carg`` steps, ``cgeo`` maps, ``cmix`` weights, ``cm`` blend).

Frames are in pixel units centred on the output: output pixel (y, x) is at
(x + 0.5 - W/2, y + 0.5 - H/2).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from augpipe.errors import ConfigError


@lru_cache(maxsize=64)  # built per batch otherwise (~20 us); a dtype is immutable
def param_dtype(n_crops: int, n_steps: int = 1, n_chains: int = 1, chain_steps: int = 1):
    S, C, Sc = max(n_steps, 1), max(n_chains, 1), max(chain_steps, 1)
    return np.dtype(
        [
            ("index", "<i8"),
            ("src_hw", "<i4", (2,)),
            ("A2", "<f8", (n_crops, 3, 3)),
            ("k", "<f8"),
            ("A1", "<f8", (3, 3)),
            ("cmat", "<f4", (3, 3)),
            ("coff", "<f4", (3,)),
            ("cmean", "<f4", (3, 3)),
            ("color", "?"),
            ("prog", "i1", (S,)),
            ("parg", "<f4", (S, 4)),
            ("geo", "<f8", (3, 3)),
            ("clip", "?"),
            ("pfill", "<f4", (3,)),
            ("ebox", "<i4", (4,)),
            ("emode", "i1"),
            ("ecol", "<f4", (3,)),
            ("estd", "<f4", (3,)),
            ("ekey", "<u8"),
            ("nchain", "i1"),
            ("chain", "i1", (C, Sc)),
            ("carg", "<f4", (C, Sc, 4)),
            ("cgeo", "<f8", (C, 3, 3)),
            ("cmix", "<f4", (C,)),
            ("cm", "<f4"),
        ]
    )


def crop_matrices(rects: np.ndarray, flips: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """(N, K, 3, 3): centred output frame -> source edge coordinates of each crop rectangle."""
    x0, y0, w, h = (rects[..., i] for i in range(4))
    m = np.zeros(rects.shape[:-1] + (3, 3))
    m[..., 0, 0] = np.where(flips, -1.0, 1.0) * w / out_hw[1]
    m[..., 0, 2] = x0 + w / 2
    m[..., 1, 1] = h / out_hw[0]
    m[..., 1, 2] = y0 + h / 2
    m[..., 2, 2] = 1.0
    return m


def sample_params(ops, sizes, indices, seed: int, epoch: int) -> np.ndarray:
    """One record per index; ``ops`` are validated (see ``Compose``), ``sizes`` (N, 2) = (H, W)."""
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    n = len(indices)
    size_pos = next((p for p, op in enumerate(ops) if op.kind == "size"), None)
    if size_pos is None:  # no sizing op: the frame is the whole image
        out_hw = None
        rects = np.zeros((n, 1, 4))
        rects[:, 0, 2] = sizes[:, 1]
        rects[:, 0, 3] = sizes[:, 0]
        flips = np.zeros((n, 1), dtype=bool)
        if n and np.any(sizes != sizes[0]):
            raise ConfigError(
                "pipeline: images of different sizes need a sizing op (RandomResizedCrop, "
                "ScaleJitter, CenterCrop, TenCrop or MultiScaleTenCrop) first in the pipeline"
            )
        out_hw = (int(sizes[0, 0]), int(sizes[0, 1])) if n else (1, 1)
    else:
        op = ops[size_pos]
        out_hw = op.out_hw
        rects, flips = op.frames(sizes, indices, seed, epoch, size_pos)
    pre = crop_matrices(rects, flips, out_hw)
    post = np.tile(np.eye(3), (n, 1, 1))
    k = np.zeros(n)
    lens_seen = False
    M = np.tile(np.eye(3), (n, 1, 1))
    t = np.zeros((n, 3))
    N = np.zeros((n, 3, 3))
    prog = _Program(n, out_hw)
    for pos, op in enumerate(ops):
        if op.kind == "geometry":
            g = op.matrices(indices, seed, epoch, pos, out_hw)
            if lens_seen:
                post = post @ g
            else:
                pre = pre @ g[:, None]
        elif op.kind == "lens":
            k = op.coefficients(indices, seed, epoch, pos)
            lens_seen = True
        elif op.kind == "color":
            M2, t2, N2 = op.color(indices, seed, epoch, pos)
            # y' = M2 y + t2 + N2 mu_y with y = M x + t + N mu, mu_y = (M + N) mu + t
            t = (M2 @ t[..., None])[..., 0] + t2 + (N2 @ t[..., None])[..., 0]
            N = M2 @ N + N2 @ (M + N)
            M = M2 @ M
        prog.add(op, indices, seed, epoch, pos)
    rec = np.zeros(n, dtype=prog.dtype(pre.shape[1]))
    rec["index"] = indices
    rec["src_hw"] = sizes
    rec["A2"] = pre
    rec["k"] = k
    rec["A1"] = post
    rec["cmat"] = M
    rec["coff"] = t
    rec["cmean"] = N
    eye = np.eye(3, dtype=np.float32)
    rec["color"] = (
        np.any(rec["cmat"] != eye, axis=(1, 2))
        | np.any(rec["coff"] != 0, axis=1)
        | np.any(rec["cmean"] != 0, axis=(1, 2))
    )
    prog.fill(rec)
    return rec


class _Program:
    """Collects the post-resample parts of the records (steps, policy geometry, erase box,
    AugMix chains) from the ops that have them, in pipeline order."""

    def __init__(self, n: int, out_hw):
        self.n, self.out_hw = n, out_hw
        self.codes: list[np.ndarray] = []
        self.args: list[np.ndarray] = []
        self.geo = np.tile(np.eye(3), (n, 1, 1))
        self.clip = np.zeros(n, dtype=bool)
        self.pfill = np.zeros(3, np.float32)
        self.erase = None
        self.mix = None

    def add(self, op, indices, seed: int, epoch: int, pos: int) -> None:
        if hasattr(op, "steps"):  # LUT, enhance and filter ops (and ColorJitter's hue)
            c, a = op.steps(indices, seed, epoch, pos)
            self.codes.append(c)
            self.args.append(a)
        if hasattr(op, "policy"):  # RandAugment & co: geometry, steps, fill (AugMix: chains)
            d = op.policy(indices, seed, epoch, pos, self.out_hw)
            self.geo = self.geo @ d["geo"]
            self.clip |= d["clip"]
            self.pfill = np.asarray(d["fill"], np.float32)
            self.codes.append(d["codes"])
            self.args.append(d["args"])
            if "chains" in d:
                self.mix = d
        if hasattr(op, "erase_box"):
            self.erase = op.erase_box(indices, seed, epoch, pos, self.out_hw)

    def dtype(self, n_crops: int) -> np.dtype:
        S = sum(c.shape[1] for c in self.codes)
        C, Sc = self.mix["chains"].shape[1:3] if self.mix is not None else (1, 1)
        return param_dtype(n_crops, S, C, Sc)

    def fill(self, rec: np.ndarray) -> None:
        S = sum(c.shape[1] for c in self.codes)
        if S:
            rec["prog"] = np.concatenate(self.codes, axis=1)
            rec["parg"] = np.concatenate(self.args, axis=1)
        rec["geo"] = self.geo
        rec["clip"] = self.clip
        rec["pfill"] = self.pfill
        if self.erase is not None:
            for k, v in self.erase.items():
                rec[k] = v
        if self.mix is not None:
            d = self.mix
            rec["nchain"] = d["chains"].shape[1]
            rec["chain"], rec["carg"] = d["chains"], d["chain_args"]
            rec["cgeo"], rec["cmix"], rec["cm"] = d["cgeo"], d["cmix"], d["cm"]
        else:
            rec["cgeo"] = np.eye(3)


def min_scales(recs, out_hw=None) -> np.ndarray:
    """Per record, the smallest source-pixels-per-output-pixel step over its crops: how much the
    source may be shrunk (DCT-scaled decode, box reduction) before the output loses detail.

    A perspective map's step varies over the frame: it is taken as the smallest over a 5 x 5
    grid of the output frame ``out_hw`` ((H, W), or (N, 2) per record); without ``out_hw``
    such records get 1 (decode at full size)."""
    recs = np.asarray(recs).reshape(-1)
    A1, A2 = recs["A1"][:, None], recs["A2"]
    L = A2[:, :, :2, :2] @ A1[..., :2, :2]
    s = np.minimum(np.hypot(L[..., 0, 0], L[..., 1, 0]), np.hypot(L[..., 0, 1], L[..., 1, 1]))
    proj = np.any(A1[..., 2, :] != (0, 0, 1), axis=-1) | np.any(A2[..., 2, :] != (0, 0, 1), axis=-1)
    if proj.any():
        s = np.where(proj, 1.0 if out_hw is None else _grid_steps(A2 @ A1, out_hw), s)
    k = recs["k"]
    lens = np.where(k < 0, 1.0 + 3.0 * k, 1.0)  # the radial step r (1 + k r^2) shrinks to 1 + 3k
    return s.min(axis=1) * lens


def _grid_steps(M: np.ndarray, out_hw) -> np.ndarray:
    """(N, K, 3, 3) maps -> (N, K) the smallest column norm of their Jacobian over a 5 x 5 grid
    of the centred output frame (points behind the horizon skipped; 1 where all are)."""
    hw = np.broadcast_to(np.asarray(out_hw, np.float64).reshape(-1, 2), (M.shape[0], 2))
    tx, ty = np.meshgrid(np.linspace(-0.5, 0.5, 5), np.linspace(-0.5, 0.5, 5))
    X = hw[:, None, 1:2] * tx.ravel()  # (N, 1, 25)
    Y = hw[:, None, 0:1] * ty.ravel()
    m = M[..., None, :, :]
    n0 = m[..., 0, 0] * X + m[..., 0, 1] * Y + m[..., 0, 2]
    n1 = m[..., 1, 0] * X + m[..., 1, 1] * Y + m[..., 1, 2]
    w = m[..., 2, 0] * X + m[..., 2, 1] * Y + m[..., 2, 2]
    ok = w > 1e-9
    w = np.where(ok, w, 1.0)
    x, y = n0 / w, n1 / w
    # d(n / w) / dX = (dn/dX - (n / w) dw/dX) / w
    jxx = (m[..., 0, 0] - x * m[..., 2, 0]) / w
    jyx = (m[..., 1, 0] - y * m[..., 2, 0]) / w
    jxy = (m[..., 0, 1] - x * m[..., 2, 1]) / w
    jyy = (m[..., 1, 1] - y * m[..., 2, 1]) / w
    c = np.minimum(np.hypot(jxx, jyx), np.hypot(jxy, jyy))
    c = np.where(ok, c, np.inf).min(axis=-1)
    return np.where(np.isfinite(c), c, 1.0)
