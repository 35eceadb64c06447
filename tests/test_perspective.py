"""RandomPerspective and the projective warp: the image against cv2.warpPerspective, the
identities, torchvision's corner draws, the horizon, conservative bounds, and the targets."""

from __future__ import annotations

import numpy as np
import pytest

from augpipe import transforms as T
from augpipe.errors import ConfigError
from augpipe.ops.fused import _map_point, fields, source_boxes
from augpipe.ops.params import min_scales
from augpipe.ops.perspective import perspective_coeffs, perspective_maps
from augpipe.targets.core import Targets
from augpipe.targets.forward import forward
from augpipe.targets.masks import fill_polygon, mask_box, warp_nearest
from augpipe.targets.transform import transform

cv2 = pytest.importorskip("cv2")

HW = (48, 64)
OUT = (96, 128)
SRC = (300, 360)
# perspective on both sides of the lens (A2 before it, A1 after it), rotation, flip
PERSP_LENS = T.Compose([T.RandomResizedCrop(OUT, scale=(0.5, 1.0)),
                        T.Affine(rotate=10, perspective=0.002),
                        T.LensDistortion(k=(-0.15, 0.2), p=1.0),
                        T.RandomPerspective(0.4, p=1.0), T.HorizontalFlip()])  # fmt: skip


def _smooth(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 100 * np.sin(xx / 9.0) * np.cos(yy / 7.0),
                    128 + 90 * np.cos((xx + yy) / 11.0), 60 + xx * 150.0 / w], -1)  # fmt: skip
    return img.clip(0, 255).astype(np.uint8)


def _cv2_inverse(rec, hw):
    """The record's map (no lens) as cv2's inverse map: pixel-centre coordinates both sides
    (augpipe's maps act on edge coordinates, pixel i covering [i, i + 1))."""
    H, W = hw
    A = rec["A2"][0] @ rec["A1"] @ np.array([[1, 0, -W / 2], [0, 1, -H / 2], [0, 0, 1.0]])
    return np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1.0]]) @ A @ np.array(
        [[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])  # fmt: skip


def _cv2_warp(img, M, hw, fill):
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpPerspective(img, M, (hw[1], hw[0]), flags=flags,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(fill,) * 3)  # fmt: skip


@pytest.mark.parametrize("ops", [[T.RandomPerspective(0.6, p=1.0)],
                                 [T.Affine(rotate=20, perspective=0.004), T.HorizontalFlip()]],
                         ids=["RandomPerspective", "Affine.perspective"])  # fmt: skip
def test_image_matches_cv2_warp_perspective(ops):
    img = _smooth(*HW)
    pipe = T.Compose(ops, fill=17)
    for i in range(6):
        rec = pipe.sample_params([HW], [i], seed=3, epoch=0)[0]
        assert rec["A2"][0][2, :2].any()  # the projective path, not the affine one
        ref = _cv2_warp(img, _cv2_inverse(rec, HW), HW, 17)
        # cv2 quantises its bilinear weights to 1/32: one grey level on this smooth image
        assert np.abs(pipe.apply(img, rec).astype(int) - ref).max() <= 1


def test_identity_and_affine_maps_stay_exact():
    img = _smooth(*HW)
    for op in (T.RandomPerspective(0.0, p=1.0), T.RandomPerspective(0.9, p=0.0),
               T.Affine(perspective=0.0)):  # fmt: skip
        pipe = T.Compose([op])
        assert np.array_equal(pipe(img, index=4, seed=1), img)
        rec = pipe.sample_params([HW], np.arange(20), seed=1)
        assert np.array_equal(rec["A2"][:, 0], np.tile(pipe.sample_params([HW], [0])["A2"][0, 0],
                                                       (20, 1, 1)))  # fmt: skip
    # an affine op's maps keep the exact [0, 0, 1] row: the warp kernel's affine loop
    rec = T.Compose([T.Affine(rotate=30, shear=5, translate=0.1)]).sample_params(
        [HW] * 20, np.arange(20))  # fmt: skip
    assert np.array_equal(rec["A2"][:, 0, 2], np.tile([0.0, 0.0, 1.0], (20, 1)))


def test_corners_move_as_torchvision_draws_them():
    op = T.RandomPerspective(0.5, p=0.5)
    H, W = 37, 50
    start, end = op.corners(np.arange(400), 2, 1, 0, (H, W))
    bw, bh = int(0.5 * (W // 2)) + 1, int(0.5 * (H // 2)) + 1
    assert np.array_equal(end, np.round(end))  # whole pixels, as torch.randint
    lo_x = np.array([0, W - bw, W - bw, 0])
    lo_y = np.array([0, 0, H - bh, H - bh])
    moved = np.any(end != start, axis=(1, 2))
    e = end[moved]
    assert (e[..., 0] >= lo_x).all() and (e[..., 0] < lo_x + bw).all()
    assert (e[..., 1] >= lo_y).all() and (e[..., 1] < lo_y + bh).all()
    assert 150 < moved.sum() < 250  # p = 0.5
    # every corner offset occurs (uniform integers over the whole range)
    assert set(e[:, 0, 0].astype(int)) == set(range(bw))
    # the solved coefficients send the moved corners back to the frame's corners
    c = perspective_coeffs(start[moved], e)
    x, y = e[..., 0], e[..., 1]
    w = c[:, 6:7] * x + c[:, 7:8] * y + 1
    np.testing.assert_allclose((c[:, 0:1] * x + c[:, 1:2] * y + c[:, 2:3]) / w,
                               start[moved][..., 0], atol=1e-9)  # fmt: skip
    np.testing.assert_allclose((c[:, 3:4] * x + c[:, 4:5] * y + c[:, 5:6]) / w,
                               start[moved][..., 1], atol=1e-9)  # fmt: skip


def test_coefficients_equal_torchvisions():
    tvf = pytest.importorskip("torchvision.transforms.functional")
    op = T.RandomPerspective(0.7, p=1.0)
    start, end = op.corners(np.arange(5), 0, 0, 0, (40, 60))
    ours = perspective_coeffs(start, end)
    for j in range(5):
        theirs = tvf._get_perspective_coeffs(start[j].tolist(), end[j].tolist())
        np.testing.assert_allclose(ours[j], theirs, rtol=1e-5, atol=1e-7)  # theirs: float32


def test_behind_the_horizon_is_fill_and_bounds_take_the_whole_source():
    img = _smooth(*HW)
    pipe = T.Compose([T.RandomPerspective(0.0)], fill=9)
    rec = pipe.sample_params([HW], [0])[0].copy()
    H, W = HW
    G = np.array([[1.0, 0, 0], [0, 1.0, 0], [0.05, 0.0, 1.0]])  # w = 1 + 0.05 X: horizon at X = -20
    rec["A2"][0] = rec["A2"][0] @ G
    out = pipe.apply(img, rec)
    X = np.arange(W) + 0.5 - W / 2
    w = 1 + 0.05 * X
    assert (out[:, w < -0.05] == 9).all()  # behind: fill (cv2 would mirror the image there)
    ref = _cv2_warp(img, _cv2_inverse(rec, HW), HW, 9)
    front = w > 0.2
    assert np.abs(out[:, front].astype(int) - ref[:, front]).max() <= 1
    box = source_boxes(fields(rec), HW)[0]
    assert box[0] <= 0 and box[1] >= H and box[2] <= 0 and box[3] >= W


@pytest.mark.parametrize(
    "pipe", [PERSP_LENS, T.Compose([T.CenterCrop((40, 52)), T.RandomPerspective(0.8, p=1.0)])]
)
def test_bounds_contain_every_sampled_point(pipe):
    h, w = SRC
    recs = pipe.sample_params([SRC] * 8, np.arange(8), seed=5)
    Ho, Wo = pipe.output_shape[:2]
    boxes = source_boxes(fields(recs), (Ho, Wo))
    steps = min_scales(recs, (Ho, Wo))
    inv_r2 = 1.0 / ((Wo / 2) ** 2 + (Ho / 2) ** 2)
    for j, rec in enumerate(recs):
        pts = np.array([_map_point(rec["A1"], float(rec["k"]), rec["A2"][0], x + 0.5 - Wo / 2,
                                   y + 0.5 - Ho / 2, inv_r2)
                        for y in range(0, Ho, 3) for x in range(0, Wo, 3)])  # fmt: skip
        ok = pts[:, 2] > 0
        b = boxes[j]
        if not ok.all():  # the horizon is in view (distortion 0.8 can do it): the whole source
            assert b[0] <= 0 and b[1] >= h and b[2] <= 0 and b[3] >= w
            continue
        x = np.clip(pts[:, 0], 0, w)
        y = np.clip(pts[:, 1], 0, h)
        assert (y >= b[0]).all() and (y <= b[1]).all() and (x >= b[2]).all() and (x <= b[3]).all()
        # the DCT scale is at most the smallest local step (over 3-pixel differences, +15%)
        grid = pts[:, :2].reshape(len(range(0, Ho, 3)), -1, 2)
        local = min(np.hypot(*np.diff(grid, axis=1).T).min(),
                    np.hypot(*np.diff(grid, axis=0).T).min()) / 3  # fmt: skip
        assert steps[j] <= local * 1.15


def test_fill_comes_from_the_op_the_pipeline_or_the_sizing_op():
    assert T.Compose([T.RandomPerspective(fill=50)]).fill == 50
    assert T.Compose([T.RandomPerspective(fill=50)], fill=3).fill == 3
    assert T.Compose([T.Letterbox(32), T.RandomPerspective()]).fill == 114
    with pytest.raises(ConfigError, match="RandomPerspective.fill"):
        T.Compose([T.Letterbox(32), T.RandomPerspective(fill=0)])
    with pytest.raises(ConfigError, match="distortion_scale"):
        T.RandomPerspective(distortion_scale=1.5)
    with pytest.raises(ConfigError, match="Affine.perspective"):
        T.Affine(perspective=-0.1)
    pipe = T.Compose([T.RandomResizedCrop(24), T.RandomPerspective(0.3, p=0.7, fill=5)])
    back = T.Compose.from_dict(pipe.to_dict())
    assert back.ops == pipe.ops and back.fill == 5


def test_affine_perspective_is_ultralytics_p_row():
    op = T.Affine(perspective=0.001)
    inv = op.matrices(np.arange(50), 0, 0, 0, (64, 64))
    fwd = np.linalg.inv(inv)
    fwd /= fwd[:, 2:3, 2:3]
    np.testing.assert_allclose(fwd[:, :2], np.tile(np.eye(3)[:2], (50, 1, 1)), atol=1e-12)
    assert (np.abs(fwd[:, 2, :2]) <= 0.001).all() and np.abs(fwd[:, 2, :2]).max() > 0.0005


def _inside(poly, x, y):
    """Even-odd point-in-polygon, vectorised over points."""
    inside = np.zeros(x.shape, bool)
    for (xa, ya), (xb, yb) in zip(poly, np.roll(poly, -1, axis=0)):
        cross = (ya <= y) != (yb <= y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = xa + (y - ya) * (xb - xa) / (yb - ya)
        inside ^= cross & (x < xc)
    return inside


def _source_points(rec, hw, ss):
    """Source points of an ss x ss subpixel grid of the output (the map in NumPy)."""
    H, W = hw
    ys, xs = np.mgrid[0 : H * ss, 0 : W * ss]
    X, Y = (xs + 0.5) / ss - W / 2, (ys + 0.5) / ss - H / 2
    A1, A2, k = rec["A1"], rec["A2"][0], float(rec["k"])
    u, v, q = (A1[i, 0] * X + A1[i, 1] * Y + A1[i, 2] for i in range(3))
    u, v = u / q, v / q
    s = 1 + k * (u * u + v * v) / ((W / 2) ** 2 + (H / 2) ** 2)
    u, v = u * s, v * s
    x, y, q = (A2[i, 0] * u + A2[i, 1] * v + A2[i, 2] for i in range(3))
    return x / q, y / q


def test_boxes_masks_and_keypoints_follow_perspective_and_lens():
    rng = np.random.default_rng(4)
    h, w = SRC
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    checked = 0
    for i in range(10):
        n = int(rng.integers(6, 12))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = rng.uniform(25, 50) * rng.uniform(0.8, 1.0, n)
        cx, cy = rng.uniform(80, w - 80), rng.uniform(80, h - 80)
        poly = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], axis=1)
        rec = PERSP_LENS.sample_params([SRC], [i], seed=3, epoch=1)[0]
        t = Targets([[*poly.min(0), *poly.max(0)]], [0], SRC).with_polygons([[poly]])
        out = transform(t, rec, OUT)
        # the exact box of the warped shape, from a 4 x 4 subpixel grid of the output
        sx, sy = _source_points(rec, OUT, 4)
        ins = _inside(poly, sx, sy)
        if not ins.any():
            assert len(out) == 0
            continue
        ys, xs = np.nonzero(ins)
        exact = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / 4
        checked += 1
        np.testing.assert_allclose(out.boxes[0], exact, atol=0.3)
        # the rasterised mask through nearest sampling: its box is in whole output pixels
        # whose centres fall inside, so it may miss up to a pixel, and a vertex's tip between
        # two rows of centres a little more
        mask = np.zeros(SRC, np.uint8)
        fill_polygon([poly], mask, 1)
        np.testing.assert_allclose(out.boxes[0], mask_box(warp_nearest(mask, rec, OUT, 0)),
                                   atol=1.5)  # fmt: skip
        corners = transform(Targets(t.boxes, [0], SRC), rec, OUT).boxes[0]
        assert (corners[:2] <= out.boxes[0, :2] + 1e-6).all()
        assert (corners[2:] >= out.boxes[0, 2:] - 1e-6).all()
        # a keypoint at the polygon's centre vs the centroid of a small blob drawn there
        ((ox, oy),) = forward(rec, [[cx, cy]], OUT)
        if 12 < ox < OUT[1] - 12 and 12 < oy < OUT[0] - 12:
            blob = 250 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 2.0**2))
            img = np.repeat(blob[..., None], 3, 2).astype(np.uint8)
            o = PERSP_LENS.apply(img, rec)[..., 0].astype(np.float64)
            y0, x0 = int(oy) - 11, int(ox) - 11
            win = o[y0 : y0 + 23, x0 : x0 + 23]
            gy, gx = np.mgrid[y0 : y0 + 23, x0 : x0 + 23] + 0.5
            c = np.array([(win * gx).sum(), (win * gy).sum()]) / win.sum()
            np.testing.assert_allclose(c, [ox, oy], atol=0.1)
    assert checked >= 6


def test_loader_batches_with_perspective_are_the_same_for_any_workers(tmp_path):
    from augpipe import Loader
    from augpipe.format.pack import pack
    from tests.targets_fakes import coco_dataset

    js = coco_dataset(tmp_path / "src", n=5)
    pack(None, tmp_path / "packed", coco=js, root=tmp_path / "src" / "images", format="raw",
         progress=False)  # fmt: skip
    pipe = T.Compose([T.RandomResizedCrop((32, 40), scale=(0.5, 1.0)),
                      T.RandomPerspective(0.5, p=1.0), T.HorizontalFlip()])  # fmt: skip
    runs = []
    for workers in (0, 2):
        with Loader(tmp_path / "packed", 2, pipe, output="numpy", seed=7, workers=workers) as ld:
            runs.append([(im.copy(), t) for im, t in ld])
    assert len(runs[0]) == len(runs[1]) == 3
    for (ia, ta), (ib, tb) in zip(*runs):
        np.testing.assert_array_equal(ia, ib)
        assert ta.keys() == tb.keys()
        for key in ta:
            np.testing.assert_array_equal(ta[key], tb[key])
    assert any(len(t["boxes"]) for _, t in runs[0])


def test_min_scales_take_each_records_own_frame():
    pipe = T.Compose([T.CenterCrop((40, 52)), T.RandomPerspective(0.6, p=1.0)])
    recs = pipe.sample_params([SRC] * 3, np.arange(3))
    hw = np.array([[40, 52], [20, 30], [64, 64]])
    each = [min_scales(recs[j : j + 1], tuple(hw[j]))[0] for j in range(3)]
    np.testing.assert_array_equal(min_scales(recs, hw), each)
    assert (min_scales(recs) == 1.0).all()  # no frame given: decode perspective maps at full size


def test_degenerate_frames_and_corner_draws_keep_the_identity():
    # a frame one pixel high or wide has no perspective map (the 8x8 solve is singular there)
    for hw in ((1, 4), (4, 1), (1, 1)):
        m = T.RandomPerspective(1.0, p=1.0).matrices(np.arange(40), 0, 0, 0, hw)
        assert np.array_equal(m, np.tile(np.eye(3), (40, 1, 1)))
    # at distortion 1, two corners can meet (odd sides): those samples keep the identity,
    # all others get a finite map
    op = T.RandomPerspective(1.0, p=1.0)
    start, end = op.corners(np.arange(4000), 5, 0, 0, (5, 5))
    met = np.array([len({tuple(c) for c in q}) < 4 for q in end])
    assert met.any()  # the case occurs in this draw
    m = op.matrices(np.arange(4000), 5, 0, 0, (5, 5))
    assert np.isfinite(m).all()
    assert np.array_equal(m[met], np.tile(np.eye(3), (int(met.sum()), 1, 1)))
    img = _smooth(1, 4)
    pipe = T.Compose([T.RandomPerspective(0.8, p=1.0)])
    assert np.array_equal(pipe(img, index=0, seed=0), img)


def test_maps_where_torchvisions_system_is_singular():
    # the moved corners' origin maps to infinity: the 8-coefficient system has no solution
    start = np.array([[[0, 0], [4, 0], [4, 4], [0, 4]]], np.float64)
    end = np.array([[[2, 0], [4, 0], [4, 4], [2, 2]]], np.float64)
    with pytest.raises(np.linalg.LinAlgError):
        perspective_coeffs(start, end)
    M = perspective_maps(start, end)[0]
    p = np.concatenate([end[0], np.ones((4, 1))], axis=1) @ M.T
    np.testing.assert_allclose(p[:, :2] / p[:, 2:], start[0], atol=1e-9)
    # elsewhere the same map as the 8-coefficient solve
    e2 = np.array([[[1, 1], [3, 0], [4, 3], [0, 4]]], np.float64)
    c = perspective_coeffs(start, e2)[0]
    np.testing.assert_allclose(perspective_maps(start, e2)[0], np.append(c, 1).reshape(3, 3))


def test_affine_refuses_a_stretch_that_makes_the_map_singular():
    with pytest.raises(ConfigError, match="Affine.stretch"):
        T.Affine(stretch=(1e-222, 1.0), perspective=0.0078)
    # the extremes it accepts give finite, invertible maps with any perspective
    op = T.Affine(rotate=180, shear=60, stretch=(0.01, 0.01), perspective=0.01)
    m = op.matrices(np.arange(200), 0, 0, 0, (64, 64))
    assert np.isfinite(m).all() and (np.abs(np.linalg.det(m)) > 0).all()
