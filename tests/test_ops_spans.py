"""``render_item_spans`` (Mosaic's tiles written run by run into the output) against
``render_item`` into a scratch tile followed by the run copy: the same pixels, bit for bit,
and nothing outside the runs touched."""

from __future__ import annotations

import numpy as np
import pytest

from augpipe.ops.fused import _render_spans, fields, render_item, render_item_spans
from augpipe.ops.params import param_dtype
from augpipe.ops.pixel import program as P


def _record(rng, full_hw, *, persp=0.0, rot=True, flip=False, colour=False, k=0.0, n_steps=1):
    """One record (one crop) of a random map: A1 centred output -> centred units (scale,
    rotation, flip, a perspective row), A2 -> full-size source edge coordinates around the
    source's centre (shear, shift, a perspective row too)."""
    rec = np.zeros(1, param_dtype(1, n_steps))
    rec["geo"][0] = np.eye(3)
    rec["cgeo"][0, 0] = np.eye(3)
    t = rng.uniform(-0.6, 0.6) if rot else 0.0
    s = rng.uniform(0.3, 2.5)
    A1 = np.array([[s * np.cos(t), -s * np.sin(t), 0.0], [s * np.sin(t), s * np.cos(t), 0.0],
                   [0.0, 0.0, 1.0]])  # fmt: skip
    if flip:
        A1[:, 0] *= -1.0
    A1[2, :2] = rng.uniform(-persp, persp, 2)
    H, W = full_hw
    A2 = np.array([[1.0, rng.uniform(-0.2, 0.2), W / 2 + rng.uniform(-0.2, 0.2) * W],
                   [rng.uniform(-0.1, 0.1), 1.0, H / 2 + rng.uniform(-0.2, 0.2) * H],
                   [0.0, 0.0, 1.0]])  # fmt: skip
    A2[2, :2] = rng.uniform(-persp, persp, 2) * 0.5
    rec["A1"][0], rec["A2"][0, 0], rec["k"][0] = A1, A2, k
    rec["src_hw"][0] = full_hw
    if colour:
        rec["cmat"][0] = np.eye(3) + rng.uniform(-0.3, 0.3, (3, 3))
        rec["coff"][0] = rng.uniform(-20, 20, 3)
        rec["cmean"][0] = rng.uniform(-0.2, 0.2, (3, 3))
        rec["color"][0] = True
    else:
        rec["cmat"][0] = np.eye(3)
    return rec


def _spans(rng, sh, sw):
    lo = rng.integers(0, sw + 1, sh)
    hi = lo + rng.integers(0, sw + 1, sh)
    hi = np.minimum(hi, sw)
    lo[rng.random(sh) < 0.1] = 0  # some whole rows, some empty ones
    hi[rng.random(sh) < 0.1] = sw
    hi[rng.random(sh) < 0.1] = 0
    return lo.astype(np.int64), hi.astype(np.int64)


def _compare(src, bgr, rec, sub_hw, at, lo, hi, fill, scale=(1.0, 1.0), offset=(0.0, 0.0),
             out_hw=(90, 110), seed=0, direct=True):  # fmt: skip
    sh, sw = sub_hw
    oy0, ox0 = at
    f = fields(rec)
    tile = np.empty((1, sh, sw, 3), np.uint8)
    render_item(src, bgr, f, 0, tile, fill, scale, offset)
    base = np.random.default_rng(seed).integers(0, 256, (*out_hw, 3), dtype=np.uint8)
    ref = base.copy()
    for y in range(sh):
        ref[oy0 + y, ox0 + lo[y] : ox0 + hi[y]] = tile[0, y, lo[y] : hi[y]]
    got = base.copy()
    render_item_spans(src, bgr, f, 0, got, oy0, ox0, lo, hi, sw, fill, scale, offset)
    assert np.array_equal(got, ref)
    # which path rendered it: the spans straight from the warp kernel, or the fallback
    again = base.copy()
    sc = (float(scale[0]), float(scale[1]), float(offset[0]), float(offset[1]))
    took = _render_spans(src, bgr, f[9], 0, float(fill), *sc, again, oy0, ox0, lo, hi, sw)
    assert took == (1 if direct else 0)
    assert np.array_equal(again, ref if direct else base)


def _src(rng, h, w):
    import cv2

    small = rng.integers(0, 256, (max(2, h // 6), max(2, w // 6), 3), dtype=np.uint8)
    return np.ascontiguousarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC))


@pytest.mark.parametrize("persp", [0.0, 2e-3, 2e-2])
def test_spans_equal_the_tile_and_its_copy(persp):
    rng = np.random.default_rng(int(persp * 1e4))
    for trial in range(12):
        sh, sw = int(rng.integers(1, 60)), int(rng.integers(1, 70))
        at = (int(rng.integers(0, 90 - sh)), int(rng.integers(0, 110 - sw)))
        full = (int(rng.integers(40, 120)), int(rng.integers(40, 120)))
        scaled = trial % 3 == 2  # a DCT-scaled region decode: half size, starting inside
        scale, offset = ((2.0, 2.0), (3.0, 5.0)) if scaled else ((1.0, 1.0), (0.0, 0.0))
        h = full[0] // 2 - 3 if scaled else full[0]
        w = full[1] // 2 - 5 if scaled else full[1]
        src = _src(rng, h, w)
        rec = _record(rng, full, persp=persp, rot=trial % 4 != 0, flip=trial % 2 == 1,
                      colour=trial % 3 != 0)  # fmt: skip
        lo, hi = _spans(rng, sh, sw)
        _compare(src, trial % 2 == 0, rec, (sh, sw), at, lo, hi, float(rng.integers(0, 256)),
                 scale, offset, seed=trial)  # fmt: skip


def test_records_the_span_path_cannot_take_fall_back_to_the_same_pixels():
    rng = np.random.default_rng(5)
    src = _src(rng, 80, 90)
    lo, hi = _spans(rng, 40, 50)
    cases = []
    axis = _record(rng, (80, 90), rot=False)  # the separable kernel's map
    axis["A2"][0, 0, 0, 1] = axis["A2"][0, 0, 1, 0] = 0.0
    axis["A1"][0] = np.diag([0.7, 0.8, 1.0])
    axis["A2"][0, 0, :2, 2] = (45.0, 40.0)
    cases.append(axis)
    step = _record(rng, (80, 90), colour=True)
    step["prog"][0, 0] = P.INVERT
    cases.append(step)
    erase = _record(rng, (80, 90))
    erase["emode"][0], erase["ebox"][0], erase["ecol"][0] = 1, (5, 7, 10, 12), (1, 2, 3)
    cases.append(erase)
    clip = _record(rng, (80, 90))
    clip["clip"][0] = True
    clip["geo"][0] = np.array([[0.9, 0.2, 3.0], [-0.2, 0.9, -2.0], [0.0, 0.0, 1.0]])
    clip["pfill"][0] = (10, 20, 30)
    cases.append(clip)
    for i, rec in enumerate(cases):
        _compare(src, False, rec, (40, 50), (7, 11), lo, hi, 114.0, seed=i, direct=False)
    # a lens goes through the spans too
    _compare(src, True, _record(rng, (80, 90), k=-0.2, colour=True), (40, 50), (7, 11), lo, hi,
             114.0)  # fmt: skip


def test_spans_outside_the_output_are_refused():
    rng = np.random.default_rng(1)
    src = _src(rng, 30, 30)
    f = fields(_record(rng, (30, 30)))
    out = np.zeros((20, 20, 3), np.uint8)
    lo, hi = np.zeros(10, np.int64), np.full(10, 8, np.int64)
    with pytest.raises(ValueError, match="render_item_spans"):
        render_item_spans(src, False, f, 0, out, 15, 0, lo, hi, 8)  # rows past the bottom
    with pytest.raises(ValueError, match="render_item_spans"):
        render_item_spans(src, False, f, 0, out, 0, 0, lo, hi + 1, 8)  # a span past sw
    with pytest.raises(ValueError, match="C-contiguous"):
        render_item_spans(src, False, f, 0, out[:, ::2], 0, 0, lo, hi, 8)
    assert not out.any()


def test_large_perspective_sub_frames_equal_to_the_bit():
    # rows long enough for the vector loops' main bodies: a division the vector body computed
    # differently from the scalar remainder (reciprocal estimates) made rare pixels depend on
    # where a span starts
    rng = np.random.default_rng(11)
    for trial in range(16):
        full = (300, 320)
        src = _src(rng, *full)
        rec = _record(rng, full, persp=2e-3, colour=trial % 2 == 1)
        lo, hi = _spans(rng, 200, 300)
        _compare(src, False, rec, (200, 300), (3, 5), lo, hi, 114.0, out_hw=(210, 310))
