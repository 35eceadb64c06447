"""Dataset statistics of the stored pixels, on values scaled to [0, 1].

Sampling (deterministic, independent of ``--workers``): from record ``i`` with ``n = H * W``
pixels, every pixel when ``n <= PIXELS_PER_IMAGE``; otherwise ``PIXELS_PER_IMAGE`` pixels drawn
uniformly with replacement at flat positions ``rng.bits(STATS_SEED, 0, k, stream=i) % n`` for
``k = 0 .. PIXELS_PER_IMAGE - 1``. The pixels are the ones about to be stored, before JPEG
encoding (the encoder's small error is not worth a second decode).

Each record contributes (count, sum, sum of outer products) of its sampled uint8 values as
exact integers (int64); the packer adds them up, so the totals are exact and do not depend on the
order of addition: the same for any number of workers, and a ``merge`` of ``pack --part`` parts
gives the totals of a single pack. From the totals, with exact integer numerators and one
rounding each: mean, population std (ddof=0), and the eigen-decomposition of the population
covariance, all on the [0, 1] scale, the
eigenvalues descending, each eigenvector's largest-magnitude component made positive so the
signs are reproducible. ``eigvec[:, k]`` is the k-th eigenvector, RGB order (AlexNet's PCA
lighting uses exactly these).
"""

from __future__ import annotations

import numpy as np

from augpipe import rng

PIXELS_PER_IMAGE = 4096
STATS_SEED = 0x57A75


_COUNTERS = np.arange(PIXELS_PER_IMAGE, dtype=np.uint64)
_COUNTERS.setflags(write=False)


def _positions(index: int, n: int) -> np.ndarray:
    """``rng.bits(STATS_SEED, 0, k, stream=index) % n`` for k = 0 .. PIXELS_PER_IMAGE - 1."""
    z = rng.bits(STATS_SEED, 0, _COUNTERS, stream=index)
    z %= np.uint64(n)
    return z


def sample_pixels(pixels: np.ndarray, index: int) -> np.ndarray:
    """The (n, 3) uint8 pixels of one image that enter the statistics."""
    flat = pixels.reshape(-1, 3)
    n = flat.shape[0]
    if n <= PIXELS_PER_IMAGE:
        return flat
    # np.take gathers the 3-byte rows ~4x faster than fancy indexing; same pixels
    return np.take(flat, _positions(index, n).astype(np.intp), axis=0)


def partial(pixels: np.ndarray, index: int) -> np.ndarray:
    """One record's contribution: int64 [count, sum(3), sum of outer products (9)] of its
    sampled uint8 values (0..255)."""
    # The float64 arithmetic is exact: every product and partial sum is an integer below
    # 4096 * 255**2 < 2**53, so BLAS's order of addition cannot change the result.
    x = sample_pixels(pixels, index).astype(np.float64)
    out = np.empty(13, dtype=np.int64)
    out[0] = x.shape[0]
    out[1:4] = np.einsum("ij->j", x)
    out[4:] = (x.T @ x).ravel()
    return out


def finish(total: np.ndarray) -> dict:
    """Manifest-ready statistics (lists of floats) from the summed integer partials."""
    count, s1 = int(total[0]), [int(v) for v in total[1:4]]
    s2 = [int(v) for v in total[4:]]
    if count <= 0:
        return {
            "mean": [0.0] * 3,
            "std": [0.0] * 3,
            "eigval": [0.0] * 3,
            "eigvec": np.eye(3).tolist(),
            "pixels": 0,
        }
    # Python ints: exact numerators, one correctly rounded division each (n*S2 - s s^T is the
    # covariance times (255 n)^2, symmetric by construction).
    scale = 255 * count
    mean = np.array([v / scale for v in s1])
    cov = np.array(
        [[(count * s2[3 * a + b] - s1[a] * s1[b]) / (scale * scale) for b in range(3)]
         for a in range(3)]
    )  # fmt: skip
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 0.0, None), eigvec[:, order]
    for k in range(3):
        if eigvec[np.argmax(np.abs(eigvec[:, k])), k] < 0:
            eigvec[:, k] = -eigvec[:, k]
    return {
        "mean": mean.tolist(),
        "std": np.sqrt(np.clip(np.diag(cov), 0.0, None)).tolist(),
        "eigval": eigval.tolist(),
        "eigvec": eigvec.tolist(),
        "pixels": int(count),
        "method": f"up to {PIXELS_PER_IMAGE} pixels per image, counter-hash positions, [0,1] scale",
    }
