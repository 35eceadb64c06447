"""Letterbox, RandomScale and HSVJitter: pixels and targets through the same record."""

from __future__ import annotations

import numpy as np
import pytest

from augpipe import Compose, HorizontalFlip, ShardDataset
from augpipe.errors import ConfigError
from augpipe.ops.detection.hsv import HSVJitter, hue_rotation
from augpipe.ops.detection.letterbox import Letterbox
from augpipe.ops.detection.random_scale import RandomScale
from augpipe.targets.core import Targets
from augpipe.targets.transform import transform


def _img(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_letterbox_layout_fill_and_boxes():
    img = _img(100, 200)
    pipe = Compose([Letterbox(64)])
    assert pipe.fill == 114  # taken from the op
    out = pipe(img)
    assert out.shape == (64, 64, 3)
    # 200x100 -> 64x32, padded 16 above and below (the shrinking kernel's box filter may bleed
    # into the first padding row: its last block of source rows is partial)
    assert (out[:16] == 114).all() and (out[49:] == 114).all()
    assert not (out[17:47] == 114).all()
    rec = pipe.sample_params([(100, 200)], [0])[0]
    t = Targets([[0, 0, 200, 100], [50, 25, 100, 75]], [0, 1], (100, 200))
    np.testing.assert_allclose(transform(t, rec, (64, 64)).boxes,
                               [[0, 16, 64, 48], [16, 24, 32, 40]], atol=1e-5)  # fmt: skip
    assert Compose([Letterbox(64)], fill=0).fill == 0
    small = Compose([Letterbox(64, scaleup=False)])(img[:20, :30])
    assert (small[:22] == 114).all() and (small[:, :17] == 114).all()


def test_letterbox_rejects_bad_fill():
    with pytest.raises(ConfigError, match="Letterbox.fill"):
        Letterbox(64, fill=300)


def test_random_scale_scales_about_the_centre():
    pipe = Compose([Letterbox(100), RandomScale((2.0, 2.0))])
    rec = pipe.sample_params([(100, 100)], [0])[0]
    t = Targets([[40, 40, 60, 60]], [0], (100, 100))
    np.testing.assert_allclose(transform(t, rec, (100, 100)).boxes, [[30, 30, 70, 70]], atol=1e-5)
    img = _img(100, 100)
    np.testing.assert_array_equal(Compose([Letterbox(100), RandomScale(p=0.0)])(img), img)
    with pytest.raises(ConfigError, match="RandomScale.scale"):
        RandomScale((0.0, 1.0))


def test_hsv_jitter_is_one_colour_matrix():
    np.testing.assert_allclose(hue_rotation(np.array([2 * np.pi / 3]))[0] @ [1, 0, 0],
                               [0, 1, 0], atol=1e-12)  # fmt: skip
    img = _img(20, 24)
    np.testing.assert_array_equal(Compose([HSVJitter(0, 0, 0)])(img), img)
    grey = np.full((8, 8, 3), 100, np.uint8)
    out = Compose([HSVJitter(0.5, 0.9, 0.0)])(grey, index=3)
    np.testing.assert_array_equal(out, grey)  # hue and saturation leave grey alone
    pipe = Compose([HSVJitter(0.0, 0.0, 0.4)])
    rec = pipe.sample_params([(8, 8)], [5])[0]
    v = rec["cmat"][0, 0]
    assert 0.6 <= v <= 1.4 and np.allclose(rec["cmat"], v * np.eye(3), atol=1e-6)


def test_flip_after_letterbox_mirrors_boxes_in_the_output():
    pipe = Compose([Letterbox(64), HorizontalFlip(p=1.0)])
    rec = pipe.sample_params([(100, 200)], [0])[0]
    t = Targets([[0, 0, 100, 100]], [0], (100, 200))
    np.testing.assert_allclose(transform(t, rec, (64, 64)).boxes, [[32, 16, 64, 48]], atol=1e-5)


def _solid_dataset(tmp_path, sizes):
    """Images of one solid colour each, one box covering the whole image, label = its index."""
    import json

    import cv2

    from augpipe.format.pack import pack

    (tmp_path / "im").mkdir()
    images, anns = [], []
    for i, (h, w) in enumerate(sizes):
        cv2.imwrite(str(tmp_path / "im" / f"{i}.png"), np.full((h, w, 3), 40 + 50 * i, np.uint8))
        images.append({"id": i, "file_name": f"{i}.png", "height": h, "width": w})
        anns.append({"id": i, "image_id": i, "category_id": i, "bbox": [0, 0, w, h],
                     "keypoints": [w / 2, h / 2, 2]})  # fmt: skip
    cats = [{"id": i, "name": f"c{i}", "keypoints": ["centre"]} for i in range(len(sizes))]
    js = tmp_path / "a.json"
    js.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    pack(None, tmp_path / "p", coco=js, root=tmp_path / "im", format="raw", progress=False)
    return ShardDataset(tmp_path / "p")


def test_mosaic_tiles_pixels_and_boxes_agree(tmp_path):
    from augpipe.ops.detection.mosaic import Mosaic
    from augpipe.targets.batch import TargetPipeline

    ds = _solid_dataset(tmp_path, [(40, 60), (64, 32), (50, 50), (30, 64)])
    S = 64
    tp = TargetPipeline(Compose([Mosaic(S)]).bind(ds), ds)
    assert tp.max_instances == 4
    images, t = tp.sample(ds, np.arange(4), seed=1)
    for b in range(4):
        img = images[b]
        lo, hi = t["offsets"][b], t["offsets"][b + 1]
        assert 1 <= hi - lo <= 4
        near = {}  # per colour: the pixels of its tiles' boxes, grown by one (blended edges)
        for j in range(lo, hi):
            x0, y0, x1, y1 = t["boxes"][j]
            assert 0 <= x0 < x1 <= S and 0 <= y0 < y1 <= S
            colour = 40 + 50 * int(t["labels"][j])
            # inside the box: the image's colour (edge pixels may blend)
            inner = img[int(np.ceil(y0)) + 1 : int(y1) - 1, int(np.ceil(x0)) + 1 : int(x1) - 1, 0]
            assert (inner == colour).all()
            m = near.setdefault(colour, np.zeros((S, S), bool))
            m[
                max(int(y0) - 1, 0) : int(np.ceil(y1)) + 1,
                max(int(x0) - 1, 0) : int(np.ceil(x1)) + 1,
            ] = True
            kx, ky, kv = t["keypoints"][j, 0]
            if kv > 0:
                assert x0 <= kx <= x1 and y0 <= ky <= y1
        anywhere = np.zeros((S, S), bool)
        for colour, m in near.items():
            assert not ((img[..., 0] == colour) & ~m).any()  # no colour outside its boxes
            anywhere |= m
        assert (img[~anywhere] == 114).all()  # what no tile covers is the fill


def test_mosaic_refuses_lens_and_plain_datasets(tmp_path, tiny_packed):
    from augpipe import LensDistortion
    from augpipe.ops.detection.mosaic import Mosaic
    from augpipe.targets.batch import TargetPipeline

    ds = _solid_dataset(tmp_path, [(40, 60), (64, 32)])
    with pytest.raises(ConfigError, match="Mosaic"):
        TargetPipeline(Compose([Mosaic(32), LensDistortion(0.1)]), ds)
    plain = ShardDataset(tiny_packed)
    with pytest.raises(ConfigError, match="Mosaic"):
        Compose([Mosaic(32)]).bind(plain)
    with pytest.raises(ConfigError, match="Mosaic"):
        Compose([Mosaic(32)])(np.zeros((8, 8, 3), np.uint8))


def test_random_iou_crop_keeps_an_object(tmp_path, tiny_packed):
    from augpipe.ops.detection.iou_crop import RandomIoUCrop, _iou
    from augpipe.targets.batch import TargetPipeline
    from augpipe.targets.context import sample_boxes

    ds = _solid_dataset(tmp_path, [(80, 120), (100, 60)])
    for need in (0.3, 0.7):
        op = RandomIoUCrop(32, options=(need,))
        pipe = Compose([op]).bind(ds)
        boxes = {i: ds.targets(i).boxes for i in range(2)}
        for i in range(2):
            for epoch in range(4):
                with sample_boxes(boxes):
                    rec = pipe.sample_params(ds.sizes[[i]], [i], seed=0, epoch=epoch)[0]
                a = rec["A2"][0]
                w, h = a[0, 0] * 32, a[1, 1] * 32
                crop = np.array(
                    [[a[0, 2] - w / 2, a[1, 2] - h / 2, a[0, 2] + w / 2, a[1, 2] + h / 2]]
                )
                assert _iou(boxes[i].astype(float), crop).max() >= need - 1e-9
    tp = TargetPipeline(Compose([RandomIoUCrop(32), HorizontalFlip()]).bind(ds), ds)
    images, t = tp.sample(ds, [0, 1], seed=2)
    assert images.shape == (2, 32, 32, 3) and len(t["boxes"]) >= 1
    with pytest.raises(ConfigError, match="RandomIoUCrop"):
        Compose([RandomIoUCrop(32)]).bind(ShardDataset(tiny_packed))


def test_mosaic_canvas_targets_batched_equal_per_sample():
    """The batch-wide canvas pass for plain boxes gives each sample the targets the per-sample
    rule gives (boxes scaled to the canvas, cut at their tile; labels, crowd flags)."""
    from augpipe.targets.mosaic import _canvas_all, _canvas_targets

    rng = np.random.default_rng(2)
    tqs, places, rects, samples = [], [], [], []
    for j in range(5):
        for _ in range(int(rng.integers(1, 5))):
            m = int(rng.integers(0, 6))
            xy = rng.uniform(0, 300, (m, 2))
            tqs.append(Targets(np.concatenate([xy, xy + rng.uniform(1, 90, (m, 2))], axis=1),
                               rng.integers(0, 4, m), (320, 400),
                               iscrowd=rng.random(m) < 0.3))  # fmt: skip
            x0, y0 = rng.uniform(-100, 600, 2)
            places.append([rng.uniform(0.5, 2), rng.uniform(0.5, 2), x0, y0])
            rects.append(np.array([max(x0, 0), max(y0, 0), min(x0 + 300, 1280),
                                   min(y0 + 260, 1280)]))  # fmt: skip
            samples.append(j)
    got = _canvas_all(tqs, places, np.array(rects), samples, 5, (1280, 1280), 0)
    assert len(got) == 5
    for j in range(5):
        ts = [t for t, s in zip(range(len(tqs)), samples) if s == j]
        want = _canvas_targets([(tqs[t], places[t], rects[t]) for t in ts], (1280, 1280), 0)
        np.testing.assert_array_equal(got[j].boxes, want.boxes)
        np.testing.assert_array_equal(got[j].labels, want.labels)
        np.testing.assert_array_equal(got[j].iscrowd, want.iscrowd)
        assert got[j].size == want.size and len(got[j]) == sum(len(tqs[t]) for t in ts)


def test_mosaic_tile_boxes_match_source_boxes_for_perspective_tiles():
    """The 5 x 5 grid for lens-free perspective tiles gives ``source_boxes``'s bounding box
    (the corners bound a homography's image) and, for steps under 8, the same margin."""
    from augpipe.ops.affine import Affine
    from augpipe.ops.fused import fields, source_boxes
    from augpipe.targets.mosaic import _tile_boxes

    pipe = Compose([Letterbox(96), RandomScale((0.5, 1.5)),
                    Affine(rotate=10, shear=5, translate=0.1, perspective=0.001)])  # fmt: skip
    recs = pipe.sample_params(np.tile([[80, 120]], (40, 1)), np.arange(40), seed=1, epoch=0)
    f = fields(recs)
    rng = np.random.default_rng(0)
    fr = np.sort(rng.integers(0, 97, (40, 2, 2)), axis=1).reshape(40, 4)[:, [0, 2, 1, 3]]
    fr[:, 2:] = np.maximum(fr[:, 2:], fr[:, :2] + 1)  # (ox0, oy0, ox1, oy1), non-empty
    got = np.empty((40, 5))
    _tile_boxes(f[0], f[1], f[2].astype(np.float64), f[7], fr, got)
    proj = 0
    for t in range(40):
        ft = (f[0][t : t + 1], f[1][t : t + 1], f[2][t : t + 1]) + (None,) * 4 + (f[7][t : t + 1],)
        want = source_boxes(ft, (fr[t, 3] - fr[t, 1], fr[t, 2] - fr[t, 0]))[0]
        rows = (recs[t]["A1"][2], recs[t]["A2"][0, 2])
        proj += any(r[0] != 0 or r[1] != 0 for r in rows)
        np.testing.assert_allclose(got[t, :4], want[:4], rtol=0, atol=1e-9)
        np.testing.assert_allclose(got[t, 4], want[4], rtol=0.05)
    assert proj > 30  # the perspective path was the one tested


def test_mosaic_fill_gaps_writes_exactly_the_uncovered_pixels():
    """``_fill_gaps`` writes the fill where no run lies and leaves every run's pixels alone
    (the tiles write those), for disjoint runs in any tile order within a sample."""
    from augpipe.targets.mosaic import _fill_gaps

    rng = np.random.default_rng(4)
    N, S, C = 3, 24, 3
    sample, frame, runs = [], [], []
    for j in range(N):
        for q in range(4):  # four tiles: quadrants around a random centre, in shuffled order
            xc, yc = 7 + j, 9 + 2 * j
            x0, x1 = (0, xc) if q % 2 == 0 else (xc, S)
            y0, y1 = (0, yc) if q < 2 else (yc, S)
            sample.append(j)
            frame.append([x0, y0, x1, y1])
            lo = rng.integers(0, max(x1 - x0, 1), y1 - y0)
            hi = np.minimum(lo + rng.integers(0, 6, y1 - y0), x1 - x0)
            runs.append((lo, hi))
    T = len(sample)
    lo_a, hi_a = np.zeros((T, S), np.int64), np.zeros((T, S), np.int64)
    for t, (lo, hi) in enumerate(runs):
        lo_a[t, : len(lo)], hi_a[t, : len(hi)] = lo, hi
    out = np.full((N, S, S * C), 7, np.uint8)  # 7: "a tile wrote this"
    _fill_gaps(out, np.uint8(114), np.array(sample), np.array(frame), lo_a, hi_a)
    want = np.full((N, S, S * C), 114, np.uint8)
    for t in range(T):
        x0, y0 = frame[t][:2]
        for y in range(frame[t][3] - y0):
            want[sample[t], y0 + y, (x0 + lo_a[t, y]) * C : (x0 + hi_a[t, y]) * C] = 7
    np.testing.assert_array_equal(out, want)
    assert (out == 7).any() and (out == 114).any()
