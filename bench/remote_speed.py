"""Remote-dataset throughput: a bandwidth-capped local HTTP server against local shards.

    python bench/remote_speed.py [--packed data/corpus/packed] [--bandwidth 100] [--quick]

On the same packed dataset, pipeline (random-resized crop 224 + flip), batch and workers, in
one run: epochs from the local shards (order="partitioned", the same batches), then from
``augpipe.remote.localserver.LocalServer`` at ``--bandwidth`` MB/s through fsspec's http
filesystem, with a fresh cache limited to ``--cache-fraction`` of the dataset: the first epoch
(every shard downloaded, prefetch following the schedule) and a second one (what the bounded
cache kept; the rest downloaded again).  Also the cache's peak disk use (sampled after every
batch) against its limit, and the smallest limit the Loader accepts for these settings.
Medians over ``--runs`` runs (each with a fresh cache).  Writes the ``## Remote datasets``
section of bench/RESULTS.md; ``--no-write`` only prints.  ``--quick`` packs a small synthetic
dataset instead and runs once (a smoke test of the script, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    PACKED,
    load_note,
    machine_metadata,
    metadata_line,
    shown,
    write_results_section,
)

SETTINGS = ("batch", "res", "workers", "partitions", "block", "bandwidth", "cache_fraction")


def _pipeline(res: int):
    from augpipe import Compose, HorizontalFlip, RandomResizedCrop

    return Compose([RandomResizedCrop(res), HorizontalFlip()])


def _epoch(loader, cache=None) -> tuple[float, float, int]:
    """(images/s after the first batch, seconds to the first batch, peak cache bytes)."""
    t0, n, peak, t_first = time.perf_counter(), 0, 0, None
    for images, _ in loader:
        if t_first is None:
            t_first = time.perf_counter()
        else:
            n += len(images)
        if cache is not None:
            peak = max(peak, cache.used_bytes())
    return n / (time.perf_counter() - t_first), t_first - t0, peak


def _smallest_limit(url: str, kw: dict, cache_dir: str) -> int:
    from augpipe import Loader
    from augpipe.errors import ConfigError
    from augpipe.remote.cache import parse_size

    try:
        Loader(url, cache_dir=cache_dir, cache_limit=1, **kw).close()
    except ConfigError as exc:
        return parse_size(str(exc).split("use cache_limit='")[1].split("'")[0])
    return 1


def run(packed: Path, args) -> dict:
    from augpipe import Loader, ShardDataset
    from augpipe.remote.localserver import LocalServer

    ds = ShardDataset(packed)
    total = sum(s["bytes"] for s in ds.manifest["shards"])
    kw = dict(batch_size=args.batch, pipeline=_pipeline(args.res), workers=args.workers,
              output="numpy", seed=0, partitions=args.partitions, block=args.block)  # fmt: skip
    local = Loader(str(packed), order="partitioned", **kw)
    _epoch(local)  # warm-up: compile, page cache
    local_rates = [_epoch(local)[0] for _ in range(args.runs)]
    local.close()
    first, warm, peaks, limits, starts = [], [], [], [], []
    with LocalServer(packed, bandwidth=args.bandwidth * 1e6) as srv:
        for _ in range(args.runs):
            tmp = tempfile.mkdtemp(prefix="augpipe-remote-bench-")
            try:
                smallest = _smallest_limit(srv.url, kw, tmp)
                limit = max(smallest, int(total * args.cache_fraction))
                loader = Loader(srv.url, cache_dir=tmp, cache_limit=limit, **kw)
                r0, t0, p0 = _epoch(loader, loader.dataset.cache)
                r1, _, p1 = _epoch(loader, loader.dataset.cache)
                loader.close()
                first.append(r0)
                starts.append(t0)
                warm.append(r1)
                peaks.append(max(p0, p1))
                limits.append((limit, smallest))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return {
        "dataset": {
            "path": shown(packed),
            "records": len(ds),
            "shards": len(ds.shard_files()),
            "bytes": total,
        },  # fmt: skip
        "settings": {k: getattr(args, k) for k in SETTINGS},
        "local_images_per_s": statistics.median(local_rates),
        "remote_first_epoch_images_per_s": statistics.median(first),
        "remote_second_epoch_images_per_s": statistics.median(warm),
        "remote_first_batch_s": statistics.median(starts),
        "cache_limit_bytes": limits[0][0],
        "smallest_cache_limit_bytes": limits[0][1],
        "peak_cache_bytes": max(peaks),
        "runs": args.runs,
        "load_avg": os.getloadavg()[0],
    }


def _markdown(r: dict, meta: dict) -> str:
    d, s = r["dataset"], r["settings"]
    mb = 1e6
    return f"""
`python bench/remote_speed.py` on {d["path"]} ({d["records"]} records, {d["shards"]} shards,
{d["bytes"] / mb:.1f} MB); random-resized crop {s["res"]} + flip, batch {s["batch"]},
{s["workers"]} workers, order="partitioned" ({s["partitions"]} partitions, block {s["block"]});
HTTP from a local server capped at {s["bandwidth"]} MB/s; medians of {r["runs"]} runs.

| source | images/s |
|---|---|
| local shards | {r["local_images_per_s"]:.0f} |
| HTTP, first epoch (cold cache, prefetch) | {r["remote_first_epoch_images_per_s"]:.0f} |
| HTTP, second epoch (bounded cache) | {r["remote_second_epoch_images_per_s"]:.0f} |

Rates exclude each epoch's first batch; the first HTTP batch came after
{r["remote_first_batch_s"]:.1f} s (worker start-up, spawned because fsspec runs a thread, and
the first shards).  Cache: limit {r["cache_limit_bytes"] / mb:.2f} MB
({s["cache_fraction"]:.0%} of the dataset; the smallest the Loader accepts here is
{r["smallest_cache_limit_bytes"] / mb:.2f} MB), peak disk use {r["peak_cache_bytes"] / mb:.2f} MB.

{load_note([r["load_avg"]], meta.get("cores"))}

{metadata_line(meta)}
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--packed", type=Path, default=PACKED)
    p.add_argument("--bandwidth", type=float, default=100.0, help="MB/s cap of the server")
    p.add_argument("--cache-fraction", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--block", type=int, default=512)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small synthetic data, one run")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    tmp = None
    packed = args.packed
    if args.quick:
        from augpipe.format.pack import pack
        from augpipe.synth import make_image_folder

        tmp = Path(tempfile.mkdtemp(prefix="augpipe-remote-quick-"))
        images = make_image_folder(tmp / "images", n_classes=4, per_class=40, min_side=64,
                                   max_side=128, seed=0)  # fmt: skip
        packed = tmp / "packed"
        pack(images, packed, shard_size_mb=0.1, progress=False)
        args.runs, args.batch, args.res, args.block, args.no_write = 1, 16, 64, 32, True
    try:
        r = run(packed, args)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    meta = machine_metadata()
    print(json.dumps({**r, "machine": meta}, indent=1, default=str))
    if not args.no_write:
        write_results_section("Remote datasets", _markdown(r, meta))


if __name__ == "__main__":
    main()
