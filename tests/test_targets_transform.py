"""Targets through the same map as the pixels, on synthetic images whose targets are exact."""

from __future__ import annotations

import numpy as np
import pytest

from augpipe import Affine, CenterCrop, Compose, HorizontalFlip, LensDistortion, RandomResizedCrop
from augpipe.errors import ConfigError
from augpipe.ops.fused import _map_point
from augpipe.ops.perspective import RandomPerspective
from augpipe.targets.core import Targets, rle_encode
from augpipe.targets.forward import forward
from augpipe.targets.masks import fill_polygon, mask_box, warp_nearest
from augpipe.targets.transform import TargetOptions, transform

SRC = (150, 180)
BIG = (300, 360)  # masks rasterised finer than the output, so a source pixel is < 1 output px
OUT = (96, 128)
PIPES = [
    Compose([RandomResizedCrop(OUT, scale=(0.5, 1.0)), HorizontalFlip(),
             Affine(rotate=30, shear=8, translate=0.1, stretch=(0.8, 1.2))]),
    Compose([RandomResizedCrop(OUT, scale=(0.5, 1.0)), Affine(rotate=20),
             LensDistortion(k=(-0.15, 0.25), p=1.0)]),
    Compose([RandomResizedCrop(OUT, scale=(0.5, 1.0)), LensDistortion(k=(-0.2, 0.3)),
             Affine(rotate=15, translate=0.1), HorizontalFlip()]),
    # perspective with rotation and flips (with the lens: tests/test_perspective.py)
    Compose([RandomResizedCrop(OUT, scale=(0.5, 1.0)), RandomPerspective(0.5, p=1.0),
             Affine(rotate=15), HorizontalFlip()]),
]  # fmt: skip


def _rec(pipe, i, src=SRC):
    return pipe.sample_params([src], [i], seed=3, epoch=1)[0]


def _polygon(rng, h, w):
    """A random star-shaped polygon well inside a (h, w) image, with blunt vertices (a spike
    thinner than a pixel has no pixel centre inside it, so no mask could show it)."""
    n = int(rng.integers(6, 14))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(8, 30) * rng.uniform(0.75, 1.0, n) * h / SRC[0]
    m = 35 * h / SRC[0]
    cx, cy = rng.uniform(m, w - m), rng.uniform(m, h - m)
    return np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], axis=1)


def _coco_mask(poly, h, w):
    mask_utils = pytest.importorskip("pycocotools.mask")
    rle = mask_utils.frPyObjects([poly.reshape(-1).tolist()], h, w)
    return mask_utils.decode(mask_utils.merge(rle))


def test_forward_inverts_the_kernels_map():
    rng = np.random.default_rng(0)
    H, W = OUT
    for pipe in PIPES:
        for i in range(5):
            rec = _rec(pipe, i)
            X = rng.uniform(-W / 2, W / 2, 40)
            Y = rng.uniform(-H / 2, H / 2, 40)
            inv_r2 = 1.0 / ((W / 2) ** 2 + (H / 2) ** 2)
            src = np.array([_map_point(rec["A1"], float(rec["k"]), rec["A2"][0], x, y, inv_r2)[:2]
                            for x, y in zip(X, Y)])  # fmt: skip
            back = forward(rec, src, OUT)
            np.testing.assert_allclose(back, np.stack([X + W / 2, Y + H / 2], 1), atol=1e-6)


@pytest.mark.parametrize("p", range(len(PIPES)))
def test_box_of_warped_mask_agrees_with_transformed_polygon(p):
    rng = np.random.default_rng(10 + p)
    h, w = BIG
    checked = 0
    for i in range(12):
        poly = _polygon(rng, h, w)
        mask = _coco_mask(poly, h, w)
        t = Targets([[*poly.min(0), *poly.max(0)]], [0], BIG).with_polygons([[poly]])
        rec = _rec(PIPES[p], i, BIG)
        out = transform(t, rec, OUT)
        # the mask through the image kernel (bilinear, thresholded) and through nearest sampling
        img = np.repeat(mask[..., None] * 255, 3, axis=2).astype(np.uint8)
        warped_img = PIPES[p].apply(img, rec)[..., 0] >= 128
        warped = warp_nearest(mask, rec, OUT, 0)
        corners = transform(Targets(t.boxes, [0], BIG), rec, OUT)
        if not warped.any() or mask_box(warped_img)[2] <= mask_box(warped_img)[0]:
            assert len(out) == 0 or (out.boxes[0, 2] - out.boxes[0, 0]) < 2
            continue
        checked += 1
        assert len(out) == 1
        np.testing.assert_allclose(out.boxes[0], mask_box(warped), atol=1.0)
        # the image kernel blends (bilinear, box filter when shrinking): half a pixel more
        np.testing.assert_allclose(out.boxes[0], mask_box(warped_img), atol=1.5)
        # the corner box contains the mask's box (up to the mask's whole pixels)
        cb, mb = corners.boxes[0], mask_box(warped)
        assert cb[0] <= mb[0] + 1 and cb[1] <= mb[1] + 1
        assert cb[2] >= mb[2] - 1 and cb[3] >= mb[3] - 1
    assert checked >= 6


def test_flips_shifts_and_crops_are_exact():
    boxes = np.array([[10, 20, 50, 60], [0, 0, 30, 15.5]])
    kp = np.array([[[12, 22, 2], [48, 58, 1]], [[1, 1, 2], [29, 14, 2]]], np.float64)
    t = Targets(boxes, [0, 1], (100, 100), keypoints=kp)
    flip = Compose([CenterCrop(100), HorizontalFlip(p=1.0)])
    out = transform(t, _rec(flip, 0, (100, 100)), (100, 100), flip_idx=[1, 0])
    np.testing.assert_array_equal(out.boxes, [[50, 20, 90, 60], [70, 0, 100, 15.5]])
    np.testing.assert_array_equal(out.keypoints[0], [[52, 58, 1], [88, 22, 2]])  # swapped
    shift = Compose([CenterCrop(100), Affine(translate=(0.1, 0.1))])
    out = transform(t, _rec(shift, 0, (100, 100)), (100, 100))
    np.testing.assert_allclose(out.boxes, [[20, 30, 60, 70], [10, 10, 40, 25.5]], atol=1e-5)
    crop = Compose([CenterCrop((60, 80))])  # x from 10 to 90, y from 20 to 80
    out = transform(t, _rec(crop, 0, (100, 100)), (60, 80))
    np.testing.assert_array_equal(out.boxes, [[0, 0, 40, 40]])  # box 1 is above the crop: gone
    np.testing.assert_array_equal(out.keypoints[0], [[2, 2, 2], [38, 38, 1]])


def test_identities():
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 80, (6, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(2, 20, (6, 2))], 1)
    kp = np.concatenate([rng.uniform(1, 99, (6, 3, 2)), np.full((6, 3, 1), 2.0)], 2)
    t = Targets(boxes, np.arange(6), (100, 100), keypoints=kp)
    for ops in ([CenterCrop(100)], [CenterCrop(100), HorizontalFlip(1.0), HorizontalFlip(1.0)],
                [CenterCrop(100), Affine(), LensDistortion(k=0.0)]):  # fmt: skip
        out = transform(t, _rec(Compose(ops), 2, (100, 100)), (100, 100), flip_idx=[2, 1, 0])
        np.testing.assert_allclose(out.boxes, np.clip(boxes, 0, 100), atol=1e-5)
        np.testing.assert_allclose(out.keypoints, kp, atol=1e-5)


def test_keypoints_follow_blob_centroids():
    rng = np.random.default_rng(7)
    h, w = SRC
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    for p, pipe in enumerate(PIPES):
        pts = np.stack([rng.uniform(30, w - 30, 6), rng.uniform(30, h - 30, 6)], 1)
        for i in range(3):
            rec = _rec(pipe, 20 * p + i)
            out_xy = forward(rec, pts, OUT)
            for (x, y), (ox, oy) in zip(pts, out_xy):
                if not (12 < ox < OUT[1] - 12 and 12 < oy < OUT[0] - 12):
                    continue
                blob = 250 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2))
                img = np.repeat(blob[..., None], 3, 2).astype(np.uint8)
                o = pipe.apply(img, rec)[..., 0].astype(np.float64)
                y0, x0 = int(oy) - 11, int(ox) - 11
                win = o[y0 : y0 + 23, x0 : x0 + 23]
                gy, gx = np.mgrid[y0 : y0 + 23, x0 : x0 + 23] + 0.5
                c = np.array([(win * gx).sum(), (win * gy).sum()]) / win.sum()
                np.testing.assert_allclose(c, [ox, oy], atol=0.1)


def test_filters_apply_once_at_the_end():
    # a box 50 wide: the crop cuts 40% of it, the translation 40% of what is left (and moves
    # it up 20 px, inside the frame)
    t = Targets([[0, 30, 50, 70]], [0], (100, 100))
    pipe = Compose([CenterCrop((100, 60)), Affine(translate=(-0.2, -0.2))])
    rec = _rec(pipe, 0, (100, 100))
    kept = transform(t, rec, (100, 60), TargetOptions(min_visibility=0.3))
    np.testing.assert_allclose(kept.boxes, [[0, 10, 18, 50]], atol=1e-5)  # 36% visible
    dropped = transform(t, rec, (100, 60), TargetOptions(min_visibility=0.5))
    assert dropped.boxes.shape == (0, 4)
    one = transform(t, _rec(Compose([CenterCrop((100, 60))]), 0, (100, 100)), (100, 60),
                    TargetOptions(min_visibility=0.5))  # fmt: skip
    assert len(one) == 1  # the crop alone leaves 60%
    opts = [TargetOptions(min_area=18 * 40 + 1), TargetOptions(min_wh=19),
            TargetOptions(max_aspect=2)]  # fmt: skip
    for o in opts:
        assert len(transform(t, rec, (100, 60), o)) == 0
    zero = Targets([[5, 5, 5, 9]], [0], (100, 100))
    assert transform(zero, _rec(Compose([CenterCrop(100)]), 0, (100, 100)), (100, 100)
                     ).boxes.shape == (0, 4)  # fmt: skip


def test_keypoints_leaving_the_frame_get_v0():
    kp = np.array([[[5, 50, 2], [95, 50, 2]]], np.float64)
    t = Targets([[0, 0, 100, 100]], [0], (100, 100), keypoints=kp)
    out = transform(t, _rec(Compose([CenterCrop((100, 60))]), 0, (100, 100)), (100, 60))
    assert out.keypoints[0, :, 2].tolist() == [0, 0]


def test_masks_keep_values_and_fill():
    rng = np.random.default_rng(2)
    h, w = SRC
    sem = rng.choice(np.array([0, 3, 7], np.uint8), size=(h, w))
    inst = np.zeros((h, w), np.uint8)
    inst[40:90, 50:120] = 1
    t = Targets([[50, 40, 120, 90]], [1], SRC, rle=[rle_encode(inst)], semantic=sem)
    for pipe in PIPES:
        for i in range(3):
            out = transform(t, _rec(pipe, i), OUT)
            assert set(np.unique(out.semantic)) <= {0, 3, 7, 255}
            if len(out):
                assert set(np.unique(out.masks[0])) <= {0, 1}
                np.testing.assert_allclose(out.boxes[0], mask_box(out.masks[0]))


def test_ellipse_rule_is_inside_the_corner_rule():
    t = Targets([[40, 40, 100, 80]], [0], SRC)
    rec = _rec(Compose([CenterCrop(OUT), Affine(rotate=(30, 30))]), 0)
    c = transform(t, rec, OUT).boxes[0]
    e = transform(t, rec, OUT, TargetOptions(box_rule="ellipse")).boxes[0]
    assert e[0] > c[0] + 1 and e[2] < c[2] - 1


def test_polygon_rasteriser_matches_pycocotools():
    rng = np.random.default_rng(4)
    for _ in range(5):
        poly = _polygon(rng, *SRC)
        ours = np.zeros(SRC, np.uint8)
        fill_polygon([poly], ours, 1)
        theirs = _coco_mask(poly, *SRC)
        np.testing.assert_allclose(mask_box(ours), mask_box(theirs), atol=1)
        assert abs(int(ours.sum()) - int(theirs.sum())) < 0.05 * theirs.sum()


def test_options_are_validated():
    for kw in ({"min_visibility": 1.5}, {"min_area": -1}, {"box_rule": "tight"},
               {"max_aspect": 0.5}, {"min_wh": "2"}):  # fmt: skip
        with pytest.raises(ConfigError, match="TargetOptions"):
            TargetOptions(**kw)


def test_a_policys_geometry_in_the_record_moves_targets_too():
    pipe = Compose([CenterCrop(OUT)])
    rec = pipe.sample_params([SRC], [0])[0].copy()
    rec["geo"] = np.array([[1.0, 0.2, 6.0], [0.0, 1.0, -4.0], [0, 0, 1]])  # shear + shift
    h, w = SRC
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    x, y = 95.3, 70.6
    blob = 250 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2))
    o = pipe.apply(np.repeat(blob[..., None], 3, 2).astype(np.uint8), rec)[..., 0].astype(float)
    gy, gx = np.mgrid[0 : OUT[0], 0 : OUT[1]] + 0.5
    c = np.array([(o * gx).sum(), (o * gy).sum()]) / o.sum()
    np.testing.assert_allclose(forward(rec, [[x, y]], OUT)[0], c, atol=0.1)


@pytest.mark.parametrize("opts", [TargetOptions(), TargetOptions(min_visibility=0.4, min_wh=3),
                                  TargetOptions(min_area=40, max_aspect=4)])  # fmt: skip
def test_compiled_plain_boxes_equal_the_general_path(monkeypatch, opts):
    """Plain boxes under lens-free maps (affine, perspective, flips) take the compiled corner
    path: the same boxes to the bit and the same kept instances as the NumPy path."""
    from augpipe.targets import transform as tr

    rng = np.random.default_rng(5)
    pipes = [PIPES[0], PIPES[3], Compose([CenterCrop(OUT), HorizontalFlip()])]
    kept = 0
    for pipe in pipes:
        for i in range(12):
            rec = _rec(pipe, i)
            xy = rng.uniform(-20, 170, (9, 2))
            wh = rng.uniform(0, 60, (9, 2))
            t = Targets(np.concatenate([xy, xy + wh], axis=1), rng.integers(0, 5, 9), SRC,
                        iscrowd=rng.random(9) < 0.2)  # fmt: skip
            assert tr._plain_boxes(t, rec, *OUT, opts, 0, True) is not None
            fast = transform(t, rec, OUT, opts)
            monkeypatch.setattr(tr, "COMPILED_BOXES", False)
            slow = transform(t, rec, OUT, opts)
            monkeypatch.setattr(tr, "COMPILED_BOXES", True)
            np.testing.assert_array_equal(fast.boxes, slow.boxes)
            np.testing.assert_array_equal(fast.labels, slow.labels)
            np.testing.assert_array_equal(fast.iscrowd, slow.iscrowd)
            kept += len(fast)
    assert 0 < kept < 3 * 12 * 9  # some boxes kept, some filtered


def test_plain_box_path_is_not_taken_for_shapes_or_a_lens():
    from augpipe.targets import transform as tr

    rec = _rec(PIPES[1], 0)  # with a lens
    t = Targets([[10, 10, 50, 40]], [1], SRC)
    assert float(rec["k"]) != 0.0
    assert tr._plain_boxes(t, rec, *OUT, TargetOptions(), 0, True) is None
    square = np.array([[10.0, 10], [50, 10], [50, 40], [10, 40]])
    t.with_polygons([[square]])
    assert tr._plain_boxes(t, _rec(PIPES[0], 0), *OUT, TargetOptions(), 0, True) is None
    assert tr._plain_boxes(t, _rec(PIPES[0], 0), *OUT, TargetOptions(box_rule="ellipse"), 0,
                           True) is None  # fmt: skip
