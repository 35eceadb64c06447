"""The step codes of a sample's program and helpers that build them, vectorised over samples.

A record's ``prog`` (S,) int8 holds step codes run in order on the output tile, ``parg`` (S, 4)
float32 their arguments. ``NOP`` pads. Arguments per code:

====================  =================================================================
``SOLARIZE``          a0 threshold: x >= a0 -> 255 - x
``SOLARIZE_ADD``      a0 add, a1 threshold: x < a1 -> min(255, x + a0)
``POSTERIZE``         a0 bits kept (0..8)
``INVERT``            -
``EQUALIZE``          - (PIL's histogram rule, per channel)
``AUTOCONTRAST``      - (per-channel min/max stretch, PIL's rounding)
``BRIGHTNESS``        a0 factor: blend with black
``COLOR``             a0 factor: blend with the grey image (PIL's L)
``CONTRAST``          a0 factor, a1 = 0: PIL (rounded grey mean), 1: torchvision (float mean)
``SHARPNESS``         a0 factor: blend with the 3x3 smoothed image, border ring unchanged
``GRAYSCALE``         - (PIL's L replicated to three channels)
``BLUR``              a0 sigma, a1 kernel half-width (reflected border, torchvision's kernel)
``HUE``               a0 hue shift in turns, [-0.5, 0.5] (HSV, as torchvision's adjust_hue)
====================  =================================================================
"""

from __future__ import annotations

import numpy as np

NOP = 0
SOLARIZE = 1
SOLARIZE_ADD = 2
POSTERIZE = 3
INVERT = 4
EQUALIZE = 5
AUTOCONTRAST = 6
BRIGHTNESS = 7
COLOR = 8
CONTRAST = 9
SHARPNESS = 10
GRAYSCALE = 11
BLUR = 12
HUE = 13

NAMES = {
    NOP: "",
    SOLARIZE: "Solarize",
    SOLARIZE_ADD: "SolarizeAdd",
    POSTERIZE: "Posterize",
    INVERT: "Invert",
    EQUALIZE: "Equalize",
    AUTOCONTRAST: "AutoContrast",
    BRIGHTNESS: "Brightness",
    COLOR: "Color",
    CONTRAST: "Contrast",
    SHARPNESS: "Sharpness",
    GRAYSCALE: "Grayscale",
    BLUR: "GaussianBlur",
    HUE: "Hue",
}


def steps(n: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Empty step arrays for n samples with s steps each: codes (n, s) int8, args (n, s, 4)."""
    return np.zeros((n, s), np.int8), np.zeros((n, s, 4), np.float32)


def single(code: int, on: np.ndarray, *args) -> tuple[np.ndarray, np.ndarray]:
    """One step per sample: ``code`` where ``on``, NOP elsewhere; ``args`` scalars or (n,)."""
    n = len(on)
    codes, a = steps(n, 1)
    codes[on, 0] = code
    for i, v in enumerate(args):
        a[:, 0, i] = v
    return codes, a


def describe(codes: np.ndarray, args: np.ndarray) -> list[str]:
    """Human-readable names of one sample's steps (for preview captions)."""
    out = []
    for c, a in zip(codes, args):
        c = int(c)
        if c == NOP:
            continue
        name = NAMES.get(c, f"op{c}")
        if c in (SOLARIZE, POSTERIZE, BRIGHTNESS, COLOR, CONTRAST, SHARPNESS, BLUR, HUE):
            name += f"({float(a[0]):.3g})"
        elif c == SOLARIZE_ADD:
            name += f"({float(a[0]):.3g})"
        out.append(name)
    return out
