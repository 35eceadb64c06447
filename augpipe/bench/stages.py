"""Measure each stage of the pipeline alone, then the whole, for ``augpipe bench``.

Every function returns plain numbers (images/s with median/min/max over repeats, warm-up
discarded) so the verdict can be computed, printed and saved as JSON. Each stage runs for
about ``seconds`` (at least a few repeats), so the whole bench takes a predictable time.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class BenchConfig:
    model: str = "small_cnn"
    res: int = 224
    batch_size: int = 64
    workers: tuple[int, ...] = (1, 2)
    device: str = "cpu"
    amp: str = "none"
    channels_last: bool = False
    seconds: float = 2.0
    seed: int = 0
    pipeline: str | None = None  # --pipeline: a JSON file or string spec (default: the trainer's)


def timed_rates(
    fn: Callable[[], int], seconds: float, min_repeats: int = 3, warmup: int = 1
) -> dict[str, float | list[float]]:
    """Call ``fn()`` (returns the items it processed) until ``seconds`` pass and at least
    ``min_repeats`` timed calls ran, after ``warmup`` discarded calls; rates in items/s."""
    for _ in range(warmup):
        fn()
    rates: list[float] = []
    start = time.perf_counter()
    while len(rates) < min_repeats or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        n = fn()
        dt = time.perf_counter() - t0
        rates.append(n / dt if dt > 0 else float("inf"))
        if len(rates) >= 200:
            break
    return summary(rates)


def summary(rates: list[float]) -> dict[str, float | list[float]]:
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "rates": [round(r, 2) for r in rates],
    }


def _sample(n: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)[: min(n, k)].astype(np.int64)


# ------------------------------------------------------------------------------------ disk


def drop_page_cache(paths) -> bool:
    """Ask the kernel to drop the cached pages of ``paths`` (clean pages only; the files must
    not be mapped by this process). Returns False where posix_fadvise is unavailable."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def warm_page_cache(paths, chunk: int = 1 << 22) -> None:
    """Read ``paths`` front to back once so that their pages are cached."""
    for p in paths:
        with open(p, "rb", buffering=0) as fh:
            while fh.read(chunk):
                pass


def fits_in_page_cache(nbytes: int) -> bool:
    """Whether the shards can stay cached: under 80% of the memory the kernel could give."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return nbytes < 0.8 * int(line.split()[1]) * 1024
    except OSError:
        pass
    return True


def shard_read(ds, seconds: float, seed: int) -> dict:
    """Random-order record reads touching every byte: cold (cache dropped) and warm."""
    paths = [str(p) for p in ds.shard_files()]
    nbytes = sum(os.path.getsize(p) for p in paths)
    order = _sample(len(ds), len(ds), seed)
    sink = np.empty(1 << 20, dtype=np.uint8)

    def read(indices: np.ndarray) -> tuple[int, int]:
        total = 0
        for i in indices:
            buf = ds.raw(int(i))
            n = min(len(buf), len(sink))
            sink[:n] = buf[:n]  # copy: makes the kernel actually fault the pages in
            total += len(buf)
        return len(indices), total

    # Cold: close our mapping first (mapped pages are not dropped), drop, reopen, read once.
    ds.close()
    dropped = drop_page_cache(paths)
    k = min(len(order), 2000)
    t0 = time.perf_counter()
    n, b = read(order[:k])
    dt = time.perf_counter() - t0
    cold = {"images_per_s": n / dt, "mb_per_s": b / dt / 1e6, "records": n, "dropped": dropped}

    chunk = order[: min(len(order), 1000)]
    read(chunk)  # make sure the chunk is cached
    warm = timed_rates(lambda: read(chunk)[0], seconds, warmup=0)
    fits = fits_in_page_cache(nbytes)
    if fits:
        # The cold read dropped the shards from the page cache; put them back, or the stages
        # after this one would measure the disk instead of decode, augment and the loader.
        warm_page_cache(paths)
    return {
        "cold": cold,
        "warm": warm,
        "bytes": nbytes,
        "fits_in_cache": fits,
    }


# ---------------------------------------------------------------------------- CPU stages


def decode_only(ds, pipeline, seconds: float, seed: int, batch: int = 64) -> dict:
    """The pipeline's own decode alone (the same crop regions and DCT scales as
    ``run_batch``, no augmentation), one process (per core)."""
    bound = pipeline.bind(ds)
    idx = _sample(len(ds), batch, seed + 1)
    epoch = [0]

    def run() -> int:
        n = bound.decode_batch(ds, idx, seed, epoch[0])
        epoch[0] += 1  # new crops each repeat
        return n

    return timed_rates(run, seconds)


def decode_augment(ds, pipeline, seconds: float, seed: int, batch: int = 64) -> dict:
    """The pipeline's own per-batch path (crop-aware decode + fused augmentation), one process."""
    bound = pipeline.bind(ds)
    if getattr(ds, "has_targets", False):  # carrying the targets is part of the stage
        from augpipe.targets.batch import TargetPipeline

        bound = TargetPipeline(bound, ds)
    idx = _sample(len(ds), batch, seed + 2)
    out = np.empty((len(idx), *bound.output_shape), dtype=np.uint8)
    epoch = [0]

    def run() -> int:
        bound.run_batch(ds, idx, seed, epoch[0], out)
        epoch[0] += 1  # new random parameters each repeat
        return len(idx)

    return timed_rates(run, seconds, warmup=2)  # warm-up loads the compiled kernels


def loader_rate(ds, pipeline, workers: int, batch_size: int, seconds: float, seed: int) -> dict:
    """The Loader alone (uint8 NumPy batches), timed over windows of batches after warm-up."""
    from augpipe.loader.loader import Loader

    loader = Loader(ds, batch_size, pipeline, seed=seed, workers=workers, output="numpy")
    try:
        state = {"it": None, "epoch": 0}

        def next_batch():
            while True:
                if state["it"] is None:
                    loader.set_epoch(state["epoch"])
                    state["it"] = iter(loader)
                try:
                    return next(state["it"])
                except StopIteration:
                    state["it"] = None
                    state["epoch"] += 1

        window = max(2, 2 * max(1, workers))

        def run() -> int:
            n = 0
            for _ in range(window):
                images, _labels = next_batch()
                n += len(images)
            return n

        return timed_rates(run, seconds, warmup=1)  # warm-up: start the workers, fill prefetch
    finally:
        loader.close()


# ------------------------------------------------------------------------ device stages


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def transfer(cfg: BenchConfig, seconds: float) -> dict:
    """Host->device copy of a uint8 batch, pinned and pageable (CUDA only)."""
    import torch

    shape = (cfg.batch_size, cfg.res, cfg.res, 3)
    dev = torch.empty(shape, dtype=torch.uint8, device="cuda")
    out = {}
    for kind, pin in (("pinned", True), ("pageable", False)):
        host = torch.empty(shape, dtype=torch.uint8, pin_memory=pin)

        def run(host=host) -> int:
            dev.copy_(host, non_blocking=True)
            torch.cuda.synchronize()
            return cfg.batch_size

        out[kind] = timed_rates(run, seconds / 2, min_repeats=5)
    return out


def model_step_fn(cfg: BenchConfig, num_classes: int):
    """(step(x, y), model): one optimiser step at the chosen precision."""
    import torch

    from augpipe.models import get_model

    model = get_model(cfg.model, num_classes=num_classes).to(cfg.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    amp_dtype = {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.amp]
    scaler = torch.amp.GradScaler(cfg.device, enabled=cfg.amp == "fp16")
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(x, y) -> float:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(cfg.device, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss

    return step, model


def model_compute(cfg: BenchConfig, num_classes: int, seconds: float) -> dict:
    """Forward + backward + update on synthetic data already on the device: the ceiling."""
    import torch

    step, _model = model_step_fn(cfg, num_classes)
    g = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(cfg.batch_size, 3, cfg.res, cfg.res, generator=g).to(cfg.device)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (cfg.batch_size,), generator=g).to(cfg.device)
    if cfg.device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def run() -> int:
        step(x, y)
        _sync(cfg.device)
        return cfg.batch_size

    out = timed_rates(run, seconds, min_repeats=2, warmup=1)
    if cfg.device == "cuda":
        out["peak_memory"] = int(torch.cuda.max_memory_allocated())
        out["device_memory"] = int(torch.cuda.get_device_properties(0).total_memory)
    else:
        out["peak_memory"] = None
        out["device_memory"] = None
    return out


def end_to_end(ds, pipeline, cfg: BenchConfig, workers: int, seconds: float) -> dict:
    """Real training steps fed by the Loader; the share of time spent waiting for data."""
    from augpipe.loader.loader import Loader

    step, _model = model_step_fn(cfg, len(ds.classes))
    loader = Loader(
        ds,
        cfg.batch_size,
        pipeline,
        seed=cfg.seed,
        workers=workers,
        device=cfg.device,
        dtype="float32",
        normalize="dataset",
        channels_last=cfg.channels_last,
        drop_last=len(ds) >= cfg.batch_size,
    )
    wait = busy = 0.0
    images = steps = 0
    warm_steps = 2
    try:
        epoch = 0
        start = None
        while True:
            loader.set_epoch(epoch)
            it = iter(loader)
            while True:
                t0 = time.perf_counter()
                try:
                    x, y = next(it)
                except StopIteration:
                    break
                if isinstance(y, dict):  # detection targets: the classifier trains on a stand-in
                    from augpipe.targets.batch import image_labels

                    y = image_labels(y, len(x))
                t1 = time.perf_counter()
                step(x, y)
                _sync(cfg.device)
                t2 = time.perf_counter()
                steps += 1
                if steps <= warm_steps:  # worker start-up and first-step allocations
                    continue
                start = start if start is not None else t0
                wait += t1 - t0
                busy += t2 - t1
                images += len(y)
                if t2 - start >= seconds and steps >= warm_steps + 2:
                    return {
                        "images_per_s": images / (wait + busy),
                        "data_wait_fraction": wait / (wait + busy),
                        "steps": steps - warm_steps,
                        "workers": workers,
                    }
            epoch += 1
    finally:
        loader.close()
