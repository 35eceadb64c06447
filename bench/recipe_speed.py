"""Recipe speed per core: augpipe's fused policies (RandAugment in timm's and torchvision's
conventions, TrivialAugmentWide, AutoAugment, AugMix, RandomErasing) against timm's and
torchvision v2's own transforms, JPEG bytes -> RandomResizedCrop 224 + flip + policy -> uint8.

    python bench/recipe_speed.py [--packed data/corpus/packed] [--photos data/corpus/photos]
        [--images 500] [--repeats 5] [--no-write] [--skip-peers] [--quick]

augpipe runs ``run_batch`` (the Loader's worker path: crop-aware decode + one fused kernel call
per sample) on the packed corpus, one core; the peers (``peers/tv``: timm 1.0.31, torchvision
0.29.1, pillow < 12) decode the same photos from the ImageFolder the corpus was packed from,
one process, one thread (bench/peers/recipe_peer.py). Medians of ``--repeats`` interleaved
passes after one warm-up. Also: Mixup/CutMix's cost per image (host uint8 and torch CPU
float), against the standard pipeline's, and in the Loader's throughput (2 workers, with and
without Mixup/CutMix: bench/mixup_loader.py; ``--loader-images 0`` skips it). ``--quick``: 48
images, 1 repeat, nothing written (checks the script runs). Results: bench/RESULTS.md,
section "Recipe speed".

Targets (issue 10): each augpipe policy >= 3x the faster of timm and torchvision for the same
policy; RandAugment <= 1.35x the standard pipeline's cost per image; Mixup/CutMix <= 5% of the
Loader's throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from augpipe import transforms as T  # noqa: E402
from augpipe.format.dataset import ShardDataset  # noqa: E402
from augpipe.ops.batch.mixup import Mixup  # noqa: E402
from augpipe.ops.policies.strings import policy_from_string  # noqa: E402
from bench.common import (  # noqa: E402
    PACKED,
    PHOTOS,
    TV_VENV,
    PeerError,
    batch_runner,
    load_note,
    metadata_line,
    run_peer,
    shown,
    summarize,
    write_results_section,
)
from bench.mixup_loader import loader_rows  # noqa: E402
from bench.mixup_loader import markdown as loader_markdown  # noqa: E402

STD = "augpipe standard (RRC + flip)"
# augpipe row -> (extra ops, the peer rows it is compared with)
ROWS = {
    STD: ([], ["timm standard (RRC + flip)", "torchvision v2 standard (RRC + flip)"]),
    "augpipe rand-m9-mstd0.5-inc1 (timm)": (["rand-m9-mstd0.5-inc1"],
                                            ["timm rand-m9-mstd0.5-inc1"]),
    "augpipe RandAugment(2, 9) (torchvision)": ([T.RandAugment(2, 9)],
                                                ["torchvision v2 RandAugment(2, 9)"]),
    "augpipe TrivialAugmentWide": ([T.TrivialAugmentWide()],
                                   ["torchvision v2 TrivialAugmentWide"]),
    "augpipe AutoAugment original (timm)": (["original"], ["timm AutoAugment original"]),
    "augpipe AutoAugment imagenet (torchvision)": ([T.AutoAugment()],
                                                   ["torchvision v2 AutoAugment(imagenet)"]),
    "augpipe augmix-m5-w4-d2 (timm)": (["augmix-m5-w4-d2"],
                                       ["timm augmix-m5-w4-d2", "torchvision v2 AugMix"]),
    "augpipe RandomErasing 0.25 pixel": ([T.RandomErasing(0.25, mode="pixel")],
                                         ["timm RandomErasing 0.25 pixel (float out)",
                                          "torchvision v2 RandomErasing 0.25"]),
}  # fmt: skip


def pipeline(extra, size: int) -> T.Compose:
    ops = [policy_from_string(e) if isinstance(e, str) else e for e in extra]
    return T.Compose([T.RandomResizedCrop(size), T.HorizontalFlip(), *ops])


REP_SHARED = "standard, --aug-repeats 3, repeats in one batch: one decode per record"
REP_ALONE = "standard, --aug-repeats 3, repeats in one batch: one decode per sample"


def repeat_fns(ds, n: int, batch: int, pipe, out) -> dict:
    """The standard pipeline on n samples, each record 3 times side by side (one rank), with the
    shared decode (``augpipe.loader.repeat.decode_groups``) and with one decode per sample."""
    import augpipe.transforms as tm
    from augpipe.loader.repeat import RepeatDataset, decode_groups

    rd = RepeatDataset(ds, 3)
    order = (np.arange(3)[None, :] * len(ds) + np.arange(-(-n // 3))[:, None]).reshape(-1)[:n]

    def alone(dataset, indices, scales, boxes, slack=1.0):
        return [([j], scales[j], boxes[j, :4], boxes[j, 4]) for j in range(len(indices))]

    def run(groups):
        def fn():
            tm.decode_groups = groups
            try:
                for s in range(0, len(order), batch):
                    b = order[s : s + batch]
                    pipe.run_batch(rd, b, 0, 0, out[: len(b)])
            finally:
                tm.decode_groups = decode_groups

        return fn

    return {REP_SHARED: run(decode_groups), REP_ALONE: run(alone)}


def mixup_rows(batch: int, size: int, repeats: int) -> dict[str, dict]:
    """Per-image cost of Mixup/CutMix (alpha 0.8 / 1.0, switch 0.5, elem mode)."""
    import torch

    torch.set_num_threads(1)
    op = Mixup(0.8, 1.0, mode="elem", num_classes=1000)
    x8 = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    xt = torch.rand(batch, 3, size, size)
    labels = np.arange(batch) % 1000
    lt = torch.from_numpy(labels)
    out = {}

    def host(k):  # what the Loader does: in place in the worker, then targets in main
        op.targets(labels, op.mix_inplace(x8, 0, 0, k, 0))  # (from the λ the worker drew)

    for name, fn in (("Mixup/CutMix host (uint8 NumPy, in place + targets)", host),
                     ("Mixup/CutMix torch CPU (float NCHW)",
                      lambda k: op.run(xt, lt, 0, 0, k, 0))):  # fmt: skip
        rates = []
        for rep in range(repeats + 1):
            t0 = time.perf_counter()
            for k in range(4):
                fn(k)
            if rep:
                rates.append(4 * batch / (time.perf_counter() - t0))
        out[name] = summarize(rates)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packed", default=str(PACKED))
    ap.add_argument("--photos", default=str(PHOTOS))
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tv-venv", default=str(TV_VENV))
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--loader-images", type=int, default=2000, help="records for the Loader rows (0: skip them)"
    )
    ap.add_argument("--loader-workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="48 images, 1 repeat, nothing written")
    args = ap.parse_args()
    if args.quick:
        args.images, args.repeats, args.no_write = min(args.images, 48), 1, True
        args.loader_images = min(args.loader_images, 640)

    cv2.setNumThreads(1)
    ds = ShardDataset(args.packed)
    n = min(args.images, len(ds))
    idx = np.arange(n, dtype=np.int64)
    S = args.size
    out = np.empty((args.batch, S, S, 3), np.uint8)
    pipes = {name: pipeline(extra, S).bind(ds) for name, (extra, _) in ROWS.items()}
    load0 = os.getloadavg()[0]

    fns = {name: batch_runner(p, ds, idx, args.batch, out) for name, p in pipes.items()}
    fns.update(repeat_fns(ds, n, args.batch, pipes[STD], out))
    times: dict[str, list[float]] = {k: [] for k in fns}
    for rep in range(args.repeats + 1):  # interleaved; pass 0 (compilation, cache) discarded
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if rep:
                times[name].append(n / (time.perf_counter() - t0))
    rows = {name: summarize(r) for name, r in times.items()}
    rows.update(mixup_rows(min(args.batch, 32), S, args.repeats))
    loader = (loader_rows(args.packed, args.loader_images, args.repeats, args.loader_workers,
                          args.batch, S) if args.loader_images else {})  # fmt: skip
    peers: dict[str, dict] = {}
    peer_note = ""
    if not args.skip_peers:
        try:
            res = run_peer(args.tv_venv, "recipe_peer.py", [args.photos, "--images", str(n),
                           "--repeats", str(args.repeats), "--size", str(S)])  # fmt: skip
            peers = {k: summarize(v) for k, v in res["rates"].items()}
            peer_note = f" Peers: {json.dumps(res.get('versions', {}))}."
        except PeerError as exc:
            peer_note = f" Peers not run: {str(exc).splitlines()[0]}"
    load1 = os.getloadavg()[0]

    std = rows[STD]["median"]
    lines = ["| augpipe row (one core) | images/s median | min–max | cost vs standard | "
             "fastest peer for the same policy | peer images/s | augpipe ÷ peer | target ≥ 3× |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, (_, peer_names) in ROWS.items():
        r = rows[name]
        got = [(peers[p]["median"], p) for p in peer_names if p in peers]
        best = max(got) if got else None
        ratio = r["median"] / best[0] if best else float("nan")
        met = "" if best is None or name == STD else ("met" if ratio >= 3 else "not met")
        lines.append(
            f"| {name} | {r['median']:,.0f} | {r['min']:,.0f}–{r['max']:,.0f} | "
            f"{std / r['median']:.2f}× | {best[1] if best else '—'} | "
            f"{f'{best[0]:,.0f}' if best else '—'} | "
            f"{f'{ratio:.2f}×' if best else '—'} | {met} |"
        )
    lines += ["", "| peer row (one process, one thread) | images/s median | min–max |",
              "|---|---|---|"]  # fmt: skip
    for name, r in peers.items():
        lines.append(f"| {name} | {r['median']:,.0f} | {r['min']:,.0f}–{r['max']:,.0f} |")
    ra = rows["augpipe rand-m9-mstd0.5-inc1 (timm)"]["median"]
    ra_tv = rows["augpipe RandAugment(2, 9) (torchvision)"]["median"]
    rep = rows[REP_SHARED]["median"] / rows[REP_ALONE]["median"]
    mix = {k: v["median"] for k, v in rows.items() if k.startswith("Mixup")}
    mix_cost = {k: std / v for k, v in mix.items()}  # share of the standard pipeline's time
    lines += [
        "",
        f"RandAugment cost per image vs the standard pipeline: timm convention "
        f"{std / ra:.2f}×, torchvision convention {std / ra_tv:.2f}× (target ≤ 1.35×: "
        f"{'met' if max(std / ra, std / ra_tv) <= 1.35 else 'not met'}).",
        "Mixup/CutMix per image, as a share of the standard pipeline's per-image time: "
        + ", ".join(f"{k} {v:.1%}" for k, v in mix_cost.items())
        + " (the target, ≤ 5% of the Loader's throughput, is the table below).",
        "",
        f"Repeated augmentation, 3 repeats of each record side by side: one decode per record "
        f"{rows[REP_SHARED]['median']:,.0f} images/s, one decode per sample "
        f"{rows[REP_ALONE]['median']:,.0f} ({rep:.2f}×).",
        "",
        *(loader_markdown(loader, args.loader_workers) if loader else []),
        *([""] if loader else []),
        f"{n} records of `{shown(args.packed)}` / the same photos for the peers, "
        f"{args.repeats} interleaved timed passes after 1 warm-up, output {S}×{S} uint8. "
        f"Load average {load0:.1f} → {load1:.1f}. " + load_note([load0, load1]) + peer_note,
        "",
        metadata_line(),
    ]
    md = "\n".join(lines)
    print(md)
    if not args.no_write:
        write_results_section("Recipe speed", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
