"""Counter-based randomness: every random number is a pure function of
(seed, epoch, index, stream).

No generator state exists anywhere, so results do not depend on the number of worker
processes, on which worker handled a sample, or on the order samples were processed.
``stream`` separates independent draws for the same sample (one stream per parameter of
each op; see ``stream_id``).

The mixer is SplitMix64's finaliser applied to a combination of the four counters;
it passes BigCrush as a hash of a counter and is cheap enough to vectorise in NumPy.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK53 = np.uint64((1 << 53) - 1)


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def stream_id(op_position: int, slot: int) -> int:
    """The stream for parameter ``slot`` of the op at ``op_position`` in a pipeline."""
    return (int(op_position) + 1) * 1024 + int(slot)


def bits(seed: int, epoch: int, index, stream: int) -> np.ndarray:
    """64 random bits per index, as uint64 (array in, array out)."""
    idx = np.asarray(index, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = _mix(np.asarray([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) + _GOLDEN)
        z = _mix(z ^ (np.uint64(epoch & 0xFFFFFFFFFFFFFFFF) * _GOLDEN + _M1))
        z = _mix(z ^ (np.uint64(stream & 0xFFFFFFFFFFFFFFFF) * _M2 + _GOLDEN))
        z = _mix(z ^ (idx * _GOLDEN))
    return z if idx.ndim else z[0]


def uniform(seed: int, epoch: int, index, stream: int, low=0.0, high=1.0):
    """Uniform floats in [low, high), one per index."""
    u = (bits(seed, epoch, index, stream) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return low + (high - low) * u


def normal(seed: int, epoch: int, index, stream: int, mean=0.0, std=1.0):
    """Gaussian floats by Box-Muller over two sub-streams of ``stream``."""
    u1 = uniform(seed, epoch, index, stream * 2 + 1)
    u2 = uniform(seed, epoch, index, stream * 2 + 2)
    r = np.sqrt(-2.0 * np.log1p(-u1))  # 1-u1 in (0, 1]: log is finite
    return mean + std * r * np.cos(2.0 * np.pi * u2)


def bernoulli(seed: int, epoch: int, index, stream: int, p: float):
    """True with probability p, one per index."""
    return uniform(seed, epoch, index, stream) < p


def permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """A permutation of range(n) that depends only on (seed, epoch): sort by hash."""
    keys = bits(seed, epoch, np.arange(n, dtype=np.uint64), stream=0x5EED)
    return np.argsort(keys, kind="stable").astype(np.int64)
