"""Mixup/CutMix on the host: the in-place pairwise kernel equals the NumPy reference bit for
bit, and the Loader's worker-side stage gives the batches the main-process stage gave, for any
number of workers and across a resume."""

from __future__ import annotations

import numpy as np
import pytest

from augpipe.loader.loader import Loader
from augpipe.loader.stages import worker_ops
from augpipe.ops.batch.blend import mix_inplace
from augpipe.ops.batch.mixup import Mixup
from augpipe.spec.user import UserBatchOp
from augpipe.transforms import Compose, HorizontalFlip, RandomResizedCrop


def reference_mix(images: np.ndarray, lam, cut, boxes) -> np.ndarray:
    """The host rule, straightforward NumPy per sample: weight w = rint(256 λ) (0..256);
    a blend is (a w + b (256 - w) + 128) // 256; a CutMix box takes the partner's original."""
    partner = images[::-1].astype(np.int64)
    out = images.copy()
    w = np.clip(np.rint(np.asarray(lam, np.float64) * 256), 0, 256).astype(np.int64)
    for i in np.flatnonzero((w < 256) & ~cut):
        if i != len(images) - 1 - i:  # the middle sample of an odd batch is its own partner
            blend = images[i].astype(np.int64) * w[i] + partner[i] * (256 - w[i]) + 128
            out[i] = blend // 256
    for i in np.flatnonzero(cut):
        y0, y1, x0, x1 = (int(v) for v in boxes[i])
        out[i, y0:y1, x0:x1] = partner[i, y0:y1, x0:x1]
    return out


def timm_mix(images: np.ndarray, lam) -> np.ndarray:
    """timm's FastCollateMixup blend: float32 a λ + b (1 - λ), rounded half to even."""
    lam = np.asarray(lam, np.float32)[:, None, None, None]
    x = images.astype(np.float32)
    return np.rint(x * lam + x[::-1] * (np.float32(1) - lam)).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.parametrize("B", [1, 2, 5, 8])
def test_inplace_kernel_equals_reference(mode, B):
    rng = np.random.default_rng(B)
    x = rng.integers(0, 256, (B, 13, 17, 3), dtype=np.uint8)
    op = Mixup(0.8, 1.0, prob=0.8, switch_prob=0.5, mode=mode, num_classes=3)
    kinds = set()
    for key in range(40):
        lam, cut, boxes = op.params(2, 1, key, B, (13, 17))
        kinds.update(("cut" if c else "mix" if v < 1 else "none") for v, c in zip(lam, cut))
        got = mix_inplace(x.copy(), lam, cut, boxes)
        assert np.array_equal(got, reference_mix(x, lam, cut, boxes)), key
    assert kinds >= ({"cut", "mix"} if B > 1 else {"mix"})


def test_blend_on_every_pixel_pair():
    """All 65,536 (a, b) pairs, many weights (grid and off-grid), both samples of a pair mixing
    with other weights: the integer rule exactly, and within 1 of timm's float32 blend."""
    a = np.repeat(np.arange(256, dtype=np.uint8), 256)
    b = np.tile(np.arange(256, dtype=np.uint8), 256)
    x = np.stack([a, b, b, a]).reshape(4, 256, 256, 1)
    rng = np.random.default_rng(0)
    no_cut, no_box = np.zeros(4, bool), np.zeros((4, 4), np.int64)
    grid = np.float32([0.0, 1 / 256, 0.5, 255 / 256])
    weights = [*rng.random((60, 4)).astype(np.float32), np.float32([0.5, 0.25, 0.75, 1.0]), grid]
    for w in weights:
        got = mix_inplace(x.copy(), w, no_cut, no_box)
        assert np.array_equal(got, reference_mix(x, w, no_cut, no_box))
        assert np.abs(got.astype(int) - timm_mix(x, w)).max() <= 1
    # halves round up: 1 * 0.5 + 0 * 0.5 -> 1 (timm's half to even: 0); the cut pair keeps
    got = mix_inplace(np.uint8([1, 3, 0, 0]).reshape(4, 1, 1, 1), np.float32([0.5] * 4),
                      np.array([False, True, True, False]), no_box)  # fmt: skip
    assert got.ravel()[0] == 1 and got.ravel()[3] == 1


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_targets_hold_the_lambda_the_pixels_got(mode):
    """Distinct labels, no smoothing: target[i, label i] is sample i's λ. The pixels are the
    rule's with exactly that λ (its weight 256 λ an integer), or the box's kept area."""
    B, H, W = 8, 12, 10
    rng = np.random.default_rng(5)
    op = Mixup(0.8, 1.0, prob=0.9, mode=mode, label_smoothing=0.0, num_classes=B)
    labels = np.arange(B)
    seen = set()
    for key in range(30):
        x = rng.integers(0, 256, (B, H, W, 3), dtype=np.uint8)
        out, t = op.run(x, labels, 1, 2, key, 0)
        _, cut, boxes = op.params(1, 2, key, B, (H, W))
        lam = t[labels, labels]
        assert np.allclose(t.sum(axis=1), 1.0, atol=1e-6)
        assert np.array_equal(t[labels, labels[::-1]], np.float32(1) - lam)
        assert np.array_equal(out, reference_mix(x, lam, cut, boxes))
        mix = ~cut & (lam < 1)
        assert np.array_equal(lam[mix] * 256, np.rint(lam[mix] * 256))
        area = (boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2]) / (H * W)
        assert np.allclose(lam[cut], 1 - area[cut], atol=1e-6)
        seen.update(["cut"] * bool(cut.any()) + ["mix"] * bool(mix.any()))
    assert seen == {"cut", "mix"}


def test_cutmix_boxes_read_the_partners_original_pixels():
    x = np.stack([np.full((6, 6, 3), 10 * i, np.uint8) for i in range(4)])
    lam = np.float32([0.5, 0.7, 0.6, 1.0])
    cut = np.array([True, False, True, False])  # 0 <- 3's box, 1 <- blends with 2, 2 <- 1's box
    boxes = np.array([[0, 3, 0, 6], [0, 0, 0, 0], [2, 5, 1, 4], [0, 0, 0, 0]])
    got = mix_inplace(x.copy(), lam, cut, boxes)
    assert np.array_equal(got, reference_mix(x, lam, cut, boxes))
    assert (got[2, 2:5, 1:4] == 10).all()  # sample 1's value before its blend


def _pipe(*extra, stage="host", mode="elem"):
    mix = Mixup(0.8, 1.0, prob=0.9, mode=mode, label_smoothing=0.1, stage=stage)
    return Compose([RandomResizedCrop(16), HorizontalFlip(), *extra[:1], mix, *extra[1:]])


def _batches(packed, pipe, workers, **kw):
    with Loader(packed, 5, pipe, seed=4, workers=workers, output="numpy", **kw) as lo:
        return [(x.copy(), t.copy()) for x, t in lo]


def test_worker_stage_equals_main_process_stage(tiny_packed):
    plain = _batches(tiny_packed, Compose([RandomResizedCrop(16), HorizontalFlip()]), 0)
    with Loader(tiny_packed, 5, _pipe(), seed=4, workers=0, output="numpy") as lo:
        op = lo.pipeline.batch_ops[0][1]
        want = [op.run(x, y, 4, 0, b, 2) for b, (x, y) in enumerate(plain)]
        got = [(x.copy(), t.copy()) for x, t in lo]
    for (x, t), (wx, wt) in zip(got, want, strict=True):
        assert np.array_equal(x, wx) and np.array_equal(t, wt)
    assert any(not np.array_equal(x, p) for (x, _), (p, _) in zip(got, plain))
    assert all(np.allclose(t.sum(axis=1), 1.0, atol=1e-5) for _, t in got)


@pytest.mark.parametrize("mode", ["pair", "elem"])
def test_mixup_batches_identical_for_0_1_2_workers_and_on_resume(tiny_packed, mode):
    pipe = _pipe(mode=mode)
    runs = {w: _batches(tiny_packed, pipe, w) for w in (0, 1, 2)}
    if mode == "elem":  # fresh interpreters rebuild the pipeline from its JSON form
        runs["spawn"] = _batches(tiny_packed, pipe, 2, start_method="spawn")
    for w in runs:
        for (x, t), (x0, t0) in zip(runs[w], runs[0], strict=True):
            assert np.array_equal(x, x0) and np.array_equal(t, t0)
    lo = Loader(tiny_packed, 5, pipe, seed=4, workers=2, output="numpy")
    it = iter(lo)
    next(it), next(it)
    state = lo.state_dict()
    lo.close()
    with Loader(tiny_packed, 5, pipe, seed=4, workers=1, output="numpy") as lo2:
        lo2.load_state_dict(state)
        rest = [(x.copy(), t.copy()) for x, t in lo2]
    for (x, t), (x0, t0) in zip(rest, runs[0][2:], strict=True):
        assert np.array_equal(x, x0) and np.array_equal(t, t0)


def test_host_mixup_draws_once_per_batch(tiny_packed, monkeypatch):
    """The worker's λ travels back in the slot: the main process never draws again (with
    workers=0 the one draw is the main process's own, once per batch)."""
    calls = []
    real = Mixup.params
    monkeypatch.setattr(Mixup, "params", lambda self, *a: calls.append(1) or real(self, *a))
    want = _batches(tiny_packed, _pipe(), 0)
    assert len(calls) == len(want) > 1
    calls.clear()
    got = _batches(tiny_packed, _pipe(), 2)  # forked workers append to their own copies
    assert calls == []
    for (x, t), (wx, wt) in zip(got, want, strict=True):
        assert np.array_equal(x, wx) and np.array_equal(t, wt)


def test_user_batch_ops_keep_their_order_around_the_worker_stage(tiny_packed):
    flip = UserBatchOp("user_augs:flip_rows_host", stage="host")
    mix = Mixup(0.8, 1.0, mode="elem", stage="host", num_classes=3)
    head = [RandomResizedCrop(16), HorizontalFlip()]
    before, late = Compose([*head, flip, mix]), Compose([*head, mix, flip])
    assert worker_ops(before) == [] and worker_ops(late) == [(2, mix)]
    plain = _batches(tiny_packed, Compose(head), 0)
    for w in (0, 2):
        for b, ((x, t), (p, y)) in enumerate(zip(_batches(tiny_packed, before, w), plain)):
            want, wt = mix.run(p[:, ::-1], y, 4, 0, b, 3)  # flipped, then mixed
            assert np.array_equal(x, want) and np.array_equal(t, wt)
        for b, ((x, t), (p, y)) in enumerate(zip(_batches(tiny_packed, late, w), plain)):
            want, wt = mix.run(p, y, 4, 0, b, 2)  # mixed in the worker, flipped in main
            assert np.array_equal(x, want[:, ::-1]) and np.array_equal(t, wt)


def _gamma_one_try_at_a_time(seed, epoch, indices, stream, alpha):
    """The sequential Marsaglia-Tsang loop, the reference for the vectorised first tries."""
    from augpipe import rng

    a = alpha + 1.0 if alpha < 1.0 else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    out, done = np.full(len(indices), d), np.zeros(len(indices), dtype=bool)
    for t in range(16):
        x = rng.normal(seed, epoch, indices, stream + 8 * t + 1)
        u = rng.uniform(seed, epoch, indices, stream + 8 * t + 2)
        v = (1.0 + c * x) ** 3
        with np.errstate(invalid="ignore", divide="ignore"):
            lv = np.log(np.where(v > 0, v, 1.0))
            ok = (v > 0) & (np.log(np.maximum(u, 1e-300)) < 0.5 * x * x + d - d * v + d * lv)
        out[ok & ~done] = d * v[ok & ~done]
        done |= ok
    if alpha < 1.0:
        out = out * (1.0 - rng.uniform(seed, epoch, indices, stream + 7)) ** (1.0 / alpha)
    return out


@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.8, 1.7, 4.0])
def test_gamma_draws_equal_the_sequential_tries(alpha):
    from augpipe import rng
    from augpipe.ops.policies.vocab import gamma

    for n, stream in ((1, 5), (7, 1 << 30), (400, 12345)):
        idx = np.arange(n) * 3 + 1
        want = _gamma_one_try_at_a_time(2, 3, idx, stream, alpha)
        assert np.array_equal(gamma(2, 3, idx, stream, alpha), want)
    u = rng.uniforms(4, 1, idx, [9, 1 << 40, 3])
    assert np.array_equal(u, [rng.uniform(4, 1, idx, s) for s in (9, 1 << 40, 3)])


def test_trainer_mixes_in_the_workers_on_the_cpu_and_on_the_gpu_after_the_copy():
    from augpipe.train.config import TrainConfig
    from augpipe.train.recipe import recipe_ops

    for device, stage in (("cpu", "host"), ("cuda", "device")):
        cfg = TrainConfig("x.packed", device=device, mixup=0.8, cutmix=1.0)
        (op,) = [o for o in recipe_ops(cfg, 10) if isinstance(o, Mixup)]
        assert op.stage == stage and op.num_classes == 10


def _reference_targets(labels, lam, smoothing, C):
    off = smoothing / C
    y1 = np.full((len(labels), C), off, np.float32)
    y1[np.arange(len(labels)), labels] = 1.0 - smoothing + off
    lam = np.asarray(lam, np.float32)[:, None]
    return y1 * lam + y1[::-1] * (1.0 - lam)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.37])
def test_soft_targets_equal_the_dense_formula_bit_for_bit(smoothing):
    rng = np.random.default_rng(1)
    for B, C in ((1, 3), (6, 2), (9, 1000), (64, 7)):
        op = Mixup(0.8, 1.0, mode="elem", num_classes=C, label_smoothing=smoothing)
        labels = rng.integers(0, C, B)
        lam = np.where(rng.random(B) < 0.2, 1.0, rng.random(B)).astype(np.float32)
        got = op.targets(labels, lam)
        assert got.dtype == np.float32
        assert np.array_equal(got, _reference_targets(labels, lam, smoothing, C))


def test_host_stage_with_torch_output(tiny_packed):
    import torch

    pipe = _pipe()
    want = _batches(tiny_packed, pipe, 0)
    with Loader(tiny_packed, 5, pipe, seed=4, workers=2, output="torch") as lo:
        got = [(x.clone(), t.clone()) for x, t in lo]
    for (x, t), (wx, wt) in zip(got, want, strict=True):
        assert torch.equal(x.permute(0, 2, 3, 1), torch.from_numpy(wx))
        assert torch.equal(t, torch.from_numpy(wt))


@pytest.mark.parametrize("B", [2, 3, 7, 10])
def test_inplace_kernel_equals_reference_for_every_rule_pair(B):
    """Random per-sample rules (blend, CutMix box, unchanged), boxes that overlap, touch the
    edges, are empty or stick out of the image: every (rule, partner's rule) pair."""
    rng = np.random.default_rng(B)
    H, W = 9, 11
    x = rng.integers(0, 256, (B, H, W, 3), dtype=np.uint8)
    seen = set()
    for _ in range(300):
        kind = rng.integers(0, 3, B)  # 0 unchanged, 1 blend, 2 CutMix
        lam = np.where(kind == 0, 1.0, rng.random(B)).astype(np.float32)
        cut = kind == 2
        y0, x0 = rng.integers(-2, H, B), rng.integers(-2, W, B)
        boxes = np.stack([y0, y0 + rng.integers(0, H + 2, B), x0, x0 + rng.integers(0, W, B)], 1)
        got = mix_inplace(x.copy(), lam, cut, boxes)
        clipped = np.clip(boxes, 0, [H, H, W, W])
        assert np.array_equal(got, reference_mix(x, lam, cut, clipped))
        seen.update(zip(kind.tolist(), kind[::-1].tolist()))
    assert len(seen) == 9


def _draws_one_stream_at_a_time(seed, epoch, n, base, mix_a, cut_a):
    """The previous ``Mixup.params`` draws: a uniforms call, then each Beta from ``gammas``."""
    from augpipe import rng
    from augpipe.ops.policies.vocab import gammas

    idx = np.arange(n, dtype=np.int64)
    uk = (0, 5, 6, 7, 8, 9)
    u = dict(zip(uk, rng.uniforms(seed, epoch, idx, [base + k for k in uk])))

    def beta(stream, a):
        x, y = gammas(seed, epoch, idx, [stream, stream + 1000], a)
        return x / (x + y)

    return (u, beta(base + 1, mix_a) if mix_a > 0 else None,
            beta(base + 3, cut_a) if cut_a > 0 else None)  # fmt: skip


@pytest.mark.parametrize("alpha", [0.2, 0.8, 1.0, 1.7, 4.0])
def test_compiled_betas_equal_the_gammas_betas(alpha):
    """30,000 draws per alpha (some need a later Marsaglia-Tsang try, some alpha < 1's boost):
    the compiled Beta equals ``vocab.gammas``' up to the last bits of the C library's log/cos
    against NumPy's."""
    from augpipe.ops.batch.draws import betas, epoch_key

    for seed, epoch, n, stream in ((0, 0, 1, 3 << 24), (3, 2, 64, 77), (1, 5, 30000, 1 << 40)):
        _, want, _ = _draws_one_stream_at_a_time(seed, epoch, n, stream - 1, alpha, 0.0)
        got = betas(epoch_key(seed, epoch), np.uint64(stream), n, alpha)
        assert np.allclose(got, want, rtol=1e-13, atol=0)


def _randint_before(u, lo, hi):
    hi = np.maximum(np.asarray(hi), np.asarray(lo) + 1)
    return (lo + np.floor(u * (hi - lo))).astype(np.int64)


def _params_before(op, seed, epoch, key, B, hw, pos):
    """The previous ``Mixup.params`` (NumPy throughout), the reference for the compiled one."""
    from augpipe import rng

    n = max({"batch": 1, "pair": B // 2, "elem": B}[op.mode], 1)
    base = (rng.stream_id(pos, 0) << 24) + int(key) * 64
    mix_a, cut_a = op.mixup_alpha, op._cut_alpha
    u, lam_mix, lam_cut = _draws_one_stream_at_a_time(seed, epoch, n, base, mix_a, cut_a)
    cut = u[0] < op.switch_prob if mix_a > 0 and cut_a > 0 else np.full(n, cut_a > 0)
    lam_mix = np.ones(n) if lam_mix is None else lam_mix
    lam_cut = np.ones(n) if lam_cut is None else lam_cut
    on = u[5] < op.prob
    lam = np.where(on, np.where(cut, lam_cut, lam_mix), 1.0)
    cut &= on & (lam < 1.0)
    H, W = hw
    if op.cutmix_minmax is not None:
        lo, hi = op.cutmix_minmax
        ch = _randint_before(u[6], int(H * lo), int(H * hi))
        cw = _randint_before(u[7], int(W * lo), int(W * hi))
        y0, x0 = _randint_before(u[8], 0, H - ch), _randint_before(u[9], 0, W - cw)
        boxes = np.stack([y0, y0 + ch, x0, x0 + cw], axis=1)
    else:
        r = np.sqrt(1.0 - lam)
        ch, cw = (H * r).astype(np.int64), (W * r).astype(np.int64)
        cy, cx = _randint_before(u[6], 0, H), _randint_before(u[7], 0, W)
        y0, y1 = np.clip(cy - ch // 2, 0, H), np.clip(cy + ch // 2, 0, H)
        x0, x1 = np.clip(cx - cw // 2, 0, W), np.clip(cx + cw // 2, 0, W)
        boxes = np.stack([y0, y1, x0, x1], axis=1)
    if op.correct_lam or op.cutmix_minmax is not None:
        area = (boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2])
        lam = np.where(cut, 1.0 - area / float(H * W), lam)
    lam = np.where(cut, lam, np.rint(lam * 256) / 256)  # Mixup: λ on the blend's grid
    if op.mode == "batch":
        rep = np.zeros(B, np.int64)
    elif op.mode == "pair":
        half = np.arange(B)
        rep = np.minimum(np.minimum(half, B - 1 - half), max(n - 1, 0))
    else:
        rep = np.arange(B)
    return lam[rep].astype(np.float32), cut[rep], boxes[rep]


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.parametrize(
    "kw",
    [dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.7, switch_prob=0.4),
     dict(mixup_alpha=0.0, cutmix_alpha=0.3, correct_lam=False),
     dict(mixup_alpha=0.5, cutmix_minmax=(0.2, 0.8), switch_prob=0.6),
     dict(mixup_alpha=2.0, cutmix_alpha=0.0, prob=0.5)],
)  # fmt: skip
def test_params_equal_the_numpy_params_bit_for_bit(mode, kw):
    op = Mixup(mode=mode, num_classes=5, **kw)
    for key, (B, hw) in enumerate([(1, (7, 5)), (2, (224, 224)), (9, (31, 17)), (64, (160, 96))]):
        for pos in (0, 3):
            got = op.params(4, 2, key, B, hw, pos)
            want = _params_before(op, 4, 2, key, B, hw, pos)
            for g, w in zip(got, want, strict=True):
                assert g.dtype == w.dtype and np.array_equal(g, w), (key, pos)


def test_host_mix_without_the_jit_equals_the_compiled_one(tmp_path):
    """NUMBA_DISABLE_JIT=1 runs the plain-Python definitions (``round_u8`` rounds with
    np.rint there): the same pixels, λ and boxes as compiled."""
    import os
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys
        import numpy as np
        from augpipe.ops.batch.mixup import Mixup
        x = np.random.default_rng(3).integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
        op = Mixup(0.8, 1.0, mode="elem", num_classes=3)
        out = []
        for key in range(6):
            lam, cut, boxes = op.params(1, 0, key, 5, (6, 7))
            op.mix_inplace(x, 1, 0, key, 0)
            out += [x.ravel().astype(np.float64), lam, cut, boxes.ravel()]
        np.save(sys.argv[1], np.concatenate(out))
    """)
    outs = []
    for jit in ("0", "1"):
        path = tmp_path / f"out{jit}.npy"
        env = dict(os.environ, NUMBA_DISABLE_JIT=jit)
        subprocess.run([sys.executable, "-c", script, str(path)], env=env, check=True, timeout=240)
        outs.append(np.load(path))
    assert np.array_equal(outs[0], outs[1])


def test_compiled_uniforms_equal_rng_uniforms():
    from augpipe import rng
    from augpipe.ops.batch.draws import uniforms

    for seed, epoch, n, streams in ((0, 0, 1, [0]), (3, 7, 64, range(28)),
                                    (2**40, 5, 300, [1 << 40, 5, (1 << 62) + 3, -1])):  # fmt: skip
        want = rng.uniforms(seed, epoch, np.arange(n), list(streams))
        assert np.array_equal(uniforms(seed, epoch, n, list(streams)), want)


def test_soft_targets_reject_a_label_outside_the_classes():
    from augpipe.errors import ConfigError

    op = Mixup(0.8, 1.0, num_classes=4)
    lam = np.float32([0.5, 0.5, 0.5])
    for bad in (4, -1):
        with pytest.raises(ConfigError, match=r"labels: expected class indices in \[0, 4\)"):
            op.targets(np.array([0, bad, 2]), lam)


def test_uint8_torch_batch_blends_by_the_host_rule():
    import torch

    op = Mixup(0.8, 1.0, mode="elem", num_classes=4)
    x = np.random.default_rng(2).integers(0, 256, (7, 8, 9, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 0, 1, 2])
    for key in range(8):
        a, ta = op.run(x.copy(), labels, 4, 0, key, 1)
        xt = torch.from_numpy(x.copy()).permute(0, 3, 1, 2)
        b, tb = op.run(xt, torch.from_numpy(labels), 4, 0, key, 1)
        assert np.array_equal(a, b.permute(0, 2, 3, 1).numpy()) and np.array_equal(ta, tb.numpy())
