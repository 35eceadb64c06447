"""Masks sampled in the image's pass (``augpipe.targets.render``): the mask takes the source
pixel that contains the image's own sample point (an image whose pixels encode their column
and row says which one that was), values stay those of the source or the fill, an identity map
returns the mask, colour ops never touch it, and the result matches the separate nearest pass
(``warp_nearest``) except where a sample point lies on a pixel edge."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from augpipe import (
    Affine,
    CenterCrop,
    ColorJitter,
    Compose,
    HorizontalFlip,
    LensDistortion,
    ShardDataset,
)
from augpipe.format.pack import pack
from augpipe.ops.detection.hsv import HSVJitter
from augpipe.ops.detection.letterbox import Letterbox
from augpipe.ops.detection.random_scale import RandomScale
from augpipe.ops.fused import fields, render_item
from augpipe.targets.batch import TargetPipeline
from augpipe.targets.masks import mask_window
from tests.targets_fakes import add_crowd_rle, coco_dataset, draw
from tests.test_targets_masks import _blobs, _reference

SRC = (70, 90)
OUT = (48, 64)
GEOMETRY = {
    "rotation": Compose([CenterCrop(OUT), Affine(rotate=30, shear=6, translate=0.2,
                                                 stretch=(0.6, 1.5))]),
    "perspective": Compose([CenterCrop(OUT), Affine(rotate=10, perspective=0.008)]),
    "lens": Compose([CenterCrop(OUT), Affine(rotate=10), LensDistortion(k=(-0.2, 0.3), p=1.0)]),
    "flip": Compose([CenterCrop(OUT), Affine(translate=0.3), HorizontalFlip(p=1.0)]),
    "axis": Compose([CenterCrop(OUT), HorizontalFlip()]),
}  # fmt: skip


def _coordinate_image(h, w):
    """R = column, G = row, B = 200: a bilinear sample of it, rounded half up, is the pixel
    floor(x), floor(y) that contains the sample point (where all four taps are inside)."""
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = np.arange(w)[None]
    img[..., 1] = np.arange(h)[:, None]
    img[..., 2] = 200
    return img


@pytest.mark.parametrize("name", sorted(GEOMETRY))
def test_mask_takes_the_pixel_of_the_images_own_sample_point(name):
    pipe = GEOMETRY[name]
    img = _coordinate_image(*SRC)
    cols = np.ascontiguousarray(img[..., 0])  # mask planes: each pixel's column, its row
    rows = np.ascontiguousarray(img[..., 1])
    compared = 0
    for i in range(8):
        recs = pipe.sample_params([SRC], [i], seed=3, epoch=0)
        out = np.empty((1, *OUT, 3), np.uint8)
        mout = np.empty((2, *OUT), np.uint8)
        pad, y0, x0 = mask_window([(cols, 255), (rows, 255)], recs[0], OUT)
        render_item(img, False, fields(recs), 0, out, 0.0, mask=(pad, y0, x0, mout))
        plain = np.empty_like(out)
        render_item(img, False, fields(recs), 0, plain, 0.0)
        np.testing.assert_array_equal(out, plain)  # the mask leaves the image as it was
        inside = out[0, ..., 2] == 200  # all four bilinear taps inside the source
        compared += inside.sum()
        for c in range(2):
            d = mout[c][inside].astype(int) - out[0, ..., c][inside]
            # the rounding of the blend may tip only a point on a pixel edge
            assert np.abs(d).max() <= 1 and (d != 0).mean() < 0.002, (name, i, c)
        # pixels the image took wholly from the fill (no tap inside) have the mask's fill
        assert (mout[:, out[0, ..., 2] == 0] == 255).all()
    assert compared > 0.3 * 8 * OUT[0] * OUT[1]


def _packed(tmp_path, size, fmt, n=3, crowd=False):
    """A mask folder (semantic) or COCO (polygons, one crowd RLE) dataset of smooth images."""
    h, w = size
    root = tmp_path / "src"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        img = cv2.GaussianBlur(np.random.default_rng(i).random((h, w, 3)).astype(np.float32),
                               (0, 0), 3)  # fmt: skip
        cv2.imwrite(str(root / "images" / f"{i}.png"), (255 * img).astype(np.uint8))
        cv2.imwrite(str(root / "masks" / f"{i}.png"), _blobs((h, w), i, (0, 1, 3, 255)))
    out = tmp_path / "p"
    if crowd:
        from pycocotools import mask as mask_utils

        js = coco_dataset(tmp_path / "coco", n=n, size=size)
        m = np.zeros(size, np.uint8)
        m[h // 3 : h // 2, w // 5 : w // 2] = 1
        add_crowd_rle(js, 0, m)
        data = json.loads(js.read_text())  # a second RLE instance on image 0
        second = dict(data["annotations"][-1], id=998, iscrowd=0)
        m[:] = 0
        m[h // 2 : h - 3, w // 2 : w - 4] = 1
        rle = mask_utils.encode(np.asfortranarray(m))
        second["segmentation"] = {"size": list(size), "counts": rle["counts"].decode("ascii")}
        second["bbox"] = [float(v) for v in mask_utils.toBbox(rle)]
        data["annotations"].append(second)
        js.write_text(json.dumps(data))
        pack(None, out, coco=js, root=tmp_path / "coco" / "images", format=fmt, progress=False)
    else:
        pack(None, out, masks=root, format=fmt, keep_jpeg=fmt == "jpeg", progress=False)
    return ShardDataset(out)


def _tp(ds, pipe, same_pass=True):
    tp = TargetPipeline(pipe.bind(ds), ds)
    tp.same_pass = same_pass
    return tp


def _both(ds, pipe, idx, seed=1, epoch=0):
    """(same pass, separate pass) batches, and the default's (per sample: the same pass for
    two or more masks, a separate one for a lone mask)."""
    return tuple(_tp(ds, pipe, m).sample(ds, idx, seed, epoch) for m in (True, False, None))


PIPES = [
    Compose([Letterbox(64), RandomScale((0.5, 1.5)), Affine(rotate=10, translate=0.1, shear=5),
             HorizontalFlip(), HSVJitter()]),
    Compose([Letterbox(48), Affine(rotate=10, perspective=0.004)]),
    Compose([Letterbox(48), LensDistortion(k=(-0.2, 0.2), p=1.0), HorizontalFlip()]),
    Compose([Letterbox(40)]),
]  # fmt: skip


@pytest.mark.parametrize("fmt, size", [("raw", (60, 80)), ("jpeg", (300, 420))])
def test_same_pass_equals_the_separate_nearest_pass(tmp_path, fmt, size):
    """Raw records at full size, and JPEG records decoded at a reduced DCT scale (and
    box-filtered where the map shrinks more than 2x): the same images, the same masks but
    where the float64 map puts a point within rounding of a pixel edge."""
    ds = _packed(tmp_path, size, fmt)
    idx = np.arange(len(ds))
    for pipe in PIPES:
        for epoch in range(2):
            (im_a, t_a), (im_b, t_b), (im_c, t_c) = _both(ds, pipe, idx, epoch=epoch)
            np.testing.assert_array_equal(im_a, im_b)
            np.testing.assert_array_equal(im_c, im_b)
            np.testing.assert_array_equal(t_c["masks"], t_b["masks"])  # a lone mask: its own
            differ = t_a["masks"] != t_b["masks"]
            assert differ.mean() < 0.002
            recs = pipe.bind(ds).sample_params(np.asarray(ds.sizes), idx, 1, epoch)
            H, W = t_a["masks"].shape[1:]
            for b in np.flatnonzero(differ.any(axis=(1, 2))):
                _, edge = _reference(ds.targets(int(b)).semantic, recs[b], (H, W), 255)
                assert (edge[differ[b]] < 2e-3).all()
            assert set(np.unique(t_a["masks"])) <= {0, 1, 3, 255}


def test_the_default_samples_masks_in_the_image_pass(tmp_path):
    ds = _packed(tmp_path, (60, 80), "raw")
    idx = np.arange(len(ds))
    pipe = PIPES[0]
    _, t_d = TargetPipeline(pipe.bind(ds), ds).sample(ds, idx, 1, 0)
    (_, t_a), (_, t_b), _ = _both(ds, pipe, idx)
    np.testing.assert_array_equal(t_d["masks"], t_a["masks"])
    assert TargetPipeline.same_pass is True


def test_instance_masks_and_boxes_in_the_same_pass(tmp_path):
    pytest.importorskip("pycocotools")
    ds = _packed(tmp_path, (48, 64), "raw", n=3, crowd=True)
    t = ds.targets(0)
    assert sum(r is not None for r in t.rle) == 2  # two masks: the default fuses them
    for pipe in PIPES[:3]:
        (im_a, t_a), (im_b, t_b), (im_c, t_c) = _both(ds, pipe, np.arange(3), epoch=2)
        np.testing.assert_array_equal(im_a, im_b)
        for k in ("boxes", "instance_map"):
            np.testing.assert_array_equal(t_a[k], t_b[k])
            np.testing.assert_array_equal(t_c[k], t_a[k])
        n0 = t_a["offsets"][1]
        assert set(np.unique(t_a["instance_map"][0])) <= set(range(n0 + 1))


def test_identity_and_flip_return_the_mask_exactly(tmp_path):
    ds = _packed(tmp_path, (40, 56), "raw")
    masks = np.stack([ds.targets(i).semantic for i in range(3)])
    for mode in (True, None):
        _, t = _tp(ds, Compose([CenterCrop((40, 56))]), mode).sample(ds, np.arange(3))
        np.testing.assert_array_equal(t["masks"], masks)
        for pipe in (Compose([CenterCrop((40, 56)), HorizontalFlip(p=1.0)]),
                     Compose([CenterCrop((40, 56)), Affine(rotate=(180, 180))])):  # fmt: skip
            _, t = _tp(ds, pipe, mode).sample(ds, np.arange(3))
            want = masks[:, :, ::-1] if "Flip" in repr(pipe) else masks[:, ::-1, ::-1]
            np.testing.assert_array_equal(t["masks"], want)


def test_colour_ops_never_touch_the_mask(tmp_path):
    ds = _packed(tmp_path, (60, 80), "raw")
    geo = [Letterbox(48), Affine(rotate=15, translate=0.1)]
    plain = Compose(geo)
    coloured = Compose(geo + [ColorJitter(0.5, 0.5, 0.5), HSVJitter()])
    idx = np.arange(3)
    im_a, t_a = _tp(ds, plain).sample(ds, idx, seed=2)
    im_b, t_b = _tp(ds, coloured).sample(ds, idx, seed=2)
    assert (im_a != im_b).mean() > 0.5  # the colour ops did change the image
    np.testing.assert_array_equal(t_a["masks"], t_b["masks"])
    np.testing.assert_array_equal(t_a["boxes"], t_b["boxes"])


def test_mask_values_are_the_sources_or_the_fill(tmp_path):
    ds = _packed(tmp_path, (50, 50), "raw")
    for pipe in PIPES:
        _, t = _tp(ds, pipe).sample(ds, np.arange(3), epoch=3)
        assert set(np.unique(t["masks"])) <= {0, 1, 3, 255}
    img = draw(30, 30, [[5, 5, 20, 20]], 0)
    m = np.full((30, 30), 7, np.uint8)
    recs = GEOMETRY["rotation"].sample_params([(30, 30)], [0], seed=0, epoch=0)
    mout = np.empty((2, *OUT), np.uint8)
    pad, y0, x0 = mask_window([(m, 255), (m, 0)], recs[0], OUT)
    render_item(img, False, fields(recs), 0, np.empty((1, *OUT, 3), np.uint8), 0.0,
                mask=(pad, y0, x0, mout))  # fmt: skip
    assert set(np.unique(mout[0])) == {7, 255} and set(np.unique(mout[1])) == {0, 7}
    np.testing.assert_array_equal(mout[0] == 255, mout[1] == 0)  # one footprint, two fills


@pytest.mark.parametrize("same_pass", [True, False])
def test_augmix_is_refused_with_targets(tmp_path, same_pass):
    from augpipe.errors import ConfigError
    from augpipe.ops.policies.strings import policy_from_string

    ds = _packed(tmp_path, (60, 80), "raw")
    pipe = Compose([Letterbox(48), policy_from_string("augmix-m5-w4-d2")])
    with pytest.raises(ConfigError, match="AugMix"):
        _tp(ds, pipe, same_pass).sample(ds, np.arange(len(ds)), 1, 0)
