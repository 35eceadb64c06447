"""Targets in the record: the binary block, packing COCO / YOLO / VOC / mask folders, the
bad-annotation rule, reading back, inspect, and older datasets still reading."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from augpipe import ShardDataset
from augpipe.errors import DatasetError, UserError
from augpipe.format import record
from augpipe.format.pack import pack
from augpipe.targets import layout
from augpipe.targets.core import Targets, rle_decode, rle_encode, rle_from_string
from tests.targets_fakes import add_crowd_rle, coco_dataset, draw


def _targets(m=3, k=2, seed=0, size=(20, 30)):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 10, (m, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 9, (m, 2))], axis=1)
    mask = np.zeros(size, np.uint8)
    mask[3:9, 4:17] = 1
    t = Targets(boxes, rng.integers(0, 4, m), size, iscrowd=[True] + [False] * (m - 1),
                keypoints=rng.uniform(0, 20, (m, k, 3)), rle=[rle_encode(mask)] + [None] * (m - 1),
                semantic=rng.integers(0, 5, size).astype(np.uint8))  # fmt: skip
    return t.with_polygons([[rng.uniform(0, 20, (4, 2)), rng.uniform(0, 20, (5, 2))], [], []])


def test_block_round_trip_all_fields():
    t = _targets()
    u = layout.decode(layout.encode(t), t.size, check_crc=True)
    np.testing.assert_array_equal(u.boxes, t.boxes)
    np.testing.assert_array_equal(u.labels, t.labels)
    np.testing.assert_array_equal(u.iscrowd, t.iscrowd)
    np.testing.assert_array_equal(u.keypoints, t.keypoints)
    np.testing.assert_array_equal(u.semantic, t.semantic)
    assert [len(r) for r in u.rings(0)] == [4, 5] and u.rings(1) == []
    np.testing.assert_allclose(u.rings(0)[1], t.rings(0)[1].astype(np.float32))
    np.testing.assert_array_equal(u.instance_mask(0), t.instance_mask(0))
    assert u.rle[1] is None


def test_empty_block_gives_zero_by_four():
    u = layout.decode(layout.encode(Targets.empty((5, 6))), (5, 6))
    assert u.boxes.shape == (0, 4) and u.labels.shape == (0,)


def test_plain_box_block_round_trip_and_its_rle_index_checked():
    """A block of boxes only takes the reader's short path: the same fields as written, the
    types the general path gives, and a damaged RLE index is still refused."""
    t = Targets.from_boxes([[1.5, 2, 9, 12.25], [0, 0, 3, 4], [5, 5, 6, 7]], [2, 0, 7], (20, 30),
                           iscrowd=[False, True, False])  # fmt: skip
    b = layout.encode(t)
    u = layout.decode(b, (20, 30), check_crc=True)
    np.testing.assert_array_equal(u.boxes, t.boxes)
    np.testing.assert_array_equal(u.labels, t.labels)
    np.testing.assert_array_equal(u.iscrowd, t.iscrowd)
    assert (u.boxes.dtype, u.labels.dtype, u.iscrowd.dtype) == (np.float32, np.int64, bool)
    assert u.keypoints is None and u.semantic is None and u.rle == [None] * 3
    assert len(u.ring_inst) == 0 and u.rings(0) == [] and u.size == (20, 30)
    bad = bytearray(b)
    bad[-2] ^= 0x01  # inside the RLE start index (the block's last field here)
    with pytest.raises(layout.TargetsBlockError, match="RLE index"):
        layout.decode(bytes(bad), (20, 30))


def test_damaged_block_is_reported():
    b = bytearray(layout.encode(_targets()))
    b[40] ^= 0xFF
    with pytest.raises(layout.TargetsBlockError, match="CRC32"):
        layout.decode(bytes(b), (20, 30), check_crc=True)
    with pytest.raises(layout.TargetsBlockError, match="bytes"):
        layout.decode(bytes(b[:-3]), (20, 30))


def test_record_flag_and_payload_boundaries():
    block = layout.encode(_targets())
    v = record.encode(3, -1, 20, 30, "raw", b"\1" * 1800, targets=block)
    head = record.decode_header(v)
    assert head.flags == record.FLAG_TARGETS and head.length == 1800
    assert record.check_crc(v, head)
    assert bytes(record.targets_block(v, head)) == block
    plain = record.encode(3, 0, 20, 30, "raw", b"\1" * 1800)
    assert record.targets_block(plain, record.decode_header(plain)) is None


def test_rle_compressed_string_matches_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(1)
    m = (rng.random((37, 53)) > 0.7).astype(np.uint8)
    m[5:30, 10:40] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    counts = rle_from_string(rle["counts"])
    np.testing.assert_array_equal(rle_decode(counts, (37, 53)), m)
    np.testing.assert_array_equal(counts, rle_encode(m))


def test_coco_pack_round_trip(tmp_path):
    js = coco_dataset(tmp_path / "coco")
    crowd = np.zeros((48, 64), np.uint8)
    crowd[20:30, 2:12] = 1
    pytest.importorskip("pycocotools")
    add_crowd_rle(js, 1, crowd)
    out = tmp_path / "out"
    rep = pack(None, out, coco=js, root=tmp_path / "coco" / "images", format="raw",
               progress=False)  # fmt: skip
    assert rep.packed == 4
    ds = ShardDataset(out)
    assert ds.classes == ["car", "person"]  # sorted by id (5, 9), renumbered 0, 1
    info = ds.target_info
    assert [c["id"] for c in info["categories"]] == [5, 9]
    assert info["skeleton"] == [[0, 1], [1, 2]] and info["flip_idx"] == [1, 0, 2]
    t = ds.targets(0)
    np.testing.assert_array_equal(t.boxes, [[4, 6, 24, 30], [30, 10, 50, 40]])  # xywh -> xyxy
    np.testing.assert_array_equal(t.labels, [1, 0])
    np.testing.assert_array_equal(t.keypoints[0], [[6, 9, 2], [22, 9, 2], [0, 0, 0]])
    np.testing.assert_array_equal(t.rings(1)[0], [[30, 10], [50, 10], [50, 40], [30, 40]])
    t1 = ds.targets(1)
    assert t1.iscrowd.tolist() == [False, False, True]
    np.testing.assert_array_equal(t1.instance_mask(2), crowd)
    img, tt = ds[3]  # the image without annotations: kept, empty targets
    assert img.shape == (48, 64, 3) and tt.boxes.shape == (0, 4)
    assert info["counts"]["boxes"] == [4, 3] and info["counts"]["points"] == [0, 6]
    assert info["max_instances"] == 3
    problems = (out / "annotations.tsv").read_text()
    assert "im3.png\tno annotations" in problems


def test_pack_downscale_scales_targets(tmp_path):
    js = coco_dataset(tmp_path / "coco", n=2)
    out = tmp_path / "out"
    pack(None, out, coco=js, root=tmp_path / "coco" / "images", max_side=32, progress=False)
    ds = ShardDataset(out)
    assert tuple(ds.sizes[0]) == (24, 32)
    np.testing.assert_allclose(ds.targets(0).boxes, np.array([[4, 6, 24, 30], [30, 10, 50, 40]])
                               / 2)  # fmt: skip
    np.testing.assert_allclose(ds.targets(0).keypoints[0, 0], [3, 4.5, 2])


def test_bad_annotation_rule_and_report(tmp_path):
    js = coco_dataset(tmp_path / "coco", n=2)
    data = json.loads(js.read_text())
    data["annotations"] += [
        {"id": 50, "image_id": 100, "category_id": 77, "bbox": [1, 1, 5, 5]},  # unknown category
        {"id": 51, "image_id": 100, "category_id": 5, "bbox": [60, 40, 10, 20]},  # clipped
        {"id": 52, "image_id": 100, "category_id": 5, "bbox": [70, 50, 5, 5]},  # outside: dropped
        {"id": 53, "image_id": 100, "category_id": 5, "bbox": [2, 2, 4, 4],
         "segmentation": [[2, 2, 6, 2]]},  # degenerate polygon: box kept
    ]  # fmt: skip
    js.write_text(json.dumps(data))
    out = tmp_path / "out"
    rep = pack(None, out, coco=js, root=tmp_path / "coco" / "images", progress=False)
    t = ShardDataset(out).targets(0)
    np.testing.assert_array_equal(t.boxes[2:], [[60, 40, 64, 48], [2, 2, 6, 6]])
    assert t.rings(3) == []
    lines = (out / "annotations.tsv").read_text().splitlines()[1:]
    text = "\n".join(lines)
    for what in ("unknown category_id 77", "clipped to the image", "no area inside",
                 "degenerate polygon"):  # fmt: skip
        assert what in text
    assert rep.annotation_problems == len(lines) == 5  # + image 1 has no annotations


def test_image_size_disagreeing_with_annotations_is_skipped(tmp_path):
    js = coco_dataset(tmp_path / "coco", n=2)
    data = json.loads(js.read_text())
    data["images"][0]["height"] = 30
    js.write_text(json.dumps(data))
    out = tmp_path / "out"
    rep = pack(None, out, coco=js, root=tmp_path / "coco" / "images", progress=False)
    assert rep.packed == 1 and "annotations are for 30x64" in rep.skipped[0][1]


def test_yolo_round_trip(tmp_path):
    root = tmp_path / "yolo"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "train" / "a.png"), draw(40, 80, [[8, 4, 40, 24]], 0))
    cv2.imwrite(str(root / "images" / "train" / "b.png"), draw(40, 80, [], 1))
    (root / "labels" / "train" / "a.txt").write_text(
        "1 0.3 0.35 0.4 0.5\n0 0.5 0.5 0.75 0.5 0.75 0.75\nbad line\n3 0.5 0.5 0.1 0.1\n"
    )
    (root / "classes.txt").write_text("cat\ndog\n")
    out = tmp_path / "out"
    pack(None, out, yolo=root, progress=False)
    ds = ShardDataset(out)
    assert ds.classes == ["cat", "dog"]
    t = ds.targets(0)
    np.testing.assert_allclose(t.boxes, [[8, 4, 40, 24], [40, 20, 60, 30]], atol=1e-5)
    np.testing.assert_allclose(t.rings(1)[0], [[40, 20], [60, 20], [60, 30]], atol=1e-5)
    assert ds.targets(1).boxes.shape == (0, 4)
    text = (out / "annotations.tsv").read_text()
    assert "line 3" in text and "unknown class 3" in text


def test_voc_is_one_based(tmp_path):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    cv2.imwrite(str(root / "JPEGImages" / "x.jpg"), draw(30, 40, [[5, 6, 20, 25]], 0))
    (root / "Annotations" / "x.xml").write_text(
        "<annotation><filename>x.jpg</filename><size><width>40</width><height>30</height>"
        "<depth>3</depth></size><object><name>dog</name><difficult>1</difficult><bndbox>"
        "<xmin>6</xmin><ymin>7</ymin><xmax>20</xmax><ymax>25</ymax></bndbox></object>"
        "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>40</xmax>"
        "<ymax>30</ymax></bndbox></object></annotation>")  # fmt: skip
    out = tmp_path / "out"
    pack(None, out, voc=root, progress=False)
    ds = ShardDataset(out)
    t = ds.targets(0)
    assert ds.classes == ["cat", "dog"]
    # pixels xmin..xmax (1-based, inclusive) cover the edge interval [xmin - 1, xmax)
    np.testing.assert_array_equal(t.boxes, [[5, 6, 20, 25], [0, 0, 40, 30]])
    assert t.iscrowd.tolist() == [True, False]  # difficult -> ignore region


def test_mask_folder(tmp_path):
    root = tmp_path / "seg"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    m = np.zeros((24, 32), np.uint8)
    m[4:10, 5:20] = 2
    m[15:, :] = 255
    cv2.imwrite(str(root / "images" / "a.png"), draw(24, 32, [], 0))
    cv2.imwrite(str(root / "masks" / "a.png"), m)
    cv2.imwrite(str(root / "images" / "b.png"), draw(24, 32, [], 1))  # no mask: listed
    out = tmp_path / "out"
    pack(None, out, masks=root, progress=False)
    ds = ShardDataset(out)
    assert len(ds) == 1 and ds.classes == ["0", "1", "2"]
    np.testing.assert_array_equal(ds.targets(0).semantic, m)
    assert ds.target_info["counts"]["pixels"] == [int((m == 0).sum()), 0, int((m == 2).sum())]
    assert "no mask" in (out / "annotations.tsv").read_text()


def test_inspect_counts_and_verify(tmp_path):
    js = coco_dataset(tmp_path / "coco", n=3)
    out = tmp_path / "out"
    pack(None, out, coco=js, root=tmp_path / "coco" / "images", format="raw", progress=False)
    run = [sys.executable, "-m", "augpipe", "inspect", str(out)]
    s = json.loads(subprocess.run(run + ["--json", "--verify"], capture_output=True,
                                  check=True, text=True).stdout)  # fmt: skip
    assert s["verify"]["ok"]
    assert s["targets"]["per_class"]["person"] == {"boxes": 2, "masks": 2, "points": 4}
    text = subprocess.run(run, capture_output=True, check=True, text=True).stdout
    assert "person: 2 / 2 / 4" in text
    shard = out / "shard-00000.lmdb"
    data = bytearray(shard.read_bytes())
    pos = data.find(layout.MAGIC)
    data[pos + 40] ^= 0xFF  # a byte inside the first targets block
    shard.write_bytes(bytes(data))
    r = subprocess.run(run + ["--verify"], capture_output=True, text=True)
    assert r.returncode == 1 and "record 0: targets: targets block CRC32 mismatch" in r.stderr


def test_version_1_datasets_still_read(tiny_packed, tmp_path):
    d = tmp_path / "v1"
    shutil.copytree(tiny_packed, d)
    m = json.loads((d / "manifest.json").read_text())
    m["format_version"] = 1
    (d / "manifest.json").write_text(json.dumps(m))
    ds = ShardDataset(d)
    assert not ds.has_targets and ds.image(0).shape[2] == 3
    with pytest.raises(DatasetError, match="no targets"):
        ds.targets(0)


def test_cli_pack_coco_and_errors(tmp_path):
    js = coco_dataset(tmp_path / "coco", n=2)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "augpipe", "pack", "--coco", str(js), "--root",
           str(tmp_path / "coco" / "images"), "--no-progress"]  # fmt: skip
    r = subprocess.run(cmd + [str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "annotation problem" in r.stderr
    r = subprocess.run(cmd + ["x", str(tmp_path / "o2")], capture_output=True, text=True)
    assert r.returncode == 2 and "expected just OUT" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(UserError, match="one annotation source"):
        pack(None, tmp_path / "o3", coco=js, yolo=tmp_path, progress=False)


def test_shuffled_pack_keeps_each_images_targets(tmp_path):
    js = coco_dataset(tmp_path / "coco", n=5)
    root = tmp_path / "coco" / "images"
    pack(None, tmp_path / "a", coco=js, root=root, format="raw", progress=False)
    pack(None, tmp_path / "b", coco=js, root=root, format="raw", shuffle_seed=3, progress=False)
    a, b = ShardDataset(tmp_path / "a"), ShardDataset(tmp_path / "b")
    by_pixels = {a.image(i).tobytes(): i for i in range(len(a))}
    assert [by_pixels[b.image(i).tobytes()] for i in range(len(b))] != list(range(len(b)))
    for i in range(len(b)):
        j = by_pixels[b.image(i).tobytes()]
        np.testing.assert_array_equal(b.targets(i).boxes, a.targets(j).boxes)
    with pytest.raises(UserError, match="--part"):
        pack(None, tmp_path / "c", coco=js, root=root, part="0/2", progress=False)


def test_coco_without_keypoints(tmp_path):
    js = coco_dataset(tmp_path / "coco", n=2, keypoints=False)
    pack(None, tmp_path / "o", coco=js, root=tmp_path / "coco" / "images", progress=False)
    ds = ShardDataset(tmp_path / "o")
    assert ds.targets(0).keypoints is None and len(ds.targets(0)) == 2
    assert "flip_idx" not in ds.target_info and ds.target_info["keypoints"] == 0
