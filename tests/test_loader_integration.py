"""The Loader with the real ShardDataset and transforms (tiny packed datasets from conftest)."""

from __future__ import annotations

import numpy as np
import pytest

from augpipe.format.dataset import ShardDataset
from augpipe.loader.loader import Loader
from augpipe.transforms import CenterCrop, Compose, HorizontalFlip, RandomResizedCrop


def _pipe():
    return Compose([RandomResizedCrop(20), HorizontalFlip()])


def _epoch(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def test_real_pipeline_same_batches_for_any_workers(tiny_packed):
    ref = _epoch(Loader(tiny_packed, 5, _pipe(), seed=2, workers=0, output="numpy"))
    assert sum(len(y) for _, y in ref) == len(ShardDataset(tiny_packed))
    for workers, method in ((2, "fork"), (1, "spawn")):
        with Loader(tiny_packed, 5, _pipe(), seed=2, workers=workers, output="numpy",
                    start_method=method) as lo:  # fmt: skip
            got = _epoch(lo)
        for (a, la), (b, lb) in zip(ref, got, strict=True):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(la, lb)


def test_real_batches_match_the_pipeline_and_labels(tiny_packed_raw):
    ds = ShardDataset(tiny_packed_raw)
    pipe = Compose([CenterCrop(16)])
    loader = Loader(ds, 4, pipe, workers=0, output="numpy", shuffle=False)
    for b, (images, labels) in enumerate(loader):
        idx = np.arange(b * 4, b * 4 + len(labels))
        np.testing.assert_array_equal(labels, ds.labels[idx])
        for img, i in zip(images, idx):
            np.testing.assert_array_equal(img, pipe(ds.image(int(i)), index=int(i)))


def test_dataset_normalisation_uses_the_manifest_stats(tiny_packed):
    torch = pytest.importorskip("torch")
    ds = ShardDataset(tiny_packed)
    kw = dict(workers=0, shuffle=False)
    raw, _ = next(iter(Loader(ds, 6, _pipe(), output="numpy", copy=True, **kw)))
    images, labels = next(iter(Loader(ds, 6, _pipe(), normalize="dataset", **kw)))
    mean, std = ds.stats["mean"], ds.stats["std"]
    ref = ((raw / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(images.numpy(), ref, rtol=1e-4, atol=1e-4)
    assert images.dtype == torch.float32 and labels.dtype == torch.int64


def test_fork_after_the_parent_read_the_dataset(tiny_packed):
    ds = ShardDataset(tiny_packed)
    ds.image(0)  # the parent now has the LMDB environment open
    other = ShardDataset(tiny_packed)
    other.raw(1)
    with Loader(ds, 6, _pipe(), workers=2, output="numpy", start_method="fork") as lo:
        assert sum(len(y) for _, y in lo) == len(ds)
    ds.raw(2)  # and the parent's handles still work
    other.raw(3)


def test_fork_after_the_parent_closed_and_reopened_the_dataset(tiny_packed):
    ds = ShardDataset(tiny_packed)
    ds.raw(0)
    ds.close()
    ds.raw(1)  # reopened in the parent after a close
    with Loader(ds, 6, _pipe(), workers=2, output="numpy", start_method="fork") as lo:
        assert sum(len(y) for _, y in lo) == len(ds)


def test_fork_after_the_parent_used_opencvs_thread_pool(tiny_packed):
    cv2 = pytest.importorskip("cv2")
    threads = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        big = np.zeros((2000, 2000, 3), np.uint8)
        cv2.resize(big, (1000, 1000))  # starts OpenCV's worker threads in this process
        with Loader(tiny_packed, 6, _pipe(), workers=2, output="numpy",
                    start_method="fork") as lo:  # fmt: skip
            assert sum(len(y) for _, y in lo) == len(ShardDataset(tiny_packed))
    finally:
        cv2.setNumThreads(threads)


def _recipe_pipe():
    from augpipe import transforms as T

    return Compose(
        [
            RandomResizedCrop(20),
            HorizontalFlip(),
            T.TimmRandAugment(9, n=2, mstd=0.5, inc=True),
            T.ColorJitter(0.2, 0.2, 0.2, hue=0.1),
            T.Equalize(p=0.3),
            T.Sharpness((0.5, 1.5), p=0.5),
            T.GaussianBlur(3, p=0.3),
            T.Grayscale(p=0.2),
            T.RandomErasing(0.5, mode="pixel"),
        ]
    )


def test_every_recipe_op_same_batches_for_any_workers_and_exact_resume(tiny_packed):
    from augpipe import transforms as T

    pipes = [_recipe_pipe(), Compose([RandomResizedCrop(20), T.AugMix(3, width=2)])]
    for pipe in pipes:
        ref = [_epoch(Loader(tiny_packed, 5, pipe, seed=4, workers=0, output="numpy"))
               for _ in range(1)][0]  # fmt: skip
        with Loader(tiny_packed, 5, pipe, seed=4, workers=2, output="numpy") as lo:
            got = _epoch(lo)
        for (a, la), (b, lb) in zip(ref, got, strict=True):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(la, lb)
        first = Loader(tiny_packed, 5, pipe, seed=4, workers=0, output="numpy")
        it = iter(first)
        next(it)
        state = first.state_dict()
        first.close()
        resumed = Loader(tiny_packed, 5, pipe, seed=4, workers=1, output="numpy",
                         start_method="spawn")  # fmt: skip
        resumed.load_state_dict(state)
        with resumed:
            rest = _epoch(resumed)
        for (a, _), (b, _) in zip(ref[1:], rest, strict=True):
            np.testing.assert_array_equal(a, b)
