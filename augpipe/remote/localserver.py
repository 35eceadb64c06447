"""A small HTTP file server on 127.0.0.1 for tests and benchmarks: Range requests, a request
log, injected faults and a bandwidth cap.  Not for production use.

Example::

    with LocalServer("photos.packed", bandwidth=100e6) as srv:
        srv.fail("shard-00000.lmdb", "500", "drop")    # the next two GETs of that file fail
        ds = ShardDataset(srv.url, cache_dir="cache")
        srv.log                                        # [(method, path, range, status), ...]

Faults, each used once, in order, for requests of one file: ``"500"`` (a server error),
``"drop"`` (the connection closes before any answer), ``"short"`` (the body stops half way
while Content-Length promised all of it), ``"slow"`` (the answer waits ``slow_s``),
``"corrupt"`` (one byte of the body is flipped).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
FAULTS = ("500", "drop", "short", "slow", "corrupt")


class LocalServer:
    """Serve the files of ``root`` at ``self.url`` (see the module docstring)."""

    def __init__(self, root, bandwidth: float | None = None, slow_s: float = 0.5):
        self.root = os.path.realpath(root)
        self.bandwidth = bandwidth  # bytes/s per response, None: unlimited
        self.slow_s = slow_s
        self.log: list[tuple[str, str, str | None, int]] = []
        self.bytes_sent = 0
        self._faults: dict[str, deque] = defaultdict(deque)
        self._mutex = threading.Lock()
        self._conns: set = set()  # open client connections, closed by stop()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, name: str, *faults: str) -> None:
        """Make the next requests of file ``name`` fail, one fault each."""
        for f in faults:
            if f not in FAULTS:
                raise ValueError(f"fault: expected one of {FAULTS}, got {f!r}")
            self._faults[name].append(f)

    def gets(self, name: str) -> int:
        """Successful GET answers for file ``name`` (whole or ranged)."""
        return sum(1 for m, p, _, s in self.log if m == "GET" and p == name and s in (200, 206))

    def start(self) -> LocalServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection (clients keep idle ones open)."""
        self._server.shutdown()
        with self._mutex:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _next_fault(self, name: str) -> str | None:
        with self._mutex:
            q = self._faults.get(name)
            return q.popleft() if q else None

    def _record(self, entry: tuple) -> None:
        with self._mutex:
            self.log.append(entry)


def _handler(srv: LocalServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()
            with srv._mutex:
                srv._conns.add(self.connection)

        def finish(self) -> None:
            with srv._mutex:
                srv._conns.discard(self.connection)
            try:
                super().finish()
            except OSError:
                pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            name = self.path.split("?", 1)[0].lstrip("/")
            path = os.path.realpath(os.path.join(srv.root, name))
            rng = self.headers.get("Range")
            if not path.startswith(srv.root + os.sep) or not os.path.isfile(path):
                srv._record((self.command, name, rng, 404))
                self.send_error(404)
                return
            fault = srv._next_fault(name) if body else None
            if fault == "slow":
                time.sleep(srv.slow_s)
            if fault == "drop":
                srv._record((self.command, name, rng, 0))
                self.close_connection = True
                self.connection.close()
                return
            if fault == "500":
                srv._record((self.command, name, rng, 500))
                self.send_error(500, "injected fault")
                return
            size = os.path.getsize(path)
            start, end, status = 0, size - 1, 200
            m = _RANGE.match(rng or "")
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = min(size - 1, int(m.group(2))) if m.group(2) else size - 1
                else:
                    start = max(0, size - int(m.group(2)))
                status = 206
            if start > end and size:
                srv._record((self.command, name, rng, 416))
                self.send_error(416)
                return
            length = end - start + 1 if size else 0
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(length))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            srv._record((self.command, name, rng, status if fault != "short" else 0))
            if not body:
                return
            with open(path, "rb") as f:
                f.seek(start)
                data = bytearray(f.read(length))
            if fault == "corrupt" and data:
                data[len(data) // 2] ^= 0xFF
            if fault == "short":
                data = data[: len(data) // 2]
            self._send(bytes(data))
            if fault == "short":
                self.close_connection = True

        def _send(self, data: bytes) -> None:
            step = 1 << 16
            t0 = time.monotonic()
            for k in range(0, len(data), step):
                self.wfile.write(data[k : k + step])
                with srv._mutex:
                    srv.bytes_sent += min(step, len(data) - k)
                if srv.bandwidth:
                    ahead = (k + step) / srv.bandwidth - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)

    return Handler
