"""Entry point of a loader worker started as a fresh interpreter:
``python -m augpipe.loader.fresh WID SOCKET_FD``.

The first frame on the socket is the worker's start description (JSON): the dataset and the
pipeline as data (``handover.describe``), the slot ring's layout and path, the main process's
pid and its ``sys.path`` (so that modules your pipeline names by import path are found where
your script finds them). Nothing of your script runs here: its ``__main__`` is never imported,
so no ``if __name__ == "__main__":`` guard is needed and its top-level code runs once.
Everything after that is ``worker.serve``.
"""

from __future__ import annotations

import json
import signal
import sys
import traceback
from multiprocessing.connection import Connection


def main() -> None:
    # A fresh worker runs in its own session (no terminal signals); ignore SIGINT anyway, and
    # SIGTERM as forked workers do (worker.ignore_stop_signals).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    wid, conn = int(sys.argv[1]), Connection(int(sys.argv[2]))
    from augpipe.loader.worker import describe, limit_threads, send, serve

    try:
        spec = json.loads(conn.recv_bytes())
    except (EOFError, OSError):
        return  # the main process went away before handing over the work
    try:
        paths = [p for p in spec["sys_path"] if isinstance(p, str)]
        sys.path[:] = paths + [p for p in sys.path if p not in paths]
        limit_threads(forked=False)
        from augpipe.loader.handover import rebuild
        from augpipe.loader.shm import SlotLayout, SlotRing

        dataset = rebuild(spec["dataset"])
        pipeline = rebuild(spec["pipeline"])
        n_slots, batch_size, shape, extra, mix = spec["layout"]
        layout = SlotLayout(n_slots, batch_size, tuple(shape), extra, mix)
        ring = SlotRing.attach(layout, spec["shm"])
    except Exception as exc:
        send(conn, ["fatal", wid, describe(exc), traceback.format_exc()])
        return
    send(conn, ["ready", wid])
    serve(conn, pipeline, dataset, ring, spec["parent"])


if __name__ == "__main__":
    main()
