"""Restart intervals for packed JPEGs: where the entropy-coded data restarts, so a crop's
decode can start (and stop) at a restart marker instead of reading the whole image.

A baseline JPEG's restart interval counts MCUs (16 x 16 pixels at 4:2:0, 8 x 8 at 4:4:4) in
raster order. With an interval ``k`` that divides the MCU row (``mcux`` MCUs), every MCU row
holds ``mcux / k`` segments, each decodable on its own: its DC predictions restart and it begins
on a byte boundary. ``augpipe._jpegregion`` then builds, for a crop, a smaller JPEG from only the
segments that cover it (rows above and below, columns left and right left out).

    >>> interval_mcus(500, 16)  # 32 MCUs per row: 4 MCUs (64 px) per segment
    4
"""

from __future__ import annotations

TARGET_MCUS = 4  # segment width aimed at (MCUs): ~64 px at 4:2:0
MAX_INTERVAL = 0xFFFF  # DRI is a 16-bit field


def interval_mcus(width: int, mcu_w: int = 16, target: int = TARGET_MCUS) -> int:
    """The restart interval (in MCUs) for an image ``width`` pixels wide with MCUs ``mcu_w``
    pixels wide: the divisor k of the MCU row closest to ``target`` (the larger on a tie), so
    that rows hold whole segments. A row whose only divisors are 1 and itself uses 1 (one
    segment per MCU) when it is longer than twice the target, else the whole row. 0 when no
    interval fits the 16-bit field."""
    if width <= 0 or mcu_w <= 0:
        raise ValueError(f"width and mcu_w must be positive, got {width}, {mcu_w}")
    mcux = -(-width // mcu_w)
    divisors = [k for k in range(2, mcux) if mcux % k == 0]
    if divisors:
        k = min(divisors, key=lambda d: (abs(d - target), -d))
    else:
        k = 1 if mcux > 2 * target else mcux
    return k if k <= MAX_INTERVAL else 0
