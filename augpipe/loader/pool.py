"""Worker processes, their pipes, and the shared slot ring, with cleanup that always runs.

``WorkerPool.shutdown()`` (also run by ``weakref.finalize`` when the pool is garbage
collected, and at interpreter exit) stops every worker — politely, then with SIGTERM, then
SIGKILL — joins them so no zombie is left, and unlinks the shared-memory file.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import time
import weakref
from multiprocessing.connection import wait as wait_ready

from augpipe.errors import WorkerError
from augpipe.loader.shm import SlotLayout, SlotRing
from augpipe.loader.worker import worker_main

_POLL_S = 0.5  # how often a waiting main process checks that its workers are alive
_STARTUP_TIMEOUT_S = 300.0
_JOIN_S = 2.0


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (SIGKILL usually means the out-of-memory killer)" if -code == 9 else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


def _shutdown(procs: list, conns: list, ring: SlotRing) -> None:
    for c in conns:
        try:
            c.send(None)
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + _JOIN_S
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(_JOIN_S)
        if p.is_alive():
            p.kill()
            p.join()
    for c in conns:
        c.close()
    ring.unlink()


class WorkerPool:
    """``workers`` processes sharing one ``SlotRing``; tasks are (batch, slot, n, seed, epoch)."""

    def __init__(self, dataset, pipeline, layout: SlotLayout, workers: int, start_method: str):
        self.ring = SlotRing.create(layout)
        self.procs: list = []
        self.conns: list = []
        self._finalizer = weakref.finalize(self, _shutdown, self.procs, self.conns, self.ring)
        ctx = mp.get_context(start_method)
        payload = pickle.dumps((dataset, pipeline))
        try:
            for wid in range(workers):
                ours, theirs = ctx.Pipe(duplex=True)
                p = ctx.Process(
                    target=worker_main,
                    args=(
                        wid,
                        payload,
                        layout,
                        self.ring.path,
                        theirs,
                        os.getpid(),
                        start_method == "fork",
                    ),
                    name=f"augpipe-worker-{wid}",
                    daemon=True,
                )
                p.start()
                theirs.close()
                self.procs.append(p)
                self.conns.append(ours)
            self._await_ready()
        except BaseException:
            self.shutdown()
            raise
        # every worker has mapped the file: its name is no longer needed
        self.ring.unlink()
        self.inflight = [0] * workers
        self._owner: dict[int, int] = {}  # batch -> worker
        self._rr = 0

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def _await_ready(self) -> None:
        pending = set(range(len(self.procs)))
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while pending:
            if time.monotonic() > deadline:
                raise WorkerError(
                    f"loader workers {sorted(pending)} did not start within "
                    f"{_STARTUP_TIMEOUT_S:.0f} s; try Loader(start_method='spawn') or workers=0"
                )
            for wid in list(pending):
                conn = self.conns[wid]
                if conn.poll():
                    msg = conn.recv()
                    if msg[0] == "fatal":
                        raise WorkerError(
                            f"loader worker {wid} could not start: {msg[2]}\n\n"
                            f"Worker traceback:\n{msg[3]}"
                        )
                    pending.discard(wid)
                elif not self.procs[wid].is_alive():
                    raise WorkerError(
                        f"loader worker {wid} (pid {self.procs[wid].pid}) "
                        f"{_describe_exit(self.procs[wid].exitcode)} while starting"
                    )
            if pending:
                wait_ready([self.conns[w] for w in pending], timeout=0.05)

    def submit(self, batch: int, slot: int, indices, seed: int, epoch: int) -> None:
        n = len(indices)
        self.ring.indices(slot)[:n] = indices
        low = min(self.inflight)
        # least loaded worker; round-robin among equals so work spreads from the start
        cands = [w for w, k in enumerate(self.inflight) if k == low]
        w = cands[self._rr % len(cands)]
        self._rr += 1
        self.inflight[w] += 1
        self._owner[batch] = w
        try:
            self.conns[w].send((batch, slot, n, seed, epoch))
        except OSError:  # the worker is gone: say which and why
            self.check_alive(f"before batch {batch} of epoch {epoch} could be handed to it")
            raise

    def check_alive(self, context: str) -> None:
        for wid, p in enumerate(self.procs):
            if p.exitcode is not None:
                raise WorkerError(
                    f"loader worker {wid} (pid {p.pid}) {_describe_exit(p.exitcode)} {context}; "
                    "the loader was stopped. Lower workers, prefetch or batch_size if memory "
                    "is short"
                )

    def receive(self, context: str) -> list[tuple]:
        """Messages that arrive within ``_POLL_S``; raises WorkerError if a worker died."""
        ready = wait_ready(self.conns + [p.sentinel for p in self.procs], timeout=_POLL_S)
        msgs = []
        for obj in ready:
            if obj in self.conns:
                try:
                    msg = obj.recv()
                except (EOFError, OSError):
                    continue  # its sentinel tells us why
                if msg[0] in ("done", "error"):
                    w = self._owner.pop(msg[1], None)
                    if w is not None:
                        self.inflight[w] -= 1
                msgs.append(msg)
        if not msgs:
            self.check_alive(context)
        return msgs

    def shutdown(self) -> None:
        self._finalizer()
