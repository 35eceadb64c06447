"""Same batches whatever the number of workers or start method; exact resume from a state."""

from __future__ import annotations

import json

import numpy as np
import pytest
from loader_fakes import FakeDataset, FakePipeline, fake_image, index_of

from augpipe.errors import ConfigError
from augpipe.loader.loader import Loader


def _batches(loader, limit=None):
    out = []
    for k, (images, labels) in enumerate(loader):
        if limit is not None and k == limit:
            break
        out.append((images.copy(), labels.copy()))
    return out


def _make(workers, **kw):
    kw.setdefault("output", "numpy")
    kw.setdefault("prefetch", 3)
    return Loader(FakeDataset(kw.pop("n", 45)), 4, FakePipeline(), seed=11, workers=workers, **kw)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_identical_for_workers_0_1_2(start_method):
    ref = _batches(_make(0))
    for workers in (1, 2):
        with _make(workers, start_method=start_method) as loader:
            got = _batches(loader)
        assert len(got) == len(ref)
        for (a, la), (b, lb) in zip(ref, got):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(la, lb)


def test_content_is_the_pipelines_output():
    with _make(2) as loader:
        for images, _ in loader:
            for img in images:
                idx = int(index_of(img[None])[0])
                np.testing.assert_array_equal(img, fake_image(img.shape, 11, 0, idx))


def test_epochs_differ_with_workers():
    with _make(2) as loader:
        e0 = _batches(loader)
        e1 = _batches(loader)
    assert loader.epoch == 2
    assert any(not np.array_equal(a, b) for (a, _), (b, _) in zip(e0, e1))


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("k", [0, 4, 11])  # 12 batches per epoch: k=11 is the last one
def test_resume_after_batch_k(workers, k):
    uninterrupted = _make(0)
    ref = _batches(uninterrupted) + _batches(uninterrupted)  # epochs 0 and 1
    first = _make(workers)
    state = None
    for j, _batch in enumerate(first):
        if j == k:
            state = json.loads(json.dumps(first.state_dict()))  # plain JSON round trip
            break
    first.close()
    resumed = _make(workers)
    resumed.load_state_dict(state)
    got = _batches(resumed)
    if k == 11:  # the state was taken after the epoch's last batch: next is epoch 1
        got_epoch = 1
        assert state["epoch"] == 1 and state["batch"] == 0
    else:
        got_epoch = 0
        assert state["epoch"] == 0 and state["batch"] == k + 1
    start = 12 * got_epoch + (0 if k == 11 else k + 1)
    expected = ref[start : 12 * (got_epoch + 1)]
    assert len(got) == len(expected)
    for (a, la), (b, lb) in zip(expected, got):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    resumed.close()


def test_set_epoch_keeps_a_restored_position():
    a = _make(0)
    a.load_state_dict({**a.state_dict(), "epoch": 3, "batch": 5})
    a.set_epoch(3)  # the usual "for epoch in ...: set_epoch(epoch)" loop must not rewind
    assert a.state_dict()["batch"] == 5
    assert len(_batches(a)) == 12 - 5
    a.set_epoch(7)
    assert a.state_dict()["batch"] == 0


def test_state_from_other_settings_is_rejected():
    state = _make(0).state_dict()
    other = Loader(FakeDataset(45), 5, FakePipeline(), seed=11, workers=0, output="numpy")
    with pytest.raises(ConfigError, match="batch_size"):
        other.load_state_dict(state)
    with pytest.raises(ConfigError, match="state"):
        other.load_state_dict({"epoch": 1})
