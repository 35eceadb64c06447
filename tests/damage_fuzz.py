"""Damage fuzzer, run in its own interpreter by test_damage.py (a crash fails that test
instead of killing pytest): ``python tests/damage_fuzz.py DATASET CASES SEED``.

For each seeded case it damages one shard of DATASET in place (random bytes, a whole page
overwritten, page-header fields, or truncation), runs ``inspect.verify`` and one pass of a
``Loader`` (workers=0) over the dataset, restores the file, and prints one JSON line:
``{"case", "shard", "kind", "verify": [problems], "loader": "ok" | "same" | error text}``
where "same" means the loader delivered exactly the undamaged batches.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from augpipe import CenterCrop, Compose, HorizontalFlip, Loader
from augpipe.errors import AugpipeError
from augpipe.format import dataset as dsmod
from augpipe.format import inspect
from augpipe.format.manifest import load


def _batches(path) -> list[np.ndarray]:
    pipe = Compose([CenterCrop(16), HorizontalFlip()])
    with Loader(path, 5, pipe, workers=0, output="numpy", seed=3, copy=True) as lo:
        return [b[0] for b in lo]


def _damage(data: bytearray, rnd: np.random.Generator, psize: int = 4096) -> tuple[str, bytes]:
    kind = ["bytes", "page", "header", "truncate", "meta"][int(rnd.integers(5))]
    n_pages = len(data) // psize
    if kind == "bytes":
        for _ in range(int(rnd.integers(1, 9))):
            pos = int(rnd.integers(len(data)))
            data[pos] = (data[pos] + int(rnd.integers(1, 256))) % 256
    elif kind == "page":
        pg = int(rnd.integers(n_pages))
        fill = int(rnd.integers(3))
        if fill == 0:
            block = rnd.integers(0, 256, psize, dtype=np.uint8).tobytes()
        elif fill == 1:
            block = bytes(psize) if rnd.integers(2) else b"\xff" * psize
        else:  # another page's bytes: plausible structure in the wrong place
            other = int(rnd.integers(n_pages))
            block = bytes(data[other * psize : (other + 1) * psize])
        data[pg * psize : (pg + 1) * psize] = block
        kind += f" {pg}"
    elif kind in ("header", "meta"):
        pg = int(rnd.integers(2)) if kind == "meta" else int(rnd.integers(2, n_pages))
        span = 16 + 136 if kind == "meta" else 16
        pos = pg * psize + int(rnd.integers(span))
        data[pos] = (data[pos] + int(rnd.integers(1, 256))) % 256
        kind += f" {pg}+{pos - pg * psize}"
    else:
        cut = int(rnd.integers(len(data)))
        if rnd.integers(2):
            cut -= cut % psize
        del data[cut:]
        kind += f" {cut}"
    return kind, bytes(data)


def main() -> None:
    path, cases, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    manifest, _ = load(path)
    names = [s["name"] for s in manifest["shards"]]
    originals = {n: open(os.path.join(path, n), "rb").read() for n in names}
    reference = _batches(path)
    rnd = np.random.default_rng(seed)
    for case in range(cases):
        shard = names[int(rnd.integers(len(names)))]
        file = os.path.join(path, shard)
        kind, damaged = _damage(bytearray(originals[shard]), rnd)
        if damaged == originals[shard]:
            continue
        with open(file, "wb") as f:
            f.write(damaged)
        # the same file may be rewritten within one tick of the file-system clock, with the
        # same size: forget which files this process checked, as a fresh process would
        dsmod._CHECKED.clear()
        problems = inspect.verify(path)
        try:
            got = _batches(path)
            same = len(got) == len(reference) and all(
                np.array_equal(a, b) for a, b in zip(got, reference)
            )
            result = "same" if same else "DIFFERENT"
        except AugpipeError as exc:
            result = f"{type(exc).__name__}: {exc}"
        with open(file, "wb") as f:
            f.write(originals[shard])
        dsmod._CHECKED.clear()
        line = {"case": case, "shard": shard, "kind": kind, "verify": problems, "loader": result}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
