"""The full-decode ceiling: ``processes`` processes each decoding their share of a packed
dataset's JPEG records at full size, nothing else (no crop, resize or batching).

    from bench.decode_only import DecodeOnly
    with DecodeOnly("data/corpus/packed", 2, "simplejpeg") as d:
        print(d.rate())  # images/s, all processes together

Decoders: ``cv2`` (``cv2.imdecode(IMREAD_COLOR)``, BGR), ``simplejpeg``
(``simplejpeg.decode_jpeg(buf, "RGB")``, libjpeg-turbo's defaults: accurate IDCT, fancy
upsampling) and ``simplejpeg-fast`` (the same with ``fastdct=True, fastupsample=True``, the
arithmetic of augpipe's own fast decode). Workers are spawned (fresh interpreters), one thread
each; the first pass (imports, page cache) is discarded.
"""

from __future__ import annotations

import multiprocessing as mp

DECODERS = ("cv2", "simplejpeg", "simplejpeg-fast")


def _decode_range(args: tuple[str, str, int, int]) -> int:
    import cv2

    from augpipe.format.dataset import ShardDataset

    cv2.setNumThreads(1)
    path, decoder, lo, hi = args
    ds = ShardDataset(path)
    if decoder == "cv2":
        for i in range(lo, hi):
            cv2.imdecode(ds.raw(i), cv2.IMREAD_COLOR)
    else:
        import numpy as np
        import simplejpeg

        fast = decoder == "simplejpeg-fast"
        for i in range(lo, hi):
            simplejpeg.decode_jpeg(np.frombuffer(ds.raw(i), np.uint8), "RGB", fastdct=fast,
                                   fastupsample=fast)  # fmt: skip
    ds.close()
    return hi - lo


class DecodeOnly:
    """``processes`` spawned processes decoding every record of ``packed`` with ``decoder``."""

    def __init__(self, packed: str, processes: int, decoder: str = "cv2"):
        from augpipe.format.dataset import ShardDataset

        if decoder not in DECODERS:
            raise ValueError(f"decoder: one of {DECODERS}, got {decoder!r}")
        n = len(ShardDataset(packed))
        cuts = [n * k // processes for k in range(processes + 1)]
        self.jobs = [(str(packed), decoder, cuts[k], cuts[k + 1]) for k in range(processes)]
        self.pool = mp.get_context("spawn").Pool(processes)
        self.pool.map(_decode_range, self.jobs)  # warm-up: imports, page cache

    def rate(self) -> float:
        import time

        t0 = time.perf_counter()
        done = sum(self.pool.map(_decode_range, self.jobs))
        return done / (time.perf_counter() - t0)

    def close(self) -> None:
        self.pool.close()
        self.pool.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
