"""Decode/encode input images, in this process or in worker processes, results in input order.

Work is sent in chunks, each to the worker with the fewest queued; every worker answers its
chunks in the order it got them, so the main process knows which chunk each answer is. It reads
answers from whichever worker has one ready (``selectors``) and holds them until their turn, so
results come out in input order whatever N is, and a worker never stalls writing an answer
while the main process waits on another one (with a fixed reading order, a worker that ran ahead
blocked on its full pipe: 2 workers packed barely faster than 1). Each worker also computes the
record's CRC32 and statistics sums, leaving the main process only ordering and writing.

Workers are fresh interpreters (``python -m augpipe.format.workers``) talking over their
stdin/stdout with length-prefixed frames: JSON for tasks, a fixed binary layout for results.
So nothing is pickled, the caller's ``__main__`` is never re-imported (no
``if __name__ == "__main__"`` guard needed), and a parent that already runs threads (tqdm,
torch, OpenMP) cannot deadlock a forked child. Workers run in their own session, so Ctrl-C
reaches only the main process, which stops them; if the main process dies, their stdin closes
and they exit.
"""

from __future__ import annotations

import json
import os
import queue
import selectors
import signal
import struct
import subprocess
import sys
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from augpipe.errors import WorkerError
from augpipe.format import stats
from augpipe.format.imageio import BadImage, load_for_pack
from augpipe.format.restart import interval_mcus

# per item: position, ok flag, height, width, CRC32 of the payload (0 when not ok),
# length of payload (ok) or reason (not ok)
_ITEM = struct.Struct("<qBIIII")
_STATS = struct.Struct("<13q")  # stats.partial: exact integer sums
_FRAME = struct.Struct("<Q")  # length prefix of each message between processes


def encode_pixels(pixels: np.ndarray, fmt: str, quality: int, restart_rows: bool = False) -> bytes:
    """Raw HWC bytes, or a baseline JPEG (4:2:0, libjpeg-turbo through OpenCV: ~1.4x faster
    than Pillow's encoder here); ``restart_rows``: restart markers every k MCUs, k dividing the
    MCU row (``augpipe.format.restart.interval_mcus``: ~64-pixel segments), so that a region
    decode reads only the segments under its crop (``augpipe._jpegregion``)."""
    if fmt == "raw":
        return pixels.tobytes()
    import cv2

    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    k = interval_mcus(pixels.shape[1], 16) if restart_rows else 0  # MCUs: 16 x 16 at 4:2:0
    if k:  # 0: no interval fits DRI's 16-bit field
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
                   cv2.IMWRITE_JPEG_RST_INTERVAL, k]  # fmt: skip
    ok, buf = cv2.imencode(".jpg", bgr, params)
    if not ok:
        raise BadImage(f"JPEG encoding failed for a {pixels.shape} image")
    return buf.tobytes()


def process_chunk(chunk: list, opts: dict) -> bytes:
    """``chunk``: [[position, path], ...] -> one bytes blob with a result per item."""
    out = []
    for pos, path in chunk:
        try:
            pixels, kept = load_for_pack(
                path,
                opts["max_pixels"],
                opts["max_side"],
                opts["short_side"],
                keep_jpeg=opts["format"] == "jpeg" and opts.get("keep_jpeg", False),
                restarts=opts.get("restart_rows", False),  # kept JPEGs: lossless transcode
            )
            payload = (
                kept
                if kept is not None
                else encode_pixels(
                    pixels, opts["format"], opts["quality"], opts.get("restart_rows", False)
                )
            )
        except BadImage as exc:
            reason = str(exc).encode("utf-8", "replace")
            out += [_ITEM.pack(pos, 0, 0, 0, 0, len(reason)), reason]
            continue
        h, w = pixels.shape[:2]
        part = stats.partial(pixels, pos)  # per-record sums: the parent only adds them up
        head = _ITEM.pack(pos, 1, h, w, zlib.crc32(payload), len(payload))
        out += [head, _STATS.pack(*part), payload]
    return b"".join(out)


def parse_results(blob: bytes) -> Iterator[tuple]:
    """Yield (position, ok, height, width, payload-or-reason, stats partial or None, CRC32 of
    the payload or None)."""
    view = memoryview(blob)
    off = 0
    while off < len(view):
        pos, ok, h, w, crc, n = _ITEM.unpack_from(view, off)
        off += _ITEM.size
        part = None
        if ok:
            part = np.array(_STATS.unpack_from(view, off), dtype=np.int64)
            off += _STATS.size
            yield pos, True, h, w, view[off : off + n], part, crc
        else:
            reason = bytes(view[off : off + n]).decode("utf-8", "replace")
            yield pos, False, 0, 0, reason, None, None
        off += n


def _read_exact(f, n: int) -> bytearray | None:
    """``n`` bytes from a (possibly unbuffered) binary stream; None at end of stream."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            return None
        got += k
    return buf


def _read_frame(f) -> bytearray | None:
    head = _read_exact(f, 8)
    if head is None:
        return None
    (n,) = _FRAME.unpack(head)
    return _read_exact(f, n)


def _write_frame(f, data: bytes) -> None:
    view = memoryview(_FRAME.pack(len(data)) + data)
    while view:  # an unbuffered pipe may take less than everything in one write
        view = view[f.write(view) :]
    f.flush()


def _worker_main() -> None:
    """``python -m augpipe.format.workers OPTS_JSON``: answer task frames on stdin with result
    frames on stdout until stdin closes or an empty frame arrives."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    opts = json.loads(sys.argv[1])
    try:  # one process per core already: OpenCV's own threads would only contend with them
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    # Keep the protocol stream private: anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    # A thread drains stdin so the parent's task writes never block while we are blocked
    # writing a result it has not read yet (no deadlock, whatever the size of the tasks).
    tasks: queue.SimpleQueue = queue.SimpleQueue()

    def read_tasks() -> None:
        while (task := _read_frame(inp)) is not None and task:
            tasks.put(task)
        tasks.put(None)

    threading.Thread(target=read_tasks, daemon=True).start()
    while (task := tasks.get()) is not None:
        _write_frame(out, process_chunk(json.loads(task), opts))


class _Worker:
    def __init__(self, opts_json: str):
        env = dict(os.environ)
        pkg_parent = str(Path(__file__).resolve().parents[2])  # importable without installing
        env["PYTHONPATH"] = pkg_parent + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "augpipe.format.workers", opts_json],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,  # unbuffered: select() on stdout must not miss bytes held in a buffer
            env=env,
            start_new_session=True,  # Ctrl-C reaches only the main process, which stops us
        )
        self.queued: deque[int] = deque()  # chunks sent to this worker, in the order sent

    def send(self, k: int, data: bytes) -> None:
        _write_frame(self.proc.stdin, data)
        self.queued.append(k)

    def recv(self) -> bytearray | None:
        return _read_frame(self.proc.stdout)

    def stop(self) -> None:
        try:
            self.proc.stdin.close()  # EOF: the worker exits after its current chunk
        except OSError:
            pass
        try:
            self.proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def run_ordered(
    items: list[tuple[int, str]], opts: dict, workers: int, chunk: int = 8, depth: int = 4
):
    """Yield parsed results (see ``parse_results``) in input order, using ``workers`` processes
    (``workers <= 1``: in this process). Stops the workers when the generator is closed.

    Each new chunk goes to the worker with the fewest chunks queued, results are read from
    whichever worker has one ready and held until their turn; at most ``depth`` chunks per
    worker are out (sent and not yet yielded), which bounds memory.
    """
    chunks = [
        [[pos, path] for pos, path in items[i : i + chunk]] for i in range(0, len(items), chunk)
    ]
    if workers <= 1:
        for c in chunks:
            yield from parse_results(process_chunk(c, opts))
        return
    workers = min(workers, max(1, len(chunks)))
    opts_json = json.dumps(opts)
    procs: list[_Worker] = []
    sel = selectors.DefaultSelector()
    try:
        procs = [_Worker(opts_json) for _ in range(workers)]
        for w, p in enumerate(procs):
            sel.register(p.proc.stdout, selectors.EVENT_READ, w)
        done: dict[int, bytearray] = {}
        sent = nxt = 0
        while nxt < len(chunks):
            while sent < len(chunks) and sent - nxt < depth * workers:
                min(procs, key=lambda p: len(p.queued)).send(
                    sent, json.dumps(chunks[sent]).encode()
                )
                sent += 1
            while nxt not in done:
                for key, _ in sel.select():
                    p = procs[key.data]
                    blob = p.recv()
                    if blob is None:
                        k = p.queued[0]
                        raise WorkerError(
                            f"pack worker {key.data} died (exit code {p.proc.wait()}) while "
                            f"processing {chunks[k][0][1]!r} .. {chunks[k][-1][1]!r}; "
                            "its error is above"
                        )
                    done[p.queued.popleft()] = blob
            blob = done.pop(nxt)
            nxt += 1
            yield from parse_results(blob)
    finally:
        sel.close()
        for p in procs:
            p.stop()


if __name__ == "__main__":
    _worker_main()
