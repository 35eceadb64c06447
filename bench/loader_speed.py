"""Loader throughput on the photo corpus: augpipe against torchvision (v1, v2) and FFCV.

    python bench/loader_speed.py [--corpus both|standard|detail] [--sizes 192,160] [--quick]

All in one run, on the same images and cores: random-resized crop 224 + horizontal flip,
batch 256, 2 workers, whole epochs (the 5,000-image corpus).  Also augpipe with 1 worker
(scaling), the 2-process ``cv2.imdecode`` and ``simplejpeg.decode_jpeg`` full-decode rates
on the same JPEG bytes (the decode-only ceilings, ``bench/decode_only.py``), the time to the
first batch with fork and with spawn, and (from ``bench/loader_epochs.py``) worker start-up
per start method and the data wait of the first batch of a new epoch against the steady state,
with persistent workers.

The machine this runs on is shared, so the contenders are measured in interleaved *rounds*
(one timed epoch of each per round, the order rotating every round) rather than one after the
other: a burst of someone else's load then hits all of them alike.  Each peer run starts its own
process, discards a warm-up epoch (worker start-up, compilation) and times one epoch; augpipe's
loaders stay alive across rounds, like the peers' persistent workers.  Medians over rounds.
Runs on each benchmark corpus (``bench.common.CORPORA``: the standard q90 one and the q95
"detail" one; FFCV's .beton is written at the corpus's own quality), then records the rates at
the other ``--sizes`` (FFCV's low-resolution recipes train at 160-192): one epoch of each
contender per size. ``--quick``: 256 images of each corpus, one round, size 160 only: a check
that the script runs. Writes the ``## Loader speed`` section of bench/RESULTS.md; ``--no-write``
only prints.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    FFCV_VENV,
    TV_VENV,
    PeerError,
    add_corpus_args,
    chosen_corpora,
    load_note,
    machine_metadata,
    metadata_line,
    packed_quality,
    run_peer,
    shown,
    summarize,
    write_results_section,
)
from bench.decode_only import DecodeOnly  # noqa: E402


def _pipeline(size: int):
    from augpipe.transforms import Compose, HorizontalFlip, RandomResizedCrop

    return Compose([RandomResizedCrop(size), HorizontalFlip()])


def _augpipe_loader(packed: str, workers: int, batch: int, size: int, **kw):
    from augpipe.loader.loader import Loader

    # uint8 NCHW tensors in channels_last layout: views of the shared slots, no copy
    return Loader(packed, batch, _pipeline(size), workers=workers, channels_last=True, **kw)


def epoch_rate(loader) -> float:
    n, t0 = 0, time.perf_counter()
    for images, _labels in loader:
        n += images.shape[0]
    return n / (time.perf_counter() - t0)


class InProcess:
    """The same pipeline run in this process into one batch buffer, no loader: the 1-core
    rate that ``augpipe 1w`` is compared with to isolate the loader's own cost."""

    def __init__(self, packed: str, batch: int, size: int):
        import numpy as np

        from augpipe.format.dataset import ShardDataset
        from augpipe.rng import permutation

        self.ds = ShardDataset(packed)
        self.pipe = _pipeline(size).bind(self.ds)
        self.batch = batch
        self.out = np.empty((batch, *self.pipe.output_shape), np.uint8)
        self.order = permutation(len(self.ds), 0, 0)
        self.epoch = 0
        self.rate()  # warm-up

    def rate(self) -> float:
        self.epoch += 1
        t0 = time.perf_counter()
        for b in range(0, len(self.order), self.batch):
            idx = self.order[b : b + self.batch]
            self.pipe.run_batch(self.ds, idx, 0, self.epoch, self.out[: len(idx)])
        return len(self.order) / (time.perf_counter() - t0)


def first_batch_seconds(packed: str, start_method: str, batch: int, size: int) -> float:
    t0 = time.perf_counter()
    with _augpipe_loader(packed, 2, batch, size, start_method=start_method) as lo:
        next(iter(lo))
        return time.perf_counter() - t0


def peer_rate(venv: str, script: str, args: list[str]) -> float:
    return float(run_peer(venv, script, [*args, "--repeats", "1"])["median"])


def _row(name: str, rates: list[float] | None, ref: list[float], note: str) -> str:
    if not rates:
        return f"| {name} | not run | | | | {note} |"
    r = summarize(rates)
    ratio = statistics.median(ref) / r["median"]
    per_round = statistics.median(x / y for x, y in zip(ref, rates))
    return (f"| {name} | {r['median']:,.0f} | {r['min']:,.0f}–{r['max']:,.0f} | "
            f"{ratio:.2f}× | {per_round:.2f}× | {note} |")  # fmt: skip


def report(rates: dict, starts: dict, args, meta: dict, loads: list, skipped: dict) -> str:
    a2 = rates["augpipe 2w"]
    a1 = statistics.median(rates["augpipe 1w"])
    inproc = statistics.median(rates["in-process"])
    quiet = min(range(len(loads)), key=loads.__getitem__)
    note = {k: f"not run: {v}" for k, v in skipped.items()}
    rows = [
        ("augpipe, 2 workers, uint8 NCHW (channels_last view)", "augpipe 2w", "—"),
        ("augpipe, 1 worker", "augpipe 1w",
         f"scaling 1 → 2 workers: {statistics.median(a2) / a1:.2f}×"),
        ("augpipe pipeline in this process, no loader (1 core)", "in-process",
         f"augpipe with 1 worker reaches {a1 / inproc:.0%} of this (the loader's own cost)"),
        ("torchvision v1: ImageFolder + PIL + DataLoader, 2 workers, float32", "tv v1",
         note.get("tv v1", "target ≥ 5×")),
        ("torchvision v2: decode_jpeg + v2 transforms, 2 workers, uint8", "tv v2",
         note.get("tv v2", "target ≥ 2×")),
        ("FFCV 1.0.2 (2 workers = threads), uint8", "ffcv", note.get("ffcv", "target > 1×")),
        ("cv2.imdecode full decode only, 2 processes", "decode 2p",
         "target ≥ 0.90× (decode alone: no crop, resize or batching)"),
        ("simplejpeg.decode_jpeg RGB full decode only, 2 processes", "simplejpeg 2p",
         "target ≥ 1.0× (libjpeg-turbo's defaults, the same records)"),
    ]  # fmt: skip
    lines = [
        f"`python bench/loader_speed.py` — {shown(args.packed)} ({args.count:,} images, JPEG "
        f"q{packed_quality(args.packed)}), "
        f"random-resized crop {args.size} + horizontal flip, batch {args.batch}, whole epochs; "
        f"{args.rounds} interleaved rounds (one timed epoch of each contender per round, order "
        "rotating), warm-up epochs discarded; median and min–max over rounds.",
        "",
        metadata_line(meta),
        "Load average (1 min) at the start of each round: "
        + ", ".join(f"{v:.1f}" for v in loads)
        + ". "
        + load_note(loads)
        + " Ratios are given two ways: of the medians, and the median of each round's own "
        "ratio.",
        "",
        "| loader | images/s (median) | min–max | augpipe 2w ÷ this (medians) "
        "| augpipe 2w ÷ this (per round) | notes |",
        "|---|---:|---:|---:|---:|---|",
        *(_row(label, rates.get(key), a2, text) for label, key, text in rows),
        "",
        f"Quietest round (round {quiet}, load {loads[quiet]:.1f}): "
        + ", ".join(f"{k} {v[quiet]:,.0f}" for k, v in rates.items() if len(v) > quiet)
        + " images/s.",
        "",
        "Time to the first batch of a new Loader (2 workers; includes starting them and loading "
        f"the Numba cache), median of {len(starts['fork'])}: fork "
        f"{statistics.median(starts['fork']):.2f} s, "
        f"spawn {statistics.median(starts['spawn']):.2f} s.",
    ]
    return "\n".join(lines)


def run_corpus(args) -> tuple[str, dict]:
    """Interleaved rounds at ``args.size`` on ``args.packed`` / ``args.photos``, then the other
    sizes: (markdown, raw rates)."""
    meta = machine_metadata()
    first_batch_seconds(args.packed, "fork", args.batch, args.size)  # fills the Numba cache
    starts: dict[str, list[float]] = {"fork": [], "spawn": []}
    for _ in range(3):
        for method in starts:
            starts[method].append(first_batch_seconds(args.packed, method, args.batch, args.size))

    from bench import loader_epochs

    boundary = loader_epochs.measure(args.packed, args.batch, args.size, 3, 1.5)
    a2 = _augpipe_loader(args.packed, 2, args.batch, args.size)
    a1 = _augpipe_loader(args.packed, 1, args.batch, args.size)
    decode = DecodeOnly(args.packed, 2)
    sj = DecodeOnly(args.packed, 2, "simplejpeg")
    inproc = InProcess(args.packed, args.batch, args.size)
    for lo in (a2, a1):
        epoch_rate(lo)  # warm-up epoch
    common = ["--workers", "2", "--batch-size", str(args.batch), "--size", str(args.size)]
    tv = "torchvision_loader.py"
    contenders = {
        "augpipe 2w": lambda: epoch_rate(a2),
        "augpipe 1w": lambda: epoch_rate(a1),
        "decode 2p": decode.rate,
        "simplejpeg 2p": sj.rate,
        "in-process": inproc.rate,
    }
    if not args.skip_peers:
        Path(args.beton).parent.mkdir(parents=True, exist_ok=True)
        q = str(common_peer_args(args)["quality"])
        contenders |= {
            "tv v1": lambda: peer_rate(TV_VENV, tv, [args.photos, "--version", "v1", *common]),
            "tv v2": lambda: peer_rate(TV_VENV, tv, [args.photos, "--version", "v2", *common]),
            "ffcv": lambda: peer_rate(FFCV_VENV, "ffcv_loader.py",
                                      [args.photos, "--beton", args.beton, "--quality", q,
                                       *common]),
        }  # fmt: skip
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    skipped: dict[str, str] = {}
    names = list(contenders)
    loads: list[float] = []
    for r in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if name in skipped:
                continue
            try:
                rates[name].append(contenders[name]())
            except (PeerError, OSError) as exc:
                skipped[name] = str(exc).splitlines()[0]
                print(f"{name}: skipped ({skipped[name]})", file=sys.stderr)
            print(f"round {r}: {name} {rates[name][-1:]} load {os.getloadavg()[0]:.2f}",
                  file=sys.stderr, flush=True)  # fmt: skip
    a2.close()
    a1.close()
    decode.close()
    sj.close()

    text = report(rates, starts, args, meta, loads, skipped)
    # bench/loader_epochs.py: worker start-up per start method, and the epoch boundary
    text += ("\n\nWorker start-up (`bench/loader_epochs.py`, 2 workers, median of 3): "
             + loader_epochs.report(boundary, args.batch).replace("\n", "; "))  # fmt: skip
    more, extra = other_sizes(args, common_peer_args(args))
    return text + "\n\n" + more, {"rates": rates, "first_batch_s": starts, "sizes": extra,
                                  "epochs": boundary}  # fmt: skip


def common_peer_args(args) -> dict:
    return {"beton": args.beton, "quality": packed_quality(args.packed) or 90}


def other_sizes(args, peer: dict) -> tuple[str, dict]:
    """One epoch of each contender at each of ``args.sizes`` (after a warm-up epoch)."""
    tv = "torchvision_loader.py"
    rows = ["| size | augpipe 2w | tv v1 | tv v2 | FFCV | augpipe ÷ v1 / v2 / FFCV |",
            "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    raw: dict = {}
    for size in args.sizes:
        common = ["--workers", "2", "--batch-size", str(args.batch), "--size", str(size)]
        with _augpipe_loader(args.packed, 2, args.batch, size) as lo:
            epoch_rate(lo)  # warm-up: workers, compilation at this size
            r = {"augpipe 2w": epoch_rate(lo)}
        if not args.skip_peers:
            runs = {
                "tv v1": (TV_VENV, tv, [args.photos, "--version", "v1", *common]),
                "tv v2": (TV_VENV, tv, [args.photos, "--version", "v2", *common]),
                "ffcv": (FFCV_VENV, "ffcv_loader.py", [args.photos, "--beton", peer["beton"],
                         "--quality", str(peer["quality"]), *common]),
            }  # fmt: skip
            for name, (venv, script, pargs) in runs.items():
                try:
                    r[name] = peer_rate(venv, script, pargs)
                except (PeerError, OSError) as exc:
                    print(f"size {size}: {name} skipped ({str(exc).splitlines()[0]})",
                          file=sys.stderr)  # fmt: skip
        raw[size] = r
        cells = [f"{r[k]:,.0f}" if k in r else "not run" for k in ("tv v1", "tv v2", "ffcv")]
        ratios = " / ".join(f"{r['augpipe 2w'] / r[k]:.2f}×" if k in r else "—"
                            for k in ("tv v1", "tv v2", "ffcv"))  # fmt: skip
        rows.append(f"| {size} | {r['augpipe 2w']:,.0f} | {' | '.join(cells)} | {ratios} |")
    text = (f"Other output sizes (random-resized crop + flip, batch {args.batch}, 2 workers; one "
            "timed epoch each after a warm-up epoch, so noisier than the rounds above):\n\n"
            + "\n".join(rows))  # fmt: skip
    return text, raw


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_args(ap)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--sizes", default="192,160", help="other output sizes, one epoch each")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--beton-dir", default="/tmp/augpipe-bench")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    args.sizes = [int(v) for v in args.sizes.split(",") if v]
    if args.quick:
        args.rounds, args.sizes, args.batch = 1, [160], 64
    parts, raw = [], {}
    with tempfile.TemporaryDirectory(prefix="augpipe-quick-") as tmp:
        for name, (photos, packed) in chosen_corpora(args, tmp, 256).items():
            q = packed_quality(packed) or 90
            args.photos, args.packed = str(photos), str(packed)
            args.beton = str(Path(args.beton_dir) / f"{name}{'-quick' if args.quick else ''}"
                             f"-q{q}.beton")  # fmt: skip
            from augpipe.format.dataset import ShardDataset

            args.count = len(ShardDataset(args.packed))
            print(f"[loader_speed] corpus {name}: {shown(packed)}", file=sys.stderr, flush=True)
            text, raw[name] = run_corpus(args)
            parts.append(f"### Corpus `{name}`\n\n{text}")
    md = "\n\n".join(parts)
    if args.quick:
        md = "(--quick: a check that the script runs; figures not meaningful)\n\n" + md
    print(md)
    print(json.dumps(raw))
    if not args.no_write:
        write_results_section("Loader speed", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
