"""Mixup/CutMix (timm semantics), repeated augmentation, the trainer's recipe flags and the
small-image evaluation crop."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from augpipe.cli.main import main
from augpipe.errors import ConfigError
from augpipe.loader.loader import Loader
from augpipe.loader.repeat import RepeatDataset, repeat_order
from augpipe.ops.batch.mixup import Mixup
from augpipe.train.tta import eval_short_side, val_pipeline
from augpipe.transforms import Compose, HorizontalFlip, RandomResizedCrop


def _batch(B=8, H=10, W=12):
    """Sample i is the constant image i * 10: which sample a pixel came from is visible."""
    x = np.repeat(np.arange(B, dtype=np.float32)[:, None, None, None] * 10, H, 1)
    return np.repeat(np.repeat(x, W, 2), 3, 3)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_cutmix_lambda_is_the_kept_area_and_targets_sum_to_one(mode):
    op = Mixup(0.0, 1.0, mode=mode, label_smoothing=0.1, num_classes=5)
    x = _batch()
    labels = np.array([0, 1, 2, 3, 4, 0, 1, 2])
    for key in range(6):
        out, t = op.run(x.copy(), labels, 3, 1, key, 0)
        lam, cut, boxes = op.params(3, 1, key, 8, (10, 12))
        assert np.allclose(t.sum(axis=1), 1.0, atol=1e-6)
        for i in range(8):
            own = (out[i, ..., 0] == x[i, 0, 0, 0]).mean()
            if i != 7 - i and x[i, 0, 0, 0] != x[7 - i, 0, 0, 0]:
                assert abs(own - lam[i]) < 1e-6  # λ = area kept, after the box is clipped
            other = (out[i, ..., 0] == x[7 - i, 0, 0, 0]).mean()
            assert abs(own + other - 1.0) < 1e-6  # the box comes from the partner
        expect = lam[:, None] * np.eye(5)[labels] + (1 - lam[:, None]) * np.eye(5)[labels[::-1]]
        assert np.allclose(t, expect * 0.9 + 0.1 / 5, atol=1e-6)
        if mode == "batch":
            assert len(set(np.round(lam, 6))) == 1
        if mode == "pair":
            assert np.allclose(lam, lam[::-1])


def test_mixup_blends_with_the_reversed_batch_and_draws_from_the_batch_key():
    op = Mixup(0.8, 0.0, mode="elem", num_classes=3, label_smoothing=0.0)
    x = _batch()
    out, t = op.run(x.copy(), np.arange(8) % 3, 0, 2, 5, 0)
    lam, cut, _ = op.params(0, 2, 5, 8, (10, 12))
    assert not cut.any() and np.all((lam > 0) & (lam <= 1))
    assert np.allclose(out[:, 0, 0, 0], lam * x[:, 0, 0, 0] + (1 - lam) * x[::-1, 0, 0, 0])
    again, _ = op.run(x.copy(), np.arange(8) % 3, 0, 2, 5, 0)
    other, _ = op.run(x.copy(), np.arange(8) % 3, 0, 2, 6, 0)
    assert np.array_equal(out, again) and not np.array_equal(out, other)


def test_switch_prob_and_prob_frequencies():
    op = Mixup(1.0, 1.0, prob=0.6, switch_prob=0.3, mode="elem", num_classes=2)
    lam, cut, _ = np.concatenate, None, None
    lams, cuts = [], []
    for key in range(300):
        lam, cut, _ = op.params(1, 0, key, 16, (16, 16))
        lams.append(lam)
        cuts.append(cut)
    lam, cut = np.concatenate(lams), np.concatenate(cuts)
    mixed = lam < 1.0
    assert abs(mixed.mean() - 0.6) < 0.03
    assert abs(cut[mixed].mean() - 0.3) < 0.04


def test_cutmix_minmax_box_sides():
    op = Mixup(0.0, 0.0, cutmix_minmax=(0.2, 0.5), num_classes=2, mode="elem")
    lam, cut, boxes = op.params(0, 0, 0, 64, (40, 50))
    h, w = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
    assert cut.all() and h.min() >= 8 and h.max() < 20 and w.min() >= 10 and w.max() < 25
    assert np.allclose(lam, 1 - h * w / 2000)


def test_torch_device_path_equals_numpy_path():
    op = Mixup(0.8, 1.0, mode="elem", num_classes=4)
    x = np.random.default_rng(0).random((6, 8, 9, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1])
    a, ta = op.run(x.copy(), labels, 4, 0, 2, 1)
    xt = torch.from_numpy(x.copy()).permute(0, 3, 1, 2)
    b, tb = op.run(xt, torch.from_numpy(labels), 4, 0, 2, 1)
    assert np.allclose(a, b.permute(0, 2, 3, 1).numpy(), atol=1e-6)
    assert np.allclose(ta, tb.numpy())


def test_mixup_rejects_bad_config():
    with pytest.raises(ConfigError, match="Mixup.mode"):
        Mixup(mode="row")
    with pytest.raises(ConfigError, match="mixup_alpha > 0"):
        Mixup(0.0, 0.0)
    with pytest.raises(ConfigError, match="cutmix_minmax"):
        Mixup(cutmix_minmax=(0.5, 0.2))


def test_loader_yields_soft_targets(tiny_packed):
    pipe = Compose([RandomResizedCrop(16), HorizontalFlip(), Mixup(0.5, 1.0)])
    with Loader(tiny_packed, 6, pipe, seed=1, workers=0, output="numpy") as lo:
        images, targets = next(iter(lo))
        n_cls = len(lo.dataset.classes)
    assert targets.shape == (6, n_cls) and targets.dtype == np.float32
    assert np.allclose(targets.sum(axis=1), 1.0, atol=1e-5)
    with Loader(tiny_packed, 6, pipe, seed=1, workers=0, output="torch") as lo:
        x, t = next(iter(lo))
    assert tuple(t.shape) == (6, n_cls) and t.dtype == torch.float32
    # workers rebuild the pipeline from its JSON form: Mixup must be a known op there
    with Loader(tiny_packed, 6, pipe, seed=1, workers=1, output="torch") as lo:
        x1, t1 = next(iter(lo))
    assert torch.equal(x1, x) and torch.equal(t1, t)


def test_repeat_order_spreads_repeats_across_ranks_like_timm():
    n, r, world = 300, 3, 3
    per = [repeat_order(n, r, 5, 2, True, k, world) for k in range(world)]
    assert all(len(p) == 256 // world for p in per)  # timm: N // 256 * 256 / world
    full = [repeat_order(n, r, 5, 2, True, k, world) for k in range(world)]
    assert all(np.array_equal(a, b) for a, b in zip(per, full))  # pure function
    # the r repeats of a record sit at the same position on the r ranks
    base = [p % n for p in per]
    assert np.array_equal(base[0], base[1]) and np.array_equal(base[1], base[2])
    assert len({int(v) // n for v in (per[0][0], per[1][0], per[2][0])}) == 3  # distinct repeats
    one = repeat_order(n, r, 5, 2, True, 0, 1)
    assert np.array_equal(one[:3] % n, [one[0] % n] * 3)  # one rank: repeats in one batch
    assert not np.array_equal(one, repeat_order(n, r, 5, 3, True, 0, 1))


def test_repeated_augmentation_gives_independent_crops_and_resumes(tiny_packed):
    from augpipe.format.dataset import ShardDataset

    ds = RepeatDataset(ShardDataset(tiny_packed), 2)
    pipe = Compose([RandomResizedCrop(16), HorizontalFlip()])
    lo = Loader(ds, 4, pipe, seed=3, workers=0, output="numpy", shuffle=True)
    idx = lo.indices(0)
    assert len(idx) == int(np.ceil(ds.n_base / 1))  # fewer than 256 records: ceil(N / world)
    batches = [(x.copy(), y.copy()) for x, y in lo]
    assert sum(len(y) for _, y in batches) == len(idx)
    a, b = int(np.flatnonzero(idx % ds.n_base == idx[0] % ds.n_base)[0]), 1
    assert idx[b] % ds.n_base == idx[a] % ds.n_base  # both repeats in the first batch
    assert not np.array_equal(batches[0][0][a], batches[0][0][b])  # independent augmentation
    state = None
    lo2 = Loader(ds, 4, pipe, seed=3, workers=0, output="numpy")
    it = iter(lo2)
    next(it)
    state = lo2.state_dict()
    lo3 = Loader(ds, 4, pipe, seed=3, workers=0, output="numpy")
    lo3.load_state_dict(state)
    rest = [x.copy() for x, _ in lo3]
    for (x, _), y in zip(batches[1:], rest, strict=True):
        assert np.array_equal(x, y)


def test_eval_keeps_small_images_whole():
    assert eval_short_side(224) == 256
    assert eval_short_side(224, 400) == 256
    assert eval_short_side(28, 28) == 28  # Fashion-MNIST at 28: no resize to 32 + crop
    assert eval_short_side(32, 36) == 32
    img = np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    assert np.array_equal(val_pipeline("none", 28, 28)(img), img)
    assert not np.array_equal(val_pipeline("none", 28)(img), img)


@pytest.fixture(scope="module")
def learnable(tmp_path_factory):
    from augpipe import pack
    from augpipe.synth import make_image_folder

    root = tmp_path_factory.mktemp("recipe")
    make_image_folder(root / "train", n_classes=3, per_class=40, min_side=24, max_side=32, seed=1)
    make_image_folder(root / "val", n_classes=3, per_class=10, min_side=24, max_side=32, seed=2)
    pack(root / "train", root / "train.packed", progress=False)
    pack(root / "val", root / "val.packed", progress=False)
    return root


def test_train_with_the_recipe_flags_end_to_end(learnable):
    out = learnable / "s.json"
    argv = ["train", str(learnable / "train.packed"), "--val", str(learnable / "val.packed"),
            "--model", "small_cnn", "--res", "24", "--epochs", "3", "--batch-size", "16",
            "--lr", "0.05", "--workers", "0", "--out", str(learnable / "run"), "--json",
            str(out), "--no-progress", "--aa", "rand-m9-mstd0.5-inc1", "--reprob", "0.25",
            "--mixup", "0.2", "--cutmix", "1.0", "--smoothing", "0.1",
            "--aug-repeats", "2"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(out.read_text())
    assert summary["val_top1"] > 0.5  # 3 classes: chance is 1/3
    cfg = json.loads((learnable / "run" / "config.json").read_text())
    assert cfg["aa"] == "rand-m9-mstd0.5-inc1" and cfg["mixup"] == 0.2 and cfg["aug_repeats"] == 2


@pytest.mark.parametrize("extra,message", [
    (["--aa", "rand-m9-zz1"], "'zz'"),
    (["--cutmix-minmax", "0.8", "0.2"], "--cutmix-minmax"),
    (["--mixup-prob", "2"], "--mixup-prob"),
])  # fmt: skip
def test_bad_recipe_flags_exit_2_with_one_line(learnable, tmp_path, capsys, extra, message):
    argv = ["train", str(learnable / "train.packed"), "--model", "small_cnn", "--res", "24",
            "--epochs", "1", "--out", str(tmp_path / "r"), "--no-progress", *extra]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
