"""The worker process: receive (batch, slot) tasks, run the pipeline straight into the slot.

Control messages on a per-worker pipe are a few integers; the indices travel in the slot
itself and the pixels never leave shared memory.  Messages from the worker:
``("ready", wid)``, ``("done", batch, slot)``, ``("error", batch, slot, index, summary, tb)``
and ``("fatal", wid, summary, tb)`` when the worker cannot start.
"""

from __future__ import annotations

import os
import pickle
import signal
import traceback
from multiprocessing.connection import Connection

import numpy as np

from augpipe.loader.shm import SlotLayout, SlotRing

# how often an idle worker checks that its parent is still alive (an orphan exits by itself)
_PARENT_POLL_S = 1.0


def locate_failure(pipeline, dataset, indices: np.ndarray, seed: int, epoch: int, out) -> int:
    """Re-run a failed batch sample by sample to name the sample that fails (-1 if none does).

    Only runs after a failure, so the common path pays nothing for it.
    """
    for k, idx in enumerate(indices):
        try:
            pipeline.run_batch(dataset, indices[k : k + 1], seed, epoch, out[k : k + 1])
        except Exception:
            return int(idx)
    return -1


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run_task(pipeline, dataset, ring: SlotRing, msg: tuple):
    """Execute one task; returns the reply message."""
    batch, slot, n, seed, epoch = msg
    indices = ring.indices(slot)[:n].copy()
    out = ring.images(slot)[:n]
    kw = {"extra": ring.extra(slot)} if ring.layout.extra_bytes else {}  # targets' area
    try:
        pipeline.run_batch(dataset, indices, seed, epoch, out, **kw)
    except Exception as exc:
        tb = traceback.format_exc()
        index = locate_failure(pipeline, dataset, indices, seed, epoch, out)
        return ("error", batch, slot, index, describe(exc), tb)
    return ("done", batch, slot)


def _limit_threads(forked: bool) -> None:
    # Each worker is one core's worth of work: library thread pools would only oversubscribe.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if forked:
        # Never touch OpenCV's thread pool in a forked child: if the parent had started it,
        # cv2.setNumThreads() waits for pool threads that do not exist here and deadlocks.
        # The worker's own path (simplejpeg/region decode, Numba kernels) runs no cv2 pool.
        return
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def worker_main(
    wid: int,
    payload: bytes,
    layout: SlotLayout,
    shm_path: str,
    conn: Connection,
    parent: int,
    forked: bool = False,
) -> None:
    # Ctrl-C goes to the whole process group; the main process stops the workers in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # So does SIGTERM from torchrun (killpg) and Slurm: the trainer finishes its step and
    # checkpoints first. An orphan still exits by itself; shutdown escalates to SIGKILL.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        _limit_threads(forked)
        # a fresh copy of the dataset (it pickles only its path), so no LMDB handle
        # opened before a fork is ever used here
        dataset, pipeline = pickle.loads(payload)
        ring = SlotRing.attach(layout, shm_path)
    except Exception as exc:
        conn.send(("fatal", wid, describe(exc), traceback.format_exc()))
        return
    conn.send(("ready", wid))
    try:
        while True:
            if not conn.poll(_PARENT_POLL_S):
                if os.getppid() != parent:
                    return
                continue
            msg = conn.recv()
            if msg is None:
                return
            conn.send(run_task(pipeline, dataset, ring, msg))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the main process went away
    finally:
        close = getattr(dataset, "close", None)
        if close is not None:
            close()
