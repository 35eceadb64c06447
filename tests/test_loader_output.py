"""Output formats: NumPy/torch layouts, dtypes, normalisation numerics, slot lifetime, and the
device path (staging buffers + conversion) run on the CPU."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from loader_fakes import FakeDataset, FakePipeline, index_of

from augpipe.errors import ConfigError
from augpipe.loader.device import TorchConverter
from augpipe.loader.loader import Loader

MEAN = np.array([0.5, 0.4, 0.3])
STD = np.array([0.25, 0.2, 0.1])


def _first(**kw):
    kw.setdefault("workers", 0)
    shape = kw.pop("shape", (6, 5, 3))
    with Loader(FakeDataset(10), 4, FakePipeline(shape), shuffle=False, copy=True, **kw) as lo:
        return next(iter(lo))


def _raw(n=4, shape=(6, 5, 3)):
    return _first(output="numpy", shape=shape)[0][:n]


def _reference(raw):
    return (raw.astype(np.float64) / 255.0 - MEAN) / STD


def test_numpy_uint8_nhwc():
    images, labels = _first(output="numpy")
    assert images.shape == (4, 6, 5, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == FakeDataset(10).labels[:4].tolist()


@pytest.mark.parametrize("normalize", ["dataset", (MEAN, STD)])
def test_numpy_normalisation_numerics(normalize):
    images, _ = _first(output="numpy", normalize=normalize)
    assert images.dtype == np.float32
    np.testing.assert_allclose(images, _reference(_raw()), rtol=1e-5, atol=1e-5)


def test_numpy_float_without_normalisation_is_unit_range():
    images, _ = _first(output="numpy", dtype="float16")
    assert images.dtype == np.float16
    np.testing.assert_allclose(images, _raw() / 255.0, atol=1e-3)


def test_torch_default_is_contiguous_nchw_uint8():
    images, labels = _first()
    assert images.shape == (4, 3, 6, 5) and images.dtype == torch.uint8
    assert images.is_contiguous()
    assert torch.equal(images, torch.from_numpy(_raw()).permute(0, 3, 1, 2))
    assert labels.dtype == torch.int64


@pytest.mark.parametrize("shape", [(3, 7, 5, 3), (2, 4, 9, 4), (1, 3, 3, 2), (0, 4, 4, 3),
                                   (2, 5, 6, 1), (2, 5, 6, 6)])  # fmt: skip
def test_cpu_planar_reorder_equals_torch_and_owns_its_memory(shape):
    from augpipe.loader.device import convert

    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8))
    y = convert(x, torch.uint8, None, None, channels_last=False)
    assert y.is_contiguous() and y.shape == (shape[0], shape[3], shape[1], shape[2])
    assert torch.equal(y, x.permute(0, 3, 1, 2))
    if x.numel() and shape[3] > 1:  # one channel: already NCHW, a view (the loader holds it)
        assert y.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
        x.zero_()  # the batch may be kept: the next slot's pixels never reach it
        assert torch.equal(
            y,
            torch.from_numpy(
                np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
            ).permute(0, 3, 1, 2),
        )
    z = convert(x[:, :, ::2], torch.uint8, None, None, channels_last=False)  # not contiguous
    assert z.is_contiguous() and torch.equal(z, x[:, :, ::2].permute(0, 3, 1, 2))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), ("float16", 2e-3),
                                       (torch.bfloat16, 1e-2)])  # fmt: skip
@pytest.mark.parametrize("channels_last", [False, True])
def test_torch_normalisation_dtype_and_layout(dtype, tol, channels_last):
    images, _ = _first(normalize="dataset", dtype=dtype, channels_last=channels_last)
    want = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    assert images.dtype == want and images.shape == (4, 3, 6, 5)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert images.is_contiguous(memory_format=fmt)
    ref = _reference(_raw()).transpose(0, 3, 1, 2)
    got = images.float().numpy()
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * 4)


def test_multi_crop_pipelines_keep_the_crop_axis():
    images, _ = _first(shape=(2, 6, 5, 3), normalize="dataset")
    assert images.shape == (4, 2, 3, 6, 5)
    images, _ = _first(output="numpy", shape=(2, 6, 5, 3))
    assert images.shape == (4, 2, 6, 5, 3)


def test_views_stay_valid_until_next_and_copy_mode_copies():
    ds = FakeDataset(64)
    with Loader(ds, 4, FakePipeline(), workers=2, prefetch=2, output="numpy") as lo:
        it = iter(lo)
        images, _ = next(it)
        snapshot = images.copy()
        time.sleep(0.3)  # workers keep filling the other slots meanwhile
        np.testing.assert_array_equal(images, snapshot)
        seen = [index_of(images)]
        for images, _ in it:
            seen.append(index_of(images))
        assert sorted(np.concatenate(seen).tolist()) == list(range(64))
    with Loader(ds, 4, FakePipeline(), workers=2, output="numpy", copy=True) as lo:
        kept = [images for images, _ in lo]  # keeping every batch is safe with copy=True
        assert sorted(np.concatenate([index_of(k) for k in kept]).tolist()) == list(range(64))


def test_torch_channels_last_uint8_is_zero_copy_unless_copy():
    with Loader(FakeDataset(8), 4, FakePipeline(), workers=0, channels_last=True) as lo:
        images, _ = next(iter(lo))
        ring = lo._ring
        slot_ptrs = {ring.images(s).ctypes.data for s in range(ring.layout.n_slots)}
        assert images.data_ptr() in slot_ptrs
        assert images.is_contiguous(memory_format=torch.channels_last)
    images, _ = _first(channels_last=True)
    assert images.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float16])
def test_staged_device_path_matches_direct_conversion(dtype):
    """The CUDA path's staging double-buffer, copy and conversion, run on the CPU."""
    mean, std = (MEAN * 255).astype(np.float32), (STD * 255).astype(np.float32)
    norm = (mean, std) if dtype != torch.uint8 else (None, None)
    args = ("cpu", dtype, *norm, True, (4, 6, 5, 3))
    staged, direct = TorchConverter(*args, staged=True), TorchConverter(*args, copy=True)
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (n, 6, 5, 3), dtype=np.uint8) for n in (4, 4, 3, 4)]
    labels = [np.arange(len(b), dtype=np.int64) for b in batches]
    outs = []
    for b, lab in zip(batches, labels):
        (y, yl), keeps = staged(b, lab)
        assert not keeps
        for st_img, _st_lab in staged._staging:
            assert y.untyped_storage().data_ptr() != st_img.untyped_storage().data_ptr()
        outs.append((y, yl))
    assert len({t[0].data_ptr() for t in staged._staging}) == 2  # two reused buffers
    for (y, yl), b, lab in zip(outs, batches, labels):  # earlier outputs were not overwritten
        (ref, rl), _ = direct(b, lab)
        assert y.dtype == dtype and y.shape == ref.shape
        assert torch.equal(y, ref) and torch.equal(yl, rl)


def test_bad_output_options():
    with pytest.raises(ConfigError, match="bfloat16"):
        _first(output="numpy", dtype="bfloat16")
    with pytest.raises(ConfigError, match="normalize"):
        _first(normalize=(MEAN, STD[:2]))
    with pytest.raises(ConfigError, match="dtype"):
        _first(normalize="dataset", dtype="uint8")
    with pytest.raises(ConfigError, match="dtype"):
        _first(dtype="int7")
    with pytest.raises(ConfigError, match="device"):
        _first(output="numpy", device="cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            _first(device="cuda")


def _nhwc(x) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else x.float().permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("kw", [{}, {"dtype": "float32"}, {"normalize": "dataset"},
                                {"dtype": "float16", "channels_last": True},
                                {"channels_last": True, "copy": True},
                                {"output": "numpy", "copy": True},
                                {"output": "numpy", "normalize": "dataset"},
                                {"output": "numpy", "dtype": "float16"}])  # fmt: skip
@pytest.mark.parametrize("workers", [0, 2])
def test_batches_in_recycled_memory_kept_or_dropped(kw, workers):
    """The main process builds NCHW / float / copied batches in recycled host memory: a batch
    the consumer keeps is never overwritten (more kept than the recycler holds, too), and so
    are the batches it drops while it iterates."""
    ref = {}
    with Loader(FakeDataset(40), 4, FakePipeline(), shuffle=False, output="numpy", copy=True,
                workers=0) as lo:  # fmt: skip
        for b, (x, _) in enumerate(lo):
            ref[b] = x
    kept = []
    with Loader(FakeDataset(40), 4, FakePipeline(), shuffle=False, workers=workers, **kw) as lo:
        for x, _ in lo:
            kept.append(x)
        lo.set_epoch(0)
        for b, (x, _) in enumerate(lo):  # dropped ones: the memory goes round
            np.testing.assert_array_equal(_nhwc(x), _nhwc(kept[b]))
    for b, x in enumerate(kept):
        got = _nhwc(x).astype(np.float32)
        if x.dtype in (np.uint8, torch.uint8):
            np.testing.assert_array_equal(got, ref[b])
        elif "normalize" in kw:
            np.testing.assert_allclose(got, _reference(ref[b]), rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_allclose(got, ref[b] / 255.0, atol=2e-3)


def test_batch_buffers_reuse_only_what_no_one_references():
    from augpipe.loader.buffers import BatchBuffers

    bufs = BatchBuffers(keep=2)
    shape = (40, 1 << 20)  # 40 MiB: a new allocation is fresh zeroed pages, never old bytes

    def filled(v):
        a = bufs.empty(shape, np.uint8)
        a[:] = v
        return a

    a = filled(7)
    view = a[3:, 5:]  # views, tensors over them and their NumPy arrays hold the block
    t = torch.from_numpy(a)[1:]
    n = t.numpy()
    del a
    assert not filled(0).any()  # ... so another block was handed out (and came back)
    del view, t
    assert not filled(0).any()
    del n  # the last reference: its block comes back, with its old bytes
    assert (bufs.empty(shape, np.uint8) == 7).all()
    held = [filled(1), filled(2), filled(3)]  # more than keep: plain allocations, all distinct
    assert len({h.ctypes.data for h in held}) == 3 and [int(h[0, 0]) for h in held] == [1, 2, 3]
    assert bufs.empty((2, 3), np.float32).dtype == np.float32
