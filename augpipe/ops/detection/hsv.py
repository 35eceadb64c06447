"""HSVJitter: hue, saturation and value jitter as one linear colour transform."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.ops.base import Op, number, uniform_in
from augpipe.ops.color_jitter import GREY


def hue_rotation(theta: np.ndarray) -> np.ndarray:
    """(N, 3, 3): rotations of RGB space by ``theta`` radians about the grey axis."""
    u = np.full(3, 1 / np.sqrt(3))
    K = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    return c * np.eye(3) + s * K + (1 - c) * np.outer(u, u)


@dataclass(frozen=True)
class HSVJitter(Op):
    """YOLO-style colour jitter as one 3x3 colour matrix (so it fuses with every other colour
    op): hue rotated by ``hue`` x 360 degrees at most (about RGB's grey axis), saturation scaled
    by a factor in [1 - ``saturation``, 1 + ``saturation``] (blend with luma), value scaled by a
    factor in [1 - ``value``, 1 + ``value``] (all channels; exact for HSV's V). cv2's HSV
    hexcone is not linear, so hue and saturation follow it only approximately.

    >>> Compose([Letterbox(640), HSVJitter(0.015, 0.7, 0.4)])
    """

    hue: float = 0.015
    saturation: float = 0.7
    value: float = 0.4
    kind: ClassVar[str] = "color"

    def __post_init__(self):
        number("HSVJitter.hue", self.hue, 0.0, 0.5)
        number("HSVJitter.saturation", self.saturation, 0.0, 1.0)
        number("HSVJitter.value", self.value, 0.0, 1.0)

    def color(self, indices, seed: int, epoch: int, pos: int):
        n = len(indices)

        def draw(slot, x, c):
            return uniform_in(rng, seed, epoch, indices, rng.stream_id(pos, slot), c - x, c + x)

        theta = draw(0, self.hue * 2 * np.pi, 0.0)
        s = draw(1, self.saturation, 1.0)[:, None, None]
        v = draw(2, self.value, 1.0)[:, None, None]
        grey = np.ones((3, 1)) @ GREY[None, :]
        S = s * np.eye(3) + (1 - s) * grey[None]
        M = v * (S @ hue_rotation(theta))
        return M, np.zeros((n, 3)), np.zeros((n, 3, 3))
