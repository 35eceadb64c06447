"""What happens to a batch besides the fused pass: the batch ops and the output conversion.

Batch ops (``Compose.batch_ops``) run in position order, in two stages:

- ``"host"``, on the NHWC uint8 batch. A host ``Mixup`` that no host ``UserBatchOp`` precedes
  mixes the pixels in place in the process that built the batch (a loader worker, or the main
  process with ``workers=0``), right after the fused pass: in parallel across workers and off
  the main process. Its parameters are a function of (seed, epoch, batch key) only, so the batch
  is bit-identical whatever the number of workers; they are drawn once, there, and the λ each
  sample got travels back in the slot (``SlotRing.mix``), from which the main process builds
  the soft targets. Other host ops run in the main process.
- ``"device"``, in the main process on what the loader yields (after the copy, conversion and
  normalisation: torch tensors on the target device, or the converted NumPy batch).

The batch key is ``batch * world_size + rank``: each rank's batches draw their own parameters.
"""

from __future__ import annotations

import numpy as np

from augpipe.errors import WorkerError
from augpipe.spec.user import apply_batch_ops


def batch_key(batch: int, rank: int, world_size: int) -> int:
    return batch * world_size + rank


def worker_ops(pipeline) -> list:
    """The (position, op) host batch ops that run where the batch is built (module docstring)."""
    out = []
    for pos, op in getattr(pipeline, "batch_ops", ()):
        if op.stage != "host":
            continue
        if not hasattr(op, "mix_inplace"):  # a UserBatchOp: it and all after it, in main
            break
        out.append((pos, op))
    return out


def mix_bytes(pipeline, batch_size: int) -> int:
    """A slot's area for what the worker-side host ops drew: one float32 λ per op and sample."""
    return len(worker_ops(pipeline)) * int(batch_size) * 4


def mix_built(pipeline, images: np.ndarray, seed: int, epoch: int, key: int | None,
              drawn: np.ndarray | None = None) -> None:  # fmt: skip
    """Run the worker-side host ops on a just-built batch, in place (``key`` None: none);
    each op's λ goes to its row of ``drawn`` (the slot's ``mix`` area), for the targets."""
    if key is None or images.ndim != 4:
        return
    ops = worker_ops(pipeline)
    rows = drawn.reshape(len(ops), -1) if drawn is not None and drawn.size else None
    for k, (pos, op) in enumerate(ops):
        lam = op.mix_inplace(images, seed, epoch, key, pos)
        if rows is not None:
            rows[k, : len(lam)] = lam


def run_here(loader, indices: np.ndarray, slot: int, epoch: int, batch: int) -> None:
    """Build a batch in the main process (``workers=0``) into ``slot``."""
    from augpipe.loader.worker import describe, locate_failure  # (worker imports this module)

    out = loader._ring.images(slot)[: len(indices)]
    kw = {"extra": loader._ring.extra(slot)} if loader._targets is not None else {}
    try:
        loader.pipeline.run_batch(loader.dataset, indices, loader.seed, epoch, out, **kw)
    except Exception as exc:
        index = locate_failure(loader.pipeline, loader.dataset, indices, loader.seed, epoch, out)
        err = WorkerError(f"pipeline failed on sample {index} (batch {batch} of epoch "
                          f"{epoch}, workers=0): {describe(exc)}")  # fmt: skip
        err.index = index
        raise err from exc
    key = batch_key(batch, loader.rank, loader.world_size)
    mix_built(loader.pipeline, out, loader.seed, epoch, key, loader._ring.mix(slot))


def make_converter(loader):
    """A TorchConverter for ``output="torch"``, None for NumPy output."""
    from augpipe.errors import bad_param

    if loader.output == "torch":
        import torch

        from augpipe.loader.device import TorchConverter

        mean, std = loader._mean_std if loader._mean_std else (None, None)
        return TorchConverter(loader.device, getattr(torch, loader._dtype), mean, std,
                              loader.channels_last, (loader.batch_size, *loader.sample_shape),
                              copy=loader.copy)  # fmt: skip
    if loader.device != "cpu":
        raise bad_param(
            "device",
            "'cpu' with output='numpy'",
            loader.device,
            "use output='torch' to have batches moved to a GPU",
        )
    return None


def convert(loader, images: np.ndarray, labels: np.ndarray, epoch: int = 0, batch: int = 0,
            indices=None, drawn=None):  # fmt: skip
    """(output batch, keeps): the batch ops and the conversion; ``keeps``: the output is a
    view of the slot (hold the slot until the consumer moves on); ``drawn``: the slot's
    ``mix`` area (what the worker-side ops drew), None to draw again here."""
    ops = getattr(loader.pipeline, "batch_ops", ())
    key = (loader.seed, epoch, batch_key(batch, loader.rank, loader.world_size), indices)
    if ops:
        built = worker_ops(loader.pipeline)
        images, labels = _host_ops(ops, built, images, labels, *key, drawn)
    if loader._torch is not None:
        out, keeps = loader._torch(images, labels)
    else:
        out, keeps = _numpy_convert(loader, images, labels)
    if ops:
        out = apply_batch_ops(ops, "device", *out, *key)
    return out, keeps


def _host_ops(ops, built, images, labels, seed, epoch, key, indices, drawn=None):
    row = {pos: k for k, (pos, _) in enumerate(built)} if images.ndim == 4 else {}
    rows = drawn.reshape(len(row), -1) if drawn is not None and drawn.size and row else None
    for pos, op in ops:
        if op.stage != "host":
            continue
        if pos in row:  # pixels already mixed where the batch was built: the targets only
            if rows is not None:  # with the λ the worker drew and the pixels got
                labels = op.targets(labels, rows[row[pos], : len(labels)])
            else:
                labels = op.soft_targets(labels, images.shape[1:3], seed, epoch, key, pos)
        else:
            images, labels = op.run(images, labels, seed, epoch, key, pos, indices)
    return images, labels


def _numpy_convert(loader, images: np.ndarray, labels: np.ndarray):
    if loader._dtype == "uint8" and not loader.copy:
        return (images, labels), True
    # into recycled memory (augpipe.loader.buffers): no new pages to fault in per batch
    bufs = loader._host_bufs
    x = bufs.empty(images.shape, np.uint8 if loader._dtype == "uint8" else np.float32)
    np.copyto(x, images)
    if loader._dtype == "uint8":
        return (x, labels), False
    if loader._mean_std is not None:
        mean, std = loader._mean_std
        # one row of pixels at a time (NumPy's inner loop over C values alone is slow)
        rows = x.reshape(-1, x.shape[-2] * x.shape[-1]) if x.ndim >= 2 else x
        reps = rows.shape[-1] // max(1, np.size(mean))
        rows -= np.tile(np.asarray(mean, np.float64), reps)
        rows *= np.tile(1.0 / np.asarray(std, np.float64), reps)
    else:
        x *= 1.0 / 255.0
    if loader._dtype == "float32":
        return (x, labels), False
    y = bufs.empty(x.shape, loader._dtype)
    np.copyto(y, x, casting="unsafe")  # what astype does
    return (y, labels), False
