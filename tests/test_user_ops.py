"""User-defined ops by import path: per sample in the workers, per batch in the main process."""

from __future__ import annotations

import json

import numpy as np
import pytest

from augpipe import rng
from augpipe import transforms as T
from augpipe.errors import ConfigError, WorkerError
from augpipe.loader.loader import Loader
from augpipe.spec import load_pipeline
from augpipe.spec.user import UserOpError

IMG = ((np.arange(30 * 34 * 3) * 13) % 251).astype(np.uint8).reshape(30, 34, 3)
CUT = T.UserOp("user_augs:Cutout", args={"size": 6, "value": 3})


def _batches(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def test_stream_is_a_pure_function_of_its_counters():
    a = rng.Stream(1, 2, 3, 4)
    b = rng.Stream(1, 2, 3, 4)
    first = [a.uniform(), a.integers(0, 100, size=5).tolist(), a.normal(size=2).tolist()]
    assert first == [b.uniform(), b.integers(0, 100, size=5).tolist(), b.normal(size=2).tolist()]
    others = [rng.Stream(*c).random(4) for c in [(1, 2, 3, 4), (0, 2, 3, 4), (1, 1, 3, 4),
                                                  (1, 2, 4, 4), (1, 2, 3, 5)]]  # fmt: skip
    for o in others[1:]:
        assert not np.array_equal(o, others[0])
    v = rng.Stream(0, 0, 0, 0).integers(5, 8, size=1000)
    assert set(v.tolist()) == {5, 6, 7}


def test_sample_op_is_deterministic_and_replayable():
    pipe = T.Compose([T.CenterCrop(20), CUT])
    out = pipe(IMG, index=5, seed=1, epoch=2)
    plain = T.Compose([T.CenterCrop(20)])(IMG, index=5, seed=1, epoch=2)
    assert np.array_equal(out, pipe(IMG, index=5, seed=1, epoch=2))
    changed = np.any(out != plain, axis=2)
    assert changed.sum() > 0 and np.all(out[changed] == 3)  # a square of value 3, nothing else
    others = [pipe(IMG, index=i, seed=1, epoch=2) for i in range(8)]
    assert len({o.tobytes() for o in others}) > 1
    rec = pipe.sample_params([IMG.shape[:2]], [5], seed=1, epoch=2)
    assert np.array_equal(pipe.apply(IMG, rec[0], seed=1, epoch=2), out)
    with pytest.raises(ConfigError, match="seed= and epoch="):
        pipe.apply(IMG, rec[0])


def test_user_ops_round_trip_through_json():
    pipe = T.Compose(
        [
            T.RandomResizedCrop(16),
            CUT,
            T.UserOp("user_augs:noise", {"amount": 9}),
            T.UserBatchOp("user_augs:scale_device", {"factor": 3.0}, stage="device"),
        ]
    )
    d = json.loads(json.dumps(pipe.to_dict()))
    assert d["ops"][1] == {"op": "UserOp", "path": "user_augs:Cutout",
                           "args": {"size": 6, "value": 3}}  # fmt: skip
    back = T.Compose.from_dict(d)
    assert back.ops == pipe.ops and back.to_dict() == pipe.to_dict()
    for i in range(4):
        assert np.array_equal(back(IMG, i, 7, 1), pipe(IMG, i, 7, 1))


def test_test_time_crops_each_get_the_op():
    pipe = T.Compose([T.TenCrop(12), CUT])
    out = pipe(IMG, index=1)
    ref = T.Compose([T.TenCrop(12)])(IMG, index=1)
    assert out.shape == (10, 12, 12, 3)
    assert all(np.any(out[k] != ref[k]) for k in range(10))


def test_import_failure_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="'no_such_pkg_q.augs:Cutout'.*cannot import"):
        T.UserOp("no_such_pkg_q.augs:Cutout")
    with pytest.raises(ConfigError, match="has no attribute 'Cutoff'"):
        T.UserOp("user_augs:Cutoff")
    with pytest.raises(ConfigError, match=r"Cutout\(\*\*\{'bad': 1\}\) failed"):
        T.UserOp("user_augs:Cutout", args={"bad": 1})
    path = tmp_path / "p.json"
    ops = [{"op": "CenterCrop", "size": 8}, {"op": "UserOp", "path": "no_such_pkg_q:f"}]
    path.write_text(json.dumps({"version": 1, "ops": ops}))
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and "ops[1] (UserOp)" in msg and "no_such_pkg_q:f" in msg
    assert "\n" not in msg


def test_errors_name_the_path_and_the_sample():
    with pytest.raises(UserOpError, match="'user_augs:boom' failed on sample 17.*boom"):
        T.Compose([T.CenterCrop(8), T.UserOp("user_augs:boom")])(IMG, index=17)
    with pytest.raises(UserOpError, match="returned a float32 array.*sample 3"):
        T.Compose([T.UserOp("user_augs:returns_float")])(IMG, index=3)
    with pytest.raises(ConfigError, match="after every fused op"):
        T.Compose([CUT, T.HorizontalFlip()])


@pytest.mark.parametrize("workers", [0, 2])
def test_failing_op_in_the_loader_names_path_and_index(tiny_packed, workers):
    pipe = T.Compose([T.CenterCrop(16), T.UserOp("user_augs:fails_on_odd")])
    with Loader(tiny_packed, 4, pipe, workers=workers, output="numpy", shuffle=False) as loader:
        with pytest.raises(WorkerError) as info:
            _batches(loader)
    msg = str(info.value)
    assert "'user_augs:fails_on_odd'" in msg
    assert f"sample {info.value.index}" in msg and info.value.index >= 0


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_user_ops_identical_for_any_worker_count(tiny_packed, start_method):
    pipe = T.Compose([T.RandomResizedCrop(16), CUT, T.UserOp("user_augs:noise"),
                      T.UserBatchOp("user_augs:invert_host")])  # fmt: skip

    def run(workers):
        with Loader(tiny_packed, 5, pipe, seed=3, workers=workers, output="numpy",
                    start_method=start_method) as loader:  # fmt: skip
            return _batches(loader) + _batches(loader)

    ref = run(0)
    plain = T.Compose(pipe.ops[:3])
    with Loader(tiny_packed, 5, plain, seed=3, workers=0, output="numpy") as loader:
        unbatched = _batches(loader)
    for (a, la), (b, lb) in zip(ref, unbatched):  # the host op saw the per-sample result
        assert np.array_equal(a, 255 - b) and np.all((la - lb) % 100 == 0) and np.all(la > lb)
    assert len({int((la - lb)[0]) for (_, la), (_, lb) in zip(ref, unbatched)}) > 1
    for workers in (1, 2):
        got = run(workers)
        assert len(got) == len(ref)
        for (a, la), (b, lb) in zip(ref, got):
            assert np.array_equal(a, b) and np.array_equal(la, lb)


def test_device_stage_batch_op_sees_the_converted_batch(tiny_packed):
    base = [T.CenterCrop(16)]
    op = T.UserBatchOp("user_augs:scale_device", {"factor": 2.0}, stage="device")
    kw = dict(workers=0, output="numpy", dtype="float32", shuffle=False)
    with Loader(tiny_packed, 6, T.Compose(base), **kw) as plain:
        ref = _batches(plain)
    with Loader(tiny_packed, 6, T.Compose([*base, op]), **kw) as loader:
        got = _batches(loader)
    for (a, _), (b, _) in zip(ref, got):
        assert b.dtype == np.float32 and np.array_equal(b, a * 2.0)


def test_failing_batch_op_names_path_and_samples(tiny_packed):
    pipe = T.Compose([T.CenterCrop(16), T.UserBatchOp("user_augs:batch_boom")])
    with Loader(tiny_packed, 4, pipe, workers=0, output="numpy", shuffle=False) as loader:
        with pytest.raises(UserOpError, match=r"'user_augs:batch_boom' failed on batch 0 of "
                           r"epoch 0, samples 0\.\.3: ValueError: batch boom"):  # fmt: skip
            next(iter(loader))


def test_a_worker_that_cannot_import_a_user_op_reports_the_path(tiny_packed, tmp_path,
                                                                monkeypatch):  # fmt: skip
    """The main process imported the module; the fresh worker interpreter cannot."""
    import shutil
    import sys

    mod = tmp_path / "vanishing_augs_q.py"
    mod.write_text("def op(image, rng):\n    return image\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pipe = T.Compose([T.CenterCrop(16), T.UserOp("vanishing_augs_q:op")])
    mod.unlink()
    shutil.rmtree(tmp_path / "__pycache__", ignore_errors=True)
    monkeypatch.delitem(sys.modules, "vanishing_augs_q")
    with Loader(tiny_packed, 4, pipe, workers=1, output="numpy", start_method="spawn") as loader:
        with pytest.raises(Exception) as info:
            _batches(loader)
    assert "vanishing_augs_q:op" in str(info.value)
