"""Repeated augmentation decodes each record once for the repeats in a batch: the same output
bits as one decode per sample, for the region and the full-image paths, DCT-scaled or not."""

from __future__ import annotations

import numpy as np
import pytest

import augpipe.transforms as transforms_mod
from augpipe.format.dataset import ShardDataset
from augpipe.loader import repeat
from augpipe.loader.loader import Loader
from augpipe.loader.repeat import RepeatDataset
from augpipe.transforms import Compose, HorizontalFlip, RandomResizedCrop


@pytest.fixture(scope="module")
def photos_packed(tmp_path_factory):
    """Larger JPEGs (crops of them need DCT-scaled and region decodes)."""
    from augpipe import pack
    from augpipe.synth import make_image_folder

    root = tmp_path_factory.mktemp("repeat")
    make_image_folder(root / "img", n_classes=2, per_class=6, min_side=120, max_side=260, seed=3)
    pack(root / "img", root / "img.packed", progress=False)
    return root / "img.packed"


def _one_per_sample(dataset, indices, scales, boxes, slack=1.0):
    return [([j], scales[j], boxes[j, :4], boxes[j, 4]) for j in range(len(indices))]


def _count_decodes(monkeypatch):
    calls = []
    real = transforms_mod.load_region

    def counting(dataset, i, *a, **kw):
        calls.append(i)
        return real(dataset, i, *a, **kw)

    monkeypatch.setattr(transforms_mod, "load_region", counting)
    return calls


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("size", [24, 64])
def test_one_decode_per_record_gives_the_same_bits(photos_packed, monkeypatch, fast, size):
    ds = RepeatDataset(ShardDataset(photos_packed), 3)
    pipe = Compose([RandomResizedCrop(size), HorizontalFlip()], fast_decode=fast).bind(ds)
    order = repeat.repeat_order(ds.n_base, 3, 1, 0, True, 0, 1)  # repeats side by side
    calls = _count_decodes(monkeypatch)
    shared = np.empty((len(order), size, size, 3), np.uint8)
    for epoch in range(3):
        calls.clear()
        pipe.run_batch(ds, order, 1, epoch, shared)
        assert len(calls) < len(order)  # fewer decodes than samples
        monkeypatch.setattr(transforms_mod, "decode_groups", _one_per_sample)
        alone = np.empty_like(shared)
        pipe.run_batch(ds, order, 1, epoch, alone)
        monkeypatch.setattr(transforms_mod, "decode_groups", repeat.decode_groups)
        assert np.array_equal(shared, alone)


def test_groups_split_by_dct_scale_and_keep_batch_order():
    class Fake:
        repeats = 2
        indices = np.array([0, 1, 0, 1])

    scales = np.array([1.0, 3.0, 4.5, 2.0])  # record 0: DCT factors 1 and 4 -> two groups
    boxes = np.array([[0, 10, 0, 10, 1], [5, 9, 5, 9, 3], [2, 8, 1, 4, 4], [0, 4, 6, 20, 2.0]])
    groups = repeat.decode_groups(Fake(), np.arange(4), scales, boxes)
    assert [g[0] for g in groups] == [[0], [1, 3], [2]]
    members, scale, box, step = groups[1]
    assert scale == 2.0 and step == 3 and np.array_equal(box, [0, 9, 5, 20])


def test_repeat_batches_identical_across_workers(tiny_packed):
    ds = RepeatDataset(ShardDataset(tiny_packed), 3)
    pipe = Compose([RandomResizedCrop(20), HorizontalFlip()])
    runs = []
    for w in (0, 2):
        with Loader(ds, 6, pipe, seed=2, workers=w, output="numpy") as lo:
            runs.append([(x.copy(), y.copy()) for x, y in lo])
    for (a, la), (b, lb) in zip(*runs, strict=True):
        assert np.array_equal(a, b) and np.array_equal(la, lb)
