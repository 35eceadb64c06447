"""What every augmentation shares: the Op base class and build-time validation helpers.

Ops come in four kinds, which is how ``Compose`` fuses them:

- ``"size"``: decides the output frame: for each sample, K crop rectangles of the source (edge
  coordinates ``x0, y0, w, h``) and whether each is mirrored (``frames(...)``);
- ``"geometry"``: a 3x3 inverse map per sample, output frame -> input frame, in pixel units
  centred on the output (``matrices(...)``);
- ``"lens"``: a radial coefficient k per sample (``coefficients(...)``);
- ``"color"``: per sample ``rgb' = M rgb + t + N mu`` with mu the source's mean RGB
  (``color(...)``), so contrast composes with everything else.

Every ``sample`` method is vectorised over ``indices`` and draws only from ``augpipe.rng`` with
``rng.stream_id(pos, slot)``: parameters are a function of (seed, epoch, index) alone.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe.errors import ConfigTypeError, bad_param


@dataclass(frozen=True)
class Op:
    kind: ClassVar[str] = ""

    def __call__(self, image: np.ndarray, index: int = 0, seed: int = 0, epoch: int = 0):
        """Run this op alone on an HWC uint8 RGB image (see ``Compose.__call__``)."""
        from augpipe.ops.replay import run_ops  # imports numba: only when an op is run

        return run_ops([self], image, index, seed, epoch)


def number(name: str, value, lo: float | None = None, hi: float | None = None) -> float:
    """A real number within [lo, hi]; ConfigTypeError for non-numbers, ConfigError out of range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigTypeError(
            f"{name}: expected a number, got {value!r} ({type(value).__name__}); pass e.g. 0.2"
        )
    v = float(value)
    if not np.isfinite(v):
        raise bad_param(name, "a finite number", value)
    if lo is not None and v < lo:
        raise bad_param(name, f"a number >= {lo}", value, f"use a value in [{lo}, {hi}]")
    if hi is not None and v > hi:
        raise bad_param(name, f"a number <= {hi}", value, f"use a value in [{lo}, {hi}]")
    return v


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigTypeError(
            f"{name}: expected a positive integer, got {value!r} ({type(value).__name__}); "
            "pass e.g. 224"
        )
    if int(value) < 1:
        raise bad_param(name, "a positive integer", value, "pass e.g. 224")
    return int(value)


def size_hw(name: str, value) -> tuple[int, int]:
    """An output size: int (square) or (height, width)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise bad_param(name, "an int or a (height, width) pair", value)
        return positive_int(f"{name}[0]", value[0]), positive_int(f"{name}[1]", value[1])
    s = positive_int(name, value)
    return s, s


def interval(
    name: str,
    value,
    lo: float | None = None,
    hi: float | None = None,
    *,
    symmetric_about: float | None = None,
) -> tuple[float, float]:
    """A (low, high) range. A scalar x means [c - x, c + x] with c = ``symmetric_about``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise bad_param(name, "a number or a (low, high) pair", value)
        a = number(f"{name}[0]", value[0], lo, hi)
        b = number(f"{name}[1]", value[1], lo, hi)
        if a > b:
            raise bad_param(name, "low <= high", value, f"write ({b}, {a})")
        return a, b
    if symmetric_about is None:
        raise bad_param(name, "a (low, high) pair", value)
    x = number(name, value, 0.0)
    a, b = symmetric_about - x, symmetric_about + x
    if lo is not None:
        a = max(a, lo)
    if hi is not None and b > hi:
        raise bad_param(name, f"a range within [{lo}, {hi}]", value)
    return a, b


def probability(name: str, value) -> float:
    return number(name, value, 0.0, 1.0)


def uniform_in(rng_mod, seed, epoch, indices, stream, lo: float, hi: float) -> np.ndarray:
    """Uniform draws in [lo, hi); a degenerate range needs no random numbers."""
    if lo == hi:
        return np.full(len(indices), lo, dtype=np.float64)
    return rng_mod.uniform(seed, epoch, indices, stream, lo, hi)
