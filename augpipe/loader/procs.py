"""Starting one loader worker: forked from this process, or a fresh interpreter.

Both kinds offer the same small interface to the pool: ``conn`` (the worker's socket, JSON
frames), ``sentinel`` (readable once the process has exited), ``exitcode``, ``terminate``,
``kill``, ``join`` and ``take_stderr`` (what the worker wrote to its stderr since the last call:
the pool puts its tail in error reports and shows the rest, labelled, when the loader stops).

- ``Forked``: ``multiprocessing``'s fork context, whose ``Process`` hands its arguments to the
  child by ``fork`` itself (nothing serialised): milliseconds to start.
- ``Fresh``: ``python -m augpipe.loader.fresh`` via ``subprocess``, in its own session, the
  socket passed as an inherited file descriptor, and an extra pipe whose far end closes when the
  worker exits (the sentinel). It imports augpipe, never your script.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection
from pathlib import Path

from augpipe.loader.worker import forked_main

_TAIL = 4000  # characters of a worker's stderr quoted in an error report


def _stderr_file() -> int:
    fd, name = tempfile.mkstemp(prefix="augpipe-worker-", suffix=".stderr")
    os.unlink(name)  # nothing to clean up, whatever happens to this process
    return fd


class _Captured:
    """A worker's stderr, kept in an unlinked temporary file."""

    def __init__(self):
        self.err_fd = _stderr_file()
        self._read = 0

    def take_stderr(self) -> str:
        try:
            end = os.fstat(self.err_fd).st_size
            data = os.pread(self.err_fd, end - self._read, self._read)
        except OSError:
            return ""
        self._read += len(data)
        return data.decode("utf-8", "replace")

    def close_stderr(self) -> None:
        if self.err_fd >= 0:
            os.close(self.err_fd)
            self.err_fd = -1


def stderr_tail(text: str) -> str:
    text = text.rstrip()
    return text if len(text) <= _TAIL else "..." + text[-_TAIL:]


class Forked(_Captured):
    how = "fork"

    def __init__(self, wid: int, dataset, pipeline, layout, shm_path: str):
        super().__init__()
        ctx = mp.get_context("fork")
        self.conn, theirs = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(
            target=forked_main,
            args=(wid, theirs, self.err_fd, dataset, pipeline, layout, shm_path, os.getpid()),
            name=f"augpipe-worker-{wid}",
            daemon=True,
        )
        self.proc.start()
        theirs.close()
        self.pid = self.proc.pid
        self.sentinel = self.proc.sentinel

    @property
    def exitcode(self) -> int | None:
        return self.proc.exitcode

    def terminate(self) -> None:
        self.proc.terminate()

    def kill(self) -> None:
        self.proc.kill()

    def join(self, timeout: float | None) -> None:
        self.proc.join(timeout)

    def close(self) -> None:
        self.conn.close()
        self.close_stderr()


class Fresh(_Captured):
    how = "spawn"

    def __init__(self, wid: int, spec: dict):
        super().__init__()
        ours, theirs = socket.socketpair()
        dead_r, dead_w = os.pipe()
        env = dict(os.environ)
        pkg_parent = str(Path(__file__).resolve().parents[2])  # importable without installing
        env["PYTHONPATH"] = pkg_parent + os.pathsep + env.get("PYTHONPATH", "")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "augpipe.loader.fresh", str(wid), str(theirs.fileno())],
                pass_fds=(theirs.fileno(), dead_w),
                stdin=subprocess.DEVNULL,
                stderr=self.err_fd,
                env=env,
                start_new_session=True,  # Ctrl-C reaches only the main process, which stops us
            )
        except BaseException:
            ours.close()
            os.close(dead_r)
            raise
        finally:
            theirs.close()
            os.close(dead_w)
        self.conn = Connection(ours.detach())
        self.sentinel = dead_r
        self.pid = self.proc.pid
        self.spec = spec

    def hand_over(self) -> None:
        """Send the start description; BrokenPipeError/OSError if the worker already died."""
        from augpipe.loader.worker import send

        send(self.conn, self.spec)

    @property
    def exitcode(self) -> int | None:
        return self.proc.poll()

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def join(self, timeout: float | None) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        self.conn.close()
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1
        self.close_stderr()
