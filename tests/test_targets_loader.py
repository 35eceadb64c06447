"""Loader batches for target-carrying datasets, and the adapters."""

from __future__ import annotations

import numpy as np
import pytest

from augpipe import Affine, Compose, HorizontalFlip, Loader, RandomResizedCrop, ShardDataset
from augpipe.format.pack import pack
from augpipe.targets.adapters import instance_masks, to_padded, to_torchvision, to_ultralytics
from augpipe.targets.batch import TargetPipeline
from augpipe.targets.transform import TargetOptions, transform
from tests.targets_fakes import coco_dataset

OUT = (32, 40)


@pytest.fixture(scope="module")
def coco_packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    js = coco_dataset(root / "src", n=7)
    out = root / "packed"
    pack(None, out, coco=js, root=root / "src" / "images", format="raw", progress=False)
    return out


def _pipe():
    return Compose([RandomResizedCrop(OUT, scale=(0.5, 1.0)), HorizontalFlip(),
                    Affine(rotate=10)])  # fmt: skip


def _batches(path, **kw):
    with Loader(path, 3, _pipe(), output="numpy", seed=5, **kw) as loader:
        return [(im.copy(), t) for im, t in loader]


def test_batch_layout_matches_per_image_transform(coco_packed):
    ds = ShardDataset(coco_packed)
    with Loader(ds, 3, _pipe(), output="numpy", seed=5, workers=0, shuffle=False) as loader:
        images, t = next(iter(loader))
        assert images.shape == (3, *OUT, 3)
        assert t["offsets"].tolist()[0] == 0 and len(t["offsets"]) == 4
        M = int(t["offsets"][-1])
        assert t["boxes"].shape == (M, 4) and t["boxes"].dtype == np.float32
        assert t["labels"].shape == t["batch_idx"].shape == t["iscrowd"].shape == (M,)
        assert t["keypoints"].shape == (M, 3, 3)
        assert t["instance_map"].shape == (3, *OUT)
        recs = loader.pipeline.pipeline.sample_params(ds.sizes[:3], np.arange(3), 5, 0)
        for b in range(3):
            want = transform(ds.targets(b), recs[b], OUT, TargetOptions(), [1, 0, 2])
            sl = slice(t["offsets"][b], t["offsets"][b + 1])
            np.testing.assert_array_equal(t["boxes"][sl], want.boxes)
            np.testing.assert_array_equal(t["labels"][sl], want.labels)
            np.testing.assert_array_equal(t["keypoints"][sl], want.keypoints)
            assert set(np.unique(t["instance_map"][b])) <= set(range(len(want) + 1))
            assert (t["batch_idx"][sl] == b).all()


def test_same_batches_for_any_workers_and_after_resume(coco_packed):
    a = _batches(coco_packed, workers=0)
    b = _batches(coco_packed, workers=2)
    assert len(a) == len(b) == 3
    for (ia, ta), (ib, tb) in zip(a, b):
        np.testing.assert_array_equal(ia, ib)
        for key in ta:
            np.testing.assert_array_equal(ta[key], tb[key])
    with Loader(coco_packed, 3, _pipe(), output="numpy", seed=5, workers=0) as loader:
        it = iter(loader)
        next(it)
        state = loader.state_dict()
    with Loader(coco_packed, 3, _pipe(), output="numpy", seed=5, workers=0) as loader:
        loader.load_state_dict(state)
        _, t = next(iter(loader))
        np.testing.assert_array_equal(t["boxes"], a[1][1]["boxes"])


def test_ranks_split_the_targets(coco_packed):
    seen = []
    for rank in (0, 1):
        with Loader(coco_packed, 2, _pipe(), output="numpy", seed=1, workers=0, rank=rank,
                    world_size=2) as loader:  # fmt: skip
            idx = loader.indices()
            seen += idx.tolist()
            for _, t in loader:
                assert len(t["offsets"]) - 1 <= 2
    assert sorted(set(seen)) == list(range(7))  # 7 samples, 2 ranks: one is repeated


def test_empty_batch_targets_and_adapters(coco_packed):
    ds = ShardDataset(coco_packed)
    tp = TargetPipeline(_pipe().bind(ds), ds)
    images, t = tp.sample(ds, [6], seed=0)  # the image without annotations
    assert t["boxes"].shape == (0, 4) and t["offsets"].tolist() == [0, 0]
    images, t = tp.sample(ds, [0, 6, 1], seed=0)
    _, dicts = to_torchvision((images, t))
    assert [len(d["boxes"]) for d in dicts] == np.diff(t["offsets"]).tolist()
    assert dicts[1]["boxes"].shape == (0, 4)
    for d, m in zip(dicts, instance_masks(t)):
        assert d["masks"].shape == (len(d["boxes"]), *OUT) and d["masks"].dtype == np.uint8
        assert m.shape[0] == len(d["boxes"])
    u = to_ultralytics((images, t))
    b = t["boxes"]
    np.testing.assert_allclose(u["bboxes"][:, 0], (b[:, 0] + b[:, 2]) / 2 / OUT[1], rtol=1e-6)
    np.testing.assert_allclose(u["bboxes"][:, 3], (b[:, 3] - b[:, 1]) / OUT[0], rtol=1e-6)
    assert u["cls"].shape == (len(b), 1)
    p = to_padded((images, t), max_boxes=4)
    assert p["boxes"].shape == (3, 4, 4) and p["valid"].sum() == len(b)
    assert (p["labels"][~p["valid"]] == -1).all()
    np.testing.assert_array_equal(p["boxes"][0, : p["count"][0]], b[: p["count"][0]])
    with pytest.raises(Exception, match="max_boxes"):
        to_padded((images, t), max_boxes=1)
    assert to_padded((images, t), max_boxes=1, truncate=True)["count"].max() == 1


def test_torch_output(coco_packed):
    torch = pytest.importorskip("torch")
    with Loader(coco_packed, 2, _pipe(), seed=0, workers=0) as loader:
        images, t = next(iter(loader))
    assert isinstance(t["boxes"], torch.Tensor) and images.shape[1] == 3
    _, dicts = to_torchvision((images, t))
    assert dicts[0]["boxes"].dtype == torch.float32 and dicts[0]["labels"].dtype == torch.int64
    u = to_ultralytics((images, t))
    assert float(u["bboxes"].max()) <= 1.0 + 1e-6


def test_target_pipeline_as_data_for_fresh_workers(coco_packed):
    import json

    ds = ShardDataset(coco_packed)
    tp = TargetPipeline(_pipe().bind(ds), ds, TargetOptions(min_wh=1.5, box_rule="ellipse"), 3)
    back = TargetPipeline.from_dict(json.loads(json.dumps(tp.to_dict())))
    assert back.to_dict() == tp.to_dict() and back.extra_bytes(3) == tp.extra_bytes(3)
    a, ta = tp.sample(ds, [0, 1, 2], seed=4)
    b, tb = back.sample(ds, [0, 1, 2], seed=4)
    np.testing.assert_array_equal(a, b)
    for k in ta:
        np.testing.assert_array_equal(ta[k], tb[k])


def test_bench_stages_carry_targets(coco_packed):
    from augpipe.bench import stages
    from augpipe.targets.batch import image_labels

    ds = ShardDataset(coco_packed)
    r = stages.decode_augment(ds, _pipe(), seconds=0.05, seed=0, batch=4)
    assert r["median"] > 0
    images, t = TargetPipeline(_pipe().bind(ds), ds).sample(ds, [6, 0], seed=0)
    assert image_labels(t, 2).tolist() == [0, int(t["labels"][0])]


def test_target_options_on_a_dataset_without_targets_is_an_error(tiny_packed):
    from augpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="targets"):
        Loader(tiny_packed, 2, Compose([RandomResizedCrop(16)]), output="numpy", workers=0,
               targets=TargetOptions())  # fmt: skip


def test_ops_after_the_fused_pass_refuse_targets(coco_packed):
    from augpipe.errors import ConfigError
    from augpipe.ops.batch.mixup import Mixup

    ds = ShardDataset(coco_packed)
    with pytest.raises(ConfigError, match="Mixup"):
        TargetPipeline(Compose([RandomResizedCrop(OUT), Mixup()]).bind(ds), ds)


def test_fresh_interpreter_workers_give_the_same_targets(coco_packed):
    a = _batches(coco_packed, workers=2, start_method="fork")
    b = _batches(coco_packed, workers=2, start_method="spawn")  # fresh interpreters: as data
    for (ia, ta), (ib, tb) in zip(a, b):
        np.testing.assert_array_equal(ia, ib)
        for key in ta:
            np.testing.assert_array_equal(ta[key], tb[key])
