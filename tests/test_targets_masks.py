"""Semantic masks: the row-run encoding, the nearest warp against a float64 reference, older
PNG records, damaged mask data; and Mosaic's tiles (pixels against a per-tile reference,
boxes in their tile)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from augpipe import Affine, CenterCrop, Compose, HorizontalFlip, LensDistortion, ShardDataset
from augpipe.errors import DatasetError
from augpipe.format.pack import pack
from augpipe.ops.detection.letterbox import Letterbox
from augpipe.ops.detection.mosaic import Mosaic
from augpipe.ops.detection.random_scale import RandomScale
from augpipe.targets import layout, maskcode
from augpipe.targets.batch import TargetPipeline
from augpipe.targets.core import Targets
from augpipe.targets.forward import source_map
from augpipe.targets.masks import warp_nearest
from tests.targets_fakes import draw

SRC = (70, 90)
OUT = (48, 64)
PIPES = [
    Compose([CenterCrop(OUT), Affine(rotate=25, shear=6, translate=0.2, stretch=(0.5, 1.6)),
             HorizontalFlip()]),
    Compose([CenterCrop(OUT), Affine(rotate=10), LensDistortion(k=(-0.2, 0.3), p=1.0)]),
    Compose([CenterCrop(OUT), Affine(rotate=10, perspective=0.008), HorizontalFlip()]),
]  # fmt: skip


def _blobs(shape, seed, values=(0, 2, 5, 9)):
    rng = np.random.default_rng(seed)
    n = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 3)
    return np.asarray(values, np.uint8)[np.digitize(n, np.quantile(n, [0.3, 0.5, 0.8]))]


def _reference(src, rec, out_hw, fill):
    """Nearest sampling in float64 NumPy, straight from the record; and how close each
    sample point is to a source pixel edge (where rounding may pick either pixel)."""
    H, W = out_hw
    Y, X = np.mgrid[0:H, 0:W] + 0.5
    X, Y = X - W / 2, Y - H / 2
    A1, A2, k = np.asarray(rec["A1"], np.float64), source_map(rec), float(rec["k"])
    q1 = A1[2, 0] * X + A1[2, 1] * Y + A1[2, 2]
    u = (A1[0, 0] * X + A1[0, 1] * Y + A1[0, 2]) / q1
    v = (A1[1, 0] * X + A1[1, 1] * Y + A1[1, 2]) / q1
    s = 1 + k * (u * u + v * v) / ((W / 2) ** 2 + (H / 2) ** 2)
    u, v = u * s, v * s
    q2 = A2[2, 0] * u + A2[2, 1] * v + A2[2, 2]
    x = (A2[0, 0] * u + A2[0, 1] * v + A2[0, 2]) / q2
    y = (A2[1, 0] * u + A2[1, 1] * v + A2[1, 2]) / q2
    h, w = src.shape
    inside = (q1 > 0) & (q2 > 0) & (x >= 0) & (y >= 0) & (x < w) & (y < h)
    out = np.full(out_hw, fill, np.uint8)
    out[inside] = src[y[inside].astype(int), x[inside].astype(int)]
    edge = np.minimum(np.abs(x - np.round(x)), np.abs(y - np.round(y)))
    return out, edge


def test_row_runs_round_trip_and_regions():
    rng = np.random.default_rng(0)
    for shape in [(40, 57), (1, 70000), (3, 0), (5, 1)]:
        m = _blobs(shape, 1) if 0 not in shape and shape[0] > 1 else rng.integers(0, 3, shape)
        m = np.asarray(m, np.uint8)
        if shape == (1, 70000):
            m[:] = 4  # one run longer than a uint16 holds: split
        runs = maskcode.decode(maskcode.encode(m), shape)
        np.testing.assert_array_equal(runs.array(), m)
    m = _blobs((40, 57), 2)
    runs = maskcode.RowRuns.from_array(m)
    out = np.zeros((12, 22), np.uint8)
    maskcode.expand_rows(runs.row_start, runs.lengths, runs.values, 5, 17, 30, 50, out, 1)
    np.testing.assert_array_equal(out[:, 1:21], m[5:17, 30:50])
    assert (out[:, [0, 21]] == 0).all()  # columns outside the window untouched


def test_nearest_warp_equals_a_float64_reference():
    m = _blobs(SRC, 3)
    runs = maskcode.RowRuns.from_array(m)
    for pipe in PIPES:
        for i in range(6):
            rec = pipe.sample_params([SRC], [i], seed=2, epoch=0)[0]
            want, edge = _reference(m, rec, OUT, 255)
            dense = warp_nearest(m, rec, OUT, 255)
            np.testing.assert_array_equal(warp_nearest(runs, rec, OUT, 255), dense)
            differ = dense != want
            assert not differ[edge > 1e-6].any()  # only a point on a pixel edge may round
            assert set(np.unique(dense)) <= set(np.unique(m)) | {255}


def test_damaged_mask_data_is_reported():
    m = _blobs((30, 40), 4)
    good = maskcode.encode(m)
    body = m.shape[0] * 4 + 4
    cases = [good[:-3], good + b"\0", b"XRR1" + good[4:], good[:30] + bytes([good[30] ^ 0xFF])
             + good[31:]]  # fmt: skip
    stored = bytearray(maskcode.HEAD.pack(maskcode.MAGIC, 30, 40, 0, 0))
    runs = maskcode.RowRuns.from_array(m)
    raw = runs.row_start.tobytes() + runs.lengths.tobytes() + runs.values.tobytes()
    stored[12:16] = len(runs.lengths).to_bytes(4, "little")
    tampered = bytearray(raw)
    tampered[body] ^= 0x01  # a run length: its row no longer adds up to W
    cases.append(bytes(stored) + bytes(tampered))
    for bad in cases:
        with pytest.raises(maskcode.MaskCodeError):
            maskcode.decode(bad, m.shape)
    with pytest.raises(maskcode.MaskCodeError, match="image"):
        maskcode.decode(good, (30, 41))
    t = Targets.empty(m.shape)
    t.semantic = m
    block = bytearray(layout.encode(t))
    block[-8] ^= 0xFF  # inside the deflated mask
    with pytest.raises(layout.TargetsBlockError):
        layout.decode(bytes(block), m.shape, check_crc=True)
    with pytest.raises(layout.TargetsBlockError, match="semantic"):
        layout.decode(bytes(block), m.shape, mask_runs=True)  # CRC unchecked: still refused


def _mask_folder(root, n=3, size=(36, 44)):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    masks = []
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"{i}.png"), draw(*size, [[4, 4, 30, 20]], i))
        m = _blobs(size, 10 + i, (0, 1, 2, 255))
        cv2.imwrite(str(root / "masks" / f"{i}.png"), m)
        masks.append(m)
    return masks


def _png_encode(mask):  # what datasets of format version 2 store
    return cv2.imencode(".png", np.ascontiguousarray(mask, np.uint8))[1].tobytes()


def test_version_2_png_masks_still_read_and_warp_the_same(tmp_path, monkeypatch):
    masks = _mask_folder(tmp_path / "seg")
    pack(None, tmp_path / "new", masks=tmp_path / "seg", format="raw", progress=False)
    with monkeypatch.context() as mp:
        mp.setattr(maskcode, "encode", _png_encode)
        pack(None, tmp_path / "old", masks=tmp_path / "seg", format="raw", progress=False)
    mf = tmp_path / "old" / "manifest.json"
    man = json.loads(mf.read_text())
    man["format_version"] = 2
    mf.write_text(json.dumps(man))
    old, new = ShardDataset(tmp_path / "old"), ShardDataset(tmp_path / "new")
    assert new.manifest["format_version"] == 3
    for i, m in enumerate(masks):
        np.testing.assert_array_equal(old.targets(i).semantic, m)
        np.testing.assert_array_equal(new.targets(i).semantic, m)
        assert isinstance(new.targets(i, mask_runs=True).semantic, maskcode.RowRuns)
        assert isinstance(old.targets(i, mask_runs=True).semantic, np.ndarray)
    pipe = Compose([Letterbox(64), RandomScale((0.6, 1.4)), Affine(rotate=12), HorizontalFlip()])
    a = TargetPipeline(pipe.bind(old), old).sample(old, np.arange(3), seed=1)
    b = TargetPipeline(pipe.bind(new), new).sample(new, np.arange(3), seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1]["masks"], b[1]["masks"])
    assert set(np.unique(b[1]["masks"])) <= {0, 1, 2, 255}


def test_a_damaged_mask_in_a_record_is_never_delivered(tmp_path):
    _mask_folder(tmp_path / "seg", n=1)
    out = tmp_path / "p"
    pack(None, out, masks=tmp_path / "seg", format="raw", progress=False)
    shard = out / "shard-00000.lmdb"
    data = bytearray(shard.read_bytes())
    pos = data.find(maskcode.MAGIC)
    data[pos + 24] ^= 0xFF
    shard.write_bytes(bytes(data))
    ds = ShardDataset(out)
    with pytest.raises(DatasetError, match="record 0's targets are damaged"):
        ds.targets(0)
    tp = TargetPipeline(Compose([Letterbox(32)]).bind(ds), ds)
    with pytest.raises(DatasetError, match="damaged"):
        tp.sample(ds, [0])


def _texture_dataset(tmp_path, sizes, masks=False):
    """Smooth random textures (every interpolation error shows), one box each, packed raw
    with boxes (COCO) or with semantic masks (mask folder)."""
    root = tmp_path / "src"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    images, anns = [], []
    for i, (h, w) in enumerate(sizes):
        img = cv2.GaussianBlur(np.random.default_rng(i).random((h, w, 3)).astype(np.float32),
                               (0, 0), 2)  # fmt: skip
        img = (255 * (img - img.min()) / (img.max() - img.min())).astype(np.uint8)
        cv2.imwrite(str(root / "images" / f"{i}.png"), img)
        cv2.imwrite(str(root / "masks" / f"{i}.png"), _blobs((h, w), i, (0, 1, 3, 255)))
        images.append({"id": i, "file_name": f"{i}.png", "height": h, "width": w})
        anns.append({"id": i, "image_id": i, "category_id": 1, "iscrowd": 0,
                     "bbox": [w / 4, h / 4, w / 2, h / 2]})  # fmt: skip
    js = tmp_path / "a.json"
    js.write_text(json.dumps({"images": images, "annotations": anns,
                              "categories": [{"id": 1, "name": "a"}]}))  # fmt: skip
    out = tmp_path / "p"
    if masks:
        pack(None, out, masks=root, format="raw", progress=False)
    else:
        pack(None, out, coco=js, root=root / "images", format="raw", progress=False)
    return ShardDataset(out)


def _mosaic_reference(tp, ds, indices, seed, epoch, sem=False):
    """Each tile rendered over the whole output frame by the ordinary kernel (its record:
    canvas -> image q before the sample's map), kept where the output pixel's canvas point lies
    on the tile: the definition the sub-frame path must reproduce."""
    from augpipe.ops.detection.mosaic import placements
    from augpipe.ops.fused import render

    pipe = tp.pipeline
    mos = pipe._size_op
    S = mos.size
    recs = pipe.sample_params(np.tile(mos.canvas_hw, (len(indices), 1)), indices, seed, epoch)
    partners, centres = mos.layout(indices, len(ds), seed, epoch, pipe.ops.index(mos))
    sizes = np.asarray(ds.sizes)
    out = np.full((len(indices), S, S, 3), mos.fill, np.uint8)
    masks = np.full((len(indices), S, S), 255, np.uint8)
    interior = np.ones((len(indices), S, S), bool)
    on_edge = np.zeros((len(indices), S, S), bool)
    Y, X = np.mgrid[0:S, 0:S] + 0.5 - S / 2
    for j, rec in enumerate(recs):
        inner = interior[j]
        M = source_map(rec) @ rec["A1"]
        cq = M[2, 0] * X + M[2, 1] * Y + M[2, 2]
        cx = (M[0, 0] * X + M[0, 1] * Y + M[0, 2]) / cq
        cy = (M[1, 0] * X + M[1, 1] * Y + M[1, 2]) / cq
        for q, (x0, y0, x1, y1) in enumerate(placements(sizes[partners[j]], centres[j], S)[0]):
            iq = int(partners[j, q])
            h, w = sizes[iq]
            sub = rec.copy()
            C = np.array([[w / (x1 - x0), 0, -x0 * w / (x1 - x0)],
                          [0, h / (y1 - y0), -y0 * h / (y1 - y0)], [0, 0, 1]])  # fmt: skip
            sub["A2"][0] = C @ sub["A2"][0]
            sub["src_hw"] = (h, w)
            tile = np.empty((1, S, S, 3), np.uint8)
            render(ds.image(iq), False, sub, tile, float(mos.fill))
            on = ((cx >= max(x0, 0)) & (cx < min(x1, 2 * S)) & (cy >= max(y0, 0))
                  & (cy < min(y1, 2 * S)))  # fmt: skip
            out[j][on] = tile[0][on]
            # where bilinear sampling reads past the image's edge: the whole-frame render
            # blends with the fill there, a sub-frame inside the image may replicate the edge
            m = 1.5 * max((x1 - x0) / w, (y1 - y0) / h)
            inner &= ~on | ((cx >= x0 + m) & (cx < x1 - m) & (cy >= y0 + m) & (cy < y1 - m))
            if sem:
                m, edge = _reference(ds.targets(iq).semantic, sub, (S, S), 255)
                masks[j][on] = m[on]
                on_edge[j] |= on & (edge < 1e-6)
    return out, masks, interior, on_edge


MOSAIC_PIPES = [
    Compose([Mosaic(48)]),
    Compose([Mosaic(48), RandomScale((0.8, 1.5)), Affine(rotate=10, translate=0.1, shear=5),
             HorizontalFlip()]),
    Compose([Mosaic(48), RandomScale((0.8, 1.5)), Affine(rotate=10, perspective=0.003)]),
]  # fmt: skip


def test_mosaic_images_equal_the_per_tile_reference(tmp_path):
    ds = _texture_dataset(tmp_path, [(40, 60), (64, 32), (50, 50), (30, 64), (52, 44)])
    idx = np.arange(5)
    for pipe in MOSAIC_PIPES:
        tp = TargetPipeline(pipe.bind(ds), ds)
        for epoch in range(3):
            images, _ = tp.sample(ds, idx, seed=4, epoch=epoch)
            want, _, inner, _ = _mosaic_reference(tp, ds, idx, 4, epoch)
            d = np.abs(images.astype(int) - want).max(axis=3)
            # the sub-frame shifts A1's translation, which the kernel rounds in float32: at
            # most one level on a few pixels. (Not tested: a tile shrunk more than 2x, whose
            # box filter's blocks start at its sub-frame's region, not the whole frame's.)
            assert d[inner].max() <= 1 and (d[inner] > 0).mean() < 0.05
            assert inner.mean() > 0.8


def test_mosaic_semantic_masks_equal_the_reference_and_keep_values(tmp_path):
    ds = _texture_dataset(tmp_path, [(40, 60), (64, 32), (50, 50)], masks=True)
    idx = np.arange(3)
    for pipe in MOSAIC_PIPES:
        tp = TargetPipeline(pipe.bind(ds), ds)
        for epoch in range(3):
            _, t = tp.sample(ds, idx, seed=5, epoch=epoch)
            _, want, _, on_edge = _mosaic_reference(tp, ds, idx, 5, epoch, sem=True)
            differ = t["masks"] != want
            assert not differ[~on_edge].any()  # only a point on a pixel edge may round
            assert set(np.unique(t["masks"])) <= {0, 1, 3, 255}


def test_mosaic_cuts_targets_at_their_tile():
    from augpipe.targets.mosaic import _canvas_targets

    kp = np.array([[[5, 5, 2]], [[39, 5, 2]]], np.float64)
    t = Targets([[-4, 2, 10, 8], [30, 0, 50, 10]], [0, 1], (20, 40), keypoints=kp)
    rect = np.array([10.0, 10.0, 40.0, 30.0])  # the canvas shows x in [10, 40), y in [10, 30)
    c = _canvas_targets([(t, (2.0, 2.0, 0.0, 10.0), rect)], (64, 64), 1)
    # image pixels / 2 + (0, 10): boxes (-2, 11, 5, 14) and (15, 10, 25, 15), cut at the rect
    np.testing.assert_allclose(c.boxes, [[10, 11, 10, 14], [15, 10, 25, 15]])
    assert c.keypoints[:, 0, 2].tolist() == [0, 2]  # (2.5, 12.5) lies left of the tile


def test_mosaic_boxes_stay_in_their_tile(tmp_path):
    root = tmp_path / "im"
    root.mkdir()
    sizes = [(40, 60), (64, 32), (50, 50), (30, 64)]
    images, anns = [], []
    for i, (h, w) in enumerate(sizes):
        cv2.imwrite(str(root / f"{i}.png"), np.full((h, w, 3), 40 + 50 * i, np.uint8))
        images.append({"id": i, "file_name": f"{i}.png", "height": h, "width": w})
        for k in range(3):  # boxes anywhere in the image, some at its edges
            x0, y0 = k * w / 4, k * h / 5
            anns.append({"id": 10 * i + k, "image_id": i, "category_id": i, "iscrowd": 0,
                         "bbox": [x0, y0, w / 2, h / 2]})  # fmt: skip
    cats = [{"id": i, "name": f"c{i}"} for i in range(4)]
    (tmp_path / "a.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                 "categories": cats}))  # fmt: skip
    pack(None, tmp_path / "p", coco=tmp_path / "a.json", root=root, format="raw", progress=False)
    ds = ShardDataset(tmp_path / "p")
    S = 64
    pipe = Compose([Mosaic(S), RandomScale((0.8, 1.4)), Affine(rotate=10, translate=0.1),
                    HorizontalFlip()])  # fmt: skip
    tp = TargetPipeline(pipe.bind(ds), ds)
    seen = 0
    for epoch in range(8):
        images, t = tp.sample(ds, np.arange(4), seed=7, epoch=epoch)
        for j in range(len(t["boxes"])):
            x0, y0, x1, y1 = t["boxes"][j]
            assert 0 <= x0 < x1 <= S and 0 <= y0 < y1 <= S
            if x1 - x0 < 4 or y1 - y0 < 4 or min(x0, y0) <= 0 or max(x1, y1) >= S:
                continue  # (a box cut by the frame has its centre moved)
            # a box's centre is the centre of its (tile-cut) rectangle: on its own image,
            # nearer its colour than any other's (edge pixels blend)
            b = int(t["batch_idx"][j])
            cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
            assert abs(int(images[b, cy, cx, 0]) - (40 + 50 * int(t["labels"][j]))) < 25
            seen += 1
    assert seen > 15


def test_mosaic_runs_are_exactly_the_pixels_on_the_tile():
    from augpipe.targets.mosaic import _runs

    rng = np.random.default_rng(11)
    S, h, w, oy0, ox0 = 64.0, 40, 50, 5, 7
    rect = (20.0, 15.0, 70.0, 60.0)
    for trial in range(40):
        M = np.eye(3)
        M[:2, :2] = rng.normal(0, 1, (2, 2)) + 2 * np.eye(2)
        M[:2, 2] = rng.uniform(30, 50, 2)
        if trial % 2:  # a perspective row; some put the horizon across the sub-frame
            M[2, :2] = rng.normal(0, 0.03, 2)
        lo, hi = np.empty(h, np.int64), np.empty(h, np.int64)
        _runs(M, S, oy0, ox0, h, w, *rect, lo, hi)
        Y, X = np.mgrid[oy0 : oy0 + h, ox0 : ox0 + w] + 0.5 - S / 2
        q = M[2, 0] * X + M[2, 1] * Y + M[2, 2]
        px = (M[0, 0] * X + M[0, 1] * Y + M[0, 2]) / q
        py = (M[1, 0] * X + M[1, 1] * Y + M[1, 2]) / q
        on = (q > 0) & (px >= rect[0]) & (px < rect[2]) & (py >= rect[1]) & (py < rect[3])
        cols = np.arange(w)
        np.testing.assert_array_equal((cols >= lo[:, None]) & (cols < hi[:, None]), on)
