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


_U64 = (1 << 64) - 1


def _mix_int(z: int) -> int:
    """The SplitMix64 finaliser on one Python int."""
    z = ((z ^ (z >> 30)) * int(_M1)) & _U64
    z = ((z ^ (z >> 27)) * int(_M2)) & _U64
    return z ^ (z >> 31)


def _mix_inplace(z: np.ndarray) -> None:
    """The SplitMix64 finaliser on a uint64 array, in place (no temporaries per round)."""
    t = z >> np.uint64(30)
    with np.errstate(over="ignore"):
        z ^= t
        z *= _M1
        np.right_shift(z, np.uint64(27), out=t)
        z ^= t
        z *= _M2
        np.right_shift(z, np.uint64(31), out=t)
        z ^= t


def stream_id(op_position: int, slot: int) -> int:
    """The stream for parameter ``slot`` of the op at ``op_position`` in a pipeline."""
    return (int(op_position) + 1) * 1024 + int(slot)


def _key(seed: int, epoch: int, stream: int) -> int:
    # (seed, epoch, stream) mix into one key with Python ints: computed once per call, not
    # once per index
    g = int(_GOLDEN)
    z = _mix_int((seed + g) & _U64)
    z = _mix_int(z ^ (((epoch & _U64) * g + int(_M1)) & _U64))
    return _mix_int(z ^ (((stream & _U64) * int(_M2) + g) & _U64))


def bits(seed: int, epoch: int, index, stream: int) -> np.ndarray:
    """64 random bits per index, as uint64 (array in, array out)."""
    idx = np.asarray(index, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.atleast_1d(idx) * _GOLDEN  # a new array: mixed in place below
    z ^= np.uint64(_key(seed, epoch, stream))
    _mix_inplace(z)
    return z if idx.ndim else z[0]


def uniform(seed: int, epoch: int, index, stream: int, low=0.0, high=1.0):
    """Uniform floats in [low, high), one per index."""
    u = (bits(seed, epoch, index, stream) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return low + (high - low) * u


def uniforms(seed: int, epoch: int, index, streams) -> np.ndarray:
    """``uniform(seed, epoch, index, s)`` for each s in ``streams``, the same values, stacked
    (len(streams), len(index)) from one vectorised pass: for small index arrays, where the
    per-call cost dominates."""
    idx = np.atleast_1d(np.asarray(index, dtype=np.uint64))
    # _key's last step, vectorised over the streams (uint64 arithmetic wraps as & _U64 does)
    g = int(_GOLDEN)
    base = _mix_int(_mix_int((seed + g) & _U64) ^ (((epoch & _U64) * g + int(_M1)) & _U64))
    keys = np.array([int(s) & _U64 for s in streams], dtype=np.uint64)
    with np.errstate(over="ignore"):
        keys = np.uint64(base) ^ (keys * _M2 + _GOLDEN)
        _mix_inplace(keys)
        z = (idx * _GOLDEN)[None, :] ^ keys[:, None]
    _mix_inplace(z)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def box_muller(u1, u2, mean=0.0, std=1.0):
    """Gaussian floats from two arrays of uniforms (``normal``'s transform)."""
    r = np.sqrt(-2.0 * np.log1p(-u1))  # 1-u1 in (0, 1]: log is finite
    return mean + std * r * np.cos(2.0 * np.pi * u2)


def normal(seed: int, epoch: int, index, stream: int, mean=0.0, std=1.0):
    """Gaussian floats by Box-Muller over two sub-streams of ``stream``."""
    u1 = uniform(seed, epoch, index, stream * 2 + 1)
    u2 = uniform(seed, epoch, index, stream * 2 + 2)
    return box_muller(u1, u2, mean, std)


def bernoulli(seed: int, epoch: int, index, stream: int, p: float):
    """True with probability p, one per index."""
    return uniform(seed, epoch, index, stream) < p


def permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """A permutation of range(n) that depends only on (seed, epoch): sort by hash."""
    keys = bits(seed, epoch, np.arange(n, dtype=np.uint64), stream=0x5EED)
    return np.argsort(keys, kind="stable").astype(np.int64)


class Stream:
    """Random numbers for one sample (or one batch) of a Python op: each draw is a pure
    function of (seed, epoch, index, stream) and of how many draws came before it on this
    object, so a sample gets the same numbers in any worker, in any order, after a resume.

    >>> r = Stream(seed=0, epoch=3, index=7, stream=stream_id(4, 0))
    >>> r.uniform(0.2, 0.4), r.integers(0, 224, size=2), r.bernoulli(0.5)
    """

    def __init__(self, seed: int, epoch: int, index: int, stream: int):
        self.seed, self.epoch, self.index, self.stream = int(seed), int(epoch), int(index), stream
        self._draws = 0

    def __repr__(self) -> str:
        return (f"Stream(seed={self.seed}, epoch={self.epoch}, index={self.index}, "
                f"stream={self.stream}, draws={self._draws})")  # fmt: skip

    def bits(self, size=None):
        """64 random bits (uint64), or an array of them of shape ``size``."""
        draw, self._draws = self._draws, self._draws + 1
        g = int(_GOLDEN)
        sub = _mix_int((int(self.stream) & _U64) ^ ((self.index * g) & _U64))
        sub = _mix_int(sub ^ (((draw + 1) * int(_M1)) & _U64))
        n = 1 if size is None else int(np.prod(size))
        z = bits(self.seed, self.epoch, np.arange(n, dtype=np.uint64), sub)
        return z[0] if size is None else z.reshape(size)

    def random(self, size=None):
        """Uniform floats in [0, 1)."""
        return (self.bits(size) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

    def uniform(self, low: float = 0.0, high: float = 1.0, size=None):
        return low + (high - low) * self.random(size)

    def integers(self, low: int, high: int, size=None):
        """Integers in [low, high)."""
        if high <= low:
            raise ValueError(f"integers: expected low < high, got ({low}, {high})")
        v = np.floor(self.random(size) * (high - low)).astype(np.int64) + int(low)
        return np.minimum(v, high - 1) if size is not None else int(min(v, high - 1))

    def normal(self, mean: float = 0.0, std: float = 1.0, size=None):
        u1, u2 = self.random(size), self.random(size)
        return mean + std * np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)

    def bernoulli(self, p: float, size=None):
        """True with probability p."""
        return self.random(size) < p

    def permutation(self, n: int) -> np.ndarray:
        return np.argsort(self.bits(int(n)), kind="stable").astype(np.int64)
