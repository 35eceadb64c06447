"""Worker processes, their sockets, and the shared slot ring, with cleanup that always runs.

``WorkerPool.shutdown()`` (also run by ``weakref.finalize`` when the pool is garbage
collected, and at interpreter exit) stops every worker — politely, then with SIGTERM, then
SIGKILL — joins them so no zombie is left, unlinks the shared-memory file, and shows anything
the workers wrote to stderr, labelled with the worker's name.

Start methods (see docs/loader.md): ``fork`` forks this process (fast; only safe while no other
thread runs), ``spawn`` starts fresh interpreters of ``augpipe.loader.fresh`` that receive the
dataset and the pipeline as JSON data. Neither imports your script's ``__main__``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import weakref
from multiprocessing.connection import wait as wait_ready

from augpipe.errors import WorkerError
from augpipe.loader.procs import Forked, Fresh, stderr_tail
from augpipe.loader.shm import SlotLayout, SlotRing
from augpipe.loader.worker import recv, send

START_METHODS = ("fork", "spawn")
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


def _with_stderr(msg: str, worker) -> str:
    tail = stderr_tail(worker.take_stderr())
    return msg + (f"\n\nIts stderr ended with:\n{tail}" if tail else "")


def _shutdown(workers: list, ring: SlotRing) -> None:
    for w in workers:
        try:
            w.conn.send_bytes(b"")
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + _JOIN_S
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
    for w in workers:
        if w.exitcode is None:
            w.terminate()
    for w in workers:
        w.join(_JOIN_S)
        if w.exitcode is None:
            w.kill()
            w.join(None)
    for wid, w in enumerate(workers):
        text = w.take_stderr().rstrip()
        if text:
            label = f"[augpipe loader worker {wid}] "
            print("\n".join(label + line for line in text.splitlines()), file=sys.stderr)
        w.close()
    ring.unlink()


class WorkerPool:
    """``workers`` processes sharing one ``SlotRing``; tasks are (epoch, batch, slot, n, seed).

    ``fork`` uses ``dataset`` and ``pipeline`` themselves; ``spawn`` uses ``spec``: a dict with
    their ``handover.describe`` descriptions under "dataset" and "pipeline".
    """

    def __init__(self, layout: SlotLayout, workers: int, method: str, dataset=None,
                 pipeline=None, spec: dict | None = None):  # fmt: skip
        self.method = method
        self.ring = SlotRing.create(layout)
        self.workers: list = []
        self._finalizer = weakref.finalize(self, _shutdown, self.workers, self.ring)
        self.started_s = time.perf_counter()
        try:
            for wid in range(workers):
                if method == "fork":
                    w = Forked(wid, dataset, pipeline, layout, self.ring.path)
                else:
                    start = dict(spec, wid=wid, shm=self.ring.path, parent=os.getpid(),
                                 layout=[layout.n_slots, layout.batch_size,
                                         list(layout.image_shape), layout.extra_bytes,
                                         layout.mix_bytes],
                                 sys_path=[p for p in sys.path if isinstance(p, str)])  # fmt: skip
                    w = Fresh(wid, start)
                self.workers.append(w)
            for wid, w in enumerate(self.workers):
                if method != "fork":
                    try:
                        w.hand_over()
                    except OSError:
                        self._died_starting(wid)
            self._await_ready()
        except BaseException:
            self.shutdown()
            raise
        self.started_s = time.perf_counter() - self.started_s
        # every worker has mapped the file: its name is no longer needed
        self.ring.unlink()
        self.inflight = [0] * workers
        self._owner: dict[tuple[int, int], int] = {}  # (epoch, batch) -> worker
        self._rr = 0

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def _name(self, wid: int) -> str:
        w = self.workers[wid]
        return f"loader worker {wid} (pid {w.pid}, start_method={self.method!r})"

    def _died_starting(self, wid: int) -> None:
        w = self.workers[wid]
        w.join(_JOIN_S)  # it is exiting: let it finish so its status and stderr are complete
        raise WorkerError(_with_stderr(
            f"{self._name(wid)} {_describe_exit(w.exitcode)} while starting", w))  # fmt: skip

    def _await_ready(self) -> None:
        pending = set(range(len(self.workers)))
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while pending:
            if time.monotonic() > deadline:
                raise WorkerError(
                    f"loader workers {sorted(pending)} did not start within "
                    f"{_STARTUP_TIMEOUT_S:.0f} s; try another start_method, or workers=0"
                )
            for wid in list(pending):
                w = self.workers[wid]
                if w.conn.poll():
                    try:
                        msg = recv(w.conn)
                    except (EOFError, OSError):
                        self._died_starting(wid)
                    if msg and msg[0] == "fatal":
                        raise WorkerError(_with_stderr(
                            f"{self._name(wid)} could not start: {msg[2]}\n\n"
                            f"Worker traceback:\n{msg[3]}", w))  # fmt: skip
                    pending.discard(wid)
                elif w.exitcode is not None:
                    self._died_starting(wid)
            if pending:
                wait_ready([self.workers[w].conn for w in pending], timeout=0.05)

    def submit(self, epoch: int, batch: int, slot: int, indices, seed: int,
               key: int | None = None) -> None:  # fmt: skip
        n = len(indices)
        self.ring.indices(slot)[:n] = indices
        low = min(self.inflight)
        # least loaded worker; round-robin among equals so work spreads from the start
        cands = [w for w, k in enumerate(self.inflight) if k == low]
        w = cands[self._rr % len(cands)]
        self._rr += 1
        self.inflight[w] += 1
        self._owner[(epoch, batch)] = w
        try:
            send(self.workers[w].conn, [epoch, batch, slot, n, seed, key])
        except OSError:  # the worker is gone: say which and why
            self.workers[w].join(_JOIN_S)
            self.check_alive(f"before batch {batch} of epoch {epoch} could be handed to it")
            raise WorkerError(f"{self._name(w)} closed its socket") from None

    def check_alive(self, context: str) -> None:
        for wid, w in enumerate(self.workers):
            if w.exitcode is not None:
                raise WorkerError(_with_stderr(
                    f"{self._name(wid)} {_describe_exit(w.exitcode)} {context}; the loader "
                    "was stopped. Lower workers, prefetch or batch_size if memory is short",
                    w))  # fmt: skip

    def receive(self, context: str) -> list:
        """Messages that arrive within ``_POLL_S``; raises WorkerError if a worker died."""
        conns = [w.conn for w in self.workers]
        ready = wait_ready(conns + [w.sentinel for w in self.workers], timeout=_POLL_S)
        msgs = []
        for obj in ready:
            if obj in conns:
                try:
                    msg = recv(obj)
                except (EOFError, OSError):
                    continue  # its sentinel tells us why
                if msg and msg[0] in ("done", "error"):
                    w = self._owner.pop((msg[1], msg[2]), None)
                    if w is not None:
                        self.inflight[w] -= 1
                msgs.append(msg)
        if not msgs:
            for w in self.workers:  # a sentinel fired: give the exit status time to appear
                if w.sentinel in ready:
                    w.join(_JOIN_S)
            self.check_alive(context)
        return msgs

    def shutdown(self) -> None:
        self._finalizer()
