"""The worker's loop: receive (epoch, batch, slot) tasks, run the pipeline straight into the slot.

Messages on a worker's socket are small JSON arrays (``send``/``recv`` below; nothing is ever
pickled); the indices travel in the slot itself and the pixels never leave shared memory.

- main -> worker: ``[epoch, batch, slot, n, seed, key]`` (``key``: the batch's key for the
  batch ops run here, ``augpipe.loader.stages``); an empty frame means stop.
- worker -> main: ``["ready", wid]``, ``["done", epoch, batch, slot]``,
  ``["error", epoch, batch, slot, index, summary, traceback]``, and
  ``["fatal", wid, summary, traceback]`` when the worker cannot start.

A forked worker runs ``forked_main`` with the parent's dataset and pipeline objects (inherited
by ``fork``, never serialised); a fresh interpreter runs ``augpipe.loader.fresh``, which
rebuilds them from their JSON description. Both then run ``serve``.
"""

from __future__ import annotations

import json
import os
import signal
import traceback
from multiprocessing.connection import Connection

import numpy as np

from augpipe.loader.shm import SlotLayout, SlotRing
from augpipe.loader.stages import mix_built

# how often an idle worker checks that its parent is still alive (an orphan exits by itself)
_PARENT_POLL_S = 1.0


def send(conn: Connection, obj) -> None:
    conn.send_bytes(json.dumps(obj).encode())


def recv(conn: Connection):
    """The next message; None for the empty stop frame."""
    data = conn.recv_bytes()
    return json.loads(data) if data else None


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


def run_task(pipeline, dataset, ring: SlotRing, msg: list) -> list:
    """Execute one task; returns the reply message."""
    epoch, batch, slot, n, seed, key = msg
    indices = ring.indices(slot)[:n].copy()
    out = ring.images(slot)[:n]
    kw = {"extra": ring.extra(slot)} if ring.layout.extra_bytes else {}  # targets' area
    try:
        pipeline.run_batch(dataset, indices, seed, epoch, out, **kw)
        mix_built(pipeline, out, seed, epoch, key, ring.mix(slot))  # host Mixup/CutMix, in place
    except Exception as exc:
        tb = traceback.format_exc()
        index = locate_failure(pipeline, dataset, indices, seed, epoch, out)
        return ["error", epoch, batch, slot, index, describe(exc), tb]
    return ["done", epoch, batch, slot]


def limit_threads(forked: bool) -> None:
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


def ignore_stop_signals() -> None:
    # Ctrl-C goes to the whole process group; the main process stops the workers in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # So does SIGTERM from torchrun (killpg) and Slurm: the trainer finishes its step and
    # checkpoints first. An orphan still exits by itself; shutdown escalates to SIGKILL.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def serve(conn: Connection, pipeline, dataset, ring: SlotRing, parent: int) -> None:
    """Answer tasks until the stop frame, the main process's exit, or a closed socket."""
    try:
        while True:
            if not conn.poll(_PARENT_POLL_S):
                if os.getppid() != parent:
                    return
                continue
            msg = recv(conn)
            if msg is None:
                return
            send(conn, run_task(pipeline, dataset, ring, msg))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the main process went away
    finally:
        close = getattr(dataset, "close", None)
        if close is not None:
            close()


def forked_main(
    wid: int,
    conn: Connection,
    stderr_fd: int,
    dataset,
    pipeline,
    layout: SlotLayout,
    shm_path: str,
    parent: int,
) -> None:
    """Entry of a forked worker: the dataset reopens its shards here on first use (it notices
    the new pid), so no LMDB handle opened before the fork is used."""
    os.dup2(stderr_fd, 2)  # the pool keeps this worker's stderr (its tail goes in error reports)
    ignore_stop_signals()
    try:
        limit_threads(forked=True)
        ring = SlotRing.attach(layout, shm_path)
    except Exception as exc:
        send(conn, ["fatal", wid, describe(exc), traceback.format_exc()])
        return
    send(conn, ["ready", wid])
    serve(conn, pipeline, dataset, ring, parent)
