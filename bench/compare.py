"""augpipe against torchvision (v1, v2) and FFCV on the same photo corpus and cores, in one run.

    python bench/compare.py [--corpus both|standard|detail] [--res 224,192,160] [--quick]
        [--peer-res 224] [--standard-packed DIR] [--detail-packed DIR] [--no-decode]

Every contender does random-resized crop 224 + horizontal flip, batch 256, whole epochs in random
order, ``--workers`` processes/threads; the first epoch (worker start-up, JIT) is discarded and
the median of ``--repeats`` epochs is reported. Peers run one after another in their own venvs
(bench/peers/README.md) so they never share the cores. Also the per-core rate of decode +
augment in one process. Runs on each benchmark corpus (``bench.common.CORPORA``; FFCV's .beton
at the corpus's own JPEG quality) and at each ``--res`` (the peers at ``--peer-res`` only, default
all), with a table of the loader rates by resolution per corpus. The loader table also holds the
2-process full-decode rate of the same records with ``simplejpeg.decode_jpeg`` (RGB; libjpeg's
defaults, and fastdct + fastupsample), measured once per corpus. ``--standard-packed`` /
``--detail-packed``: the corpus packed elsewhere (another pack option). ``--quick``: 256
images of each corpus, one repeat, res 224 and 160: a check that the script runs. Writes the
``## Compare`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    FFCV_VENV,
    TV_VENV,
    PeerError,
    add_corpus_args,
    chosen_corpora,
    machine_metadata,
    metadata_line,
    packed_quality,
    run_peer,
    shown,
    summarize,
    write_results_section,
)


def augpipe_loader(packed: str, workers: int, batch_size: int, repeats: int, res: int) -> dict:
    from augpipe import Compose, HorizontalFlip, Loader, RandomResizedCrop

    pipe = Compose([RandomResizedCrop(res), HorizontalFlip()])
    rates = []
    with Loader(packed, batch_size, pipe, workers=workers, output="numpy") as loader:
        for epoch in range(repeats + 1):
            loader.set_epoch(epoch)
            n, t0 = 0, time.perf_counter()
            for images, _labels in loader:
                n += len(images)
            if epoch > 0:
                rates.append(n / (time.perf_counter() - t0))
    return {"peer": "augpipe", "output": "uint8", **summarize(rates)}


def augpipe_per_core(packed: str, images: int, repeats: int, res: int) -> dict:
    import numpy as np

    from augpipe import Compose, HorizontalFlip, RandomResizedCrop, ShardDataset

    ds = ShardDataset(packed)
    bound = Compose([RandomResizedCrop(res), HorizontalFlip()]).bind(ds)
    idx = np.random.default_rng(0).permutation(len(ds))[:images].astype(np.int64)
    out = np.empty((len(idx), *bound.output_shape), dtype=np.uint8)
    rates = []
    for rep in range(repeats + 1):
        t0 = time.perf_counter()
        bound.run_batch(ds, idx, 0, rep, out)
        if rep > 0:
            rates.append(len(idx) / (time.perf_counter() - t0))
    ds.close()
    return {"peer": "augpipe", "output": "uint8", **summarize(rates)}


def _peer(name: str, venv: str, script: str, args: list[str]) -> dict | None:
    print(f"[compare] {name} ...", file=sys.stderr, flush=True)
    try:
        return run_peer(venv, script, args)
    except PeerError as exc:
        print(f"[compare] {name} skipped: {exc}", file=sys.stderr)
        return None


def _cell(r: dict | None) -> str:
    if r is None:
        return "not run"
    return f"{r['median']:,.0f} ({min(r['rates']):,.0f}..{max(r['rates']):,.0f})"


def table(rows: list[tuple[str, str, dict | None]], base: dict) -> str:
    """Markdown table; ratios are augpipe's median over each contender's."""
    ours = base["median"]
    lines = [
        "| contender | output | images/s median (min..max) | augpipe / contender |",
        "|---|---|---|---|",
    ]
    for name, output, r in rows:
        ratio = "-" if r is None or r is base else f"{ours / r['median']:.2f}x"
        lines.append(f"| {name} | {output} | {_cell(r)} | {ratio} |")
    return "\n".join(lines)


def decode_rates(packed: str, processes: int, repeats: int) -> dict:
    """Full decode only of every record, ``processes`` processes, per decoder of ``DECODES``
    (``bench/decode_only.py``): the ceiling the loader is compared with."""
    from bench.decode_only import DecodeOnly

    out = {}
    for key, _label in DECODES:
        print(f"[compare] {shown(packed)}: {key} full decode, {processes} processes ...",
              file=sys.stderr, flush=True)  # fmt: skip
        try:
            with DecodeOnly(packed, processes, key) as d:
                out[key] = summarize([d.rate() for _ in range(repeats)])
        except ImportError as exc:  # simplejpeg missing
            print(f"[compare] {key} skipped: {exc}", file=sys.stderr)
            out[key] = None
    return out


# full-decode ceilings (bench/decode_only.py decoder names) and their rows in the loader table
DECODES = (
    ("simplejpeg", "simplejpeg.decode_jpeg RGB full decode only (no crop, resize, batching)"),
    ("simplejpeg-fast", "the same with fastdct + fastupsample"),
)


def run_one(args, photos: str, packed: str, res: int, beton_dir: str,
            decodes: dict | None = None) -> tuple[str, dict]:  # fmt: skip
    """Every contender on one corpus at one resolution: (markdown, raw results). ``decodes``:
    ``decode_rates`` of the corpus, shown as rows of the loader table."""
    w, bs, rep = args.workers, args.batch_size, args.repeats
    q = packed_quality(packed) or 90
    common = [photos, "--workers", str(w), "--batch-size", str(bs), "--repeats", str(rep),
              "--size", str(res)]  # fmt: skip
    print(f"[compare] {shown(packed)} at {res}: augpipe loader ...", file=sys.stderr, flush=True)
    ours = augpipe_loader(packed, w, bs, rep, res)
    peers = res in args.peer_sizes
    tv1 = tv2 = ffcv = None
    if peers:
        tv1 = _peer("torchvision v1", TV_VENV, "torchvision_loader.py",
                    [*common, "--version", "v1"])  # fmt: skip
        tv2 = _peer("torchvision v2", TV_VENV, "torchvision_loader.py",
                    [*common, "--version", "v2"])  # fmt: skip
    if peers and not args.no_ffcv:
        beton = str(Path(beton_dir) / f"q{q}-photos.beton")  # written once per corpus
        ffcv = _peer("ffcv", FFCV_VENV, "ffcv_loader.py",
                     [*common, "--beton", beton, "--quality", str(q)])  # fmt: skip

    print("[compare] per core: decode + augment ...", file=sys.stderr, flush=True)
    n1 = args.per_core_images
    single = ["--images", str(n1), "--repeats", str(rep), "--size", str(res), "--decode-augment"]
    ours_1 = augpipe_per_core(packed, n1, rep, res)
    tv1_1 = tv2_1 = None
    if peers:
        tv1_1 = _peer("tv v1 per core", TV_VENV, "torchvision_loader.py",
                      [photos, "--version", "v1", *single])  # fmt: skip
        tv2_1 = _peer("tv v2 per core", TV_VENV, "torchvision_loader.py",
                      [photos, "--version", "v2", *single])  # fmt: skip
    loader_rows = [
        (f"augpipe Loader, {w} workers", "uint8", ours),
        (f"torchvision v1 (PIL, ImageFolder + DataLoader), {w} workers", "float32", tv1),
        (f"torchvision v2 (decode_jpeg + v2 transforms), {w} workers", "uint8", tv2),
        (f"FFCV 1.0.2 (.beton, JPEG q{q}), {w} threads", "uint8", ffcv),
    ]
    for key, label in DECODES if decodes else ():
        loader_rows.append((f"{label}, {w} processes", "uint8 HWC", decodes.get(key)))
    core_rows = [
        ("augpipe (crop-aware decode + fused kernel)", "uint8", ours_1),
        ("torchvision v1 (PIL decode + transforms)", "float32", tv1_1),
        ("torchvision v2 (decode_jpeg + v2 transforms)", "uint8", tv2_1),
    ]
    md = "\n\n".join([
        f"RandomResizedCrop({res}) + horizontal flip on `{shown(photos)}` (augpipe reads the "
        f"same images packed as JPEG q{q} in `{shown(packed)}`). Loader, {w} workers, "
        f"batch {bs}:",
        table(loader_rows, ours),
        f"One process (per core), decode + augment of {n1} images:",
        table(core_rows, ours_1),
    ])  # fmt: skip
    raw = {"loader": {n: r for n, _, r in loader_rows}, "per_core": {n: r for n, _, r in core_rows}}
    raw["summary"] = {"augpipe": ours, "tv v1": tv1, "tv v2": tv2, "ffcv": ffcv}
    return md, raw


def by_resolution(name: str, results: dict) -> str:
    """One corpus's loader medians at every resolution, and augpipe's ratios: {res: raw}."""
    keys = ("tv v1", "tv v2", "ffcv")
    rows = ["| res | augpipe | torchvision v1 | torchvision v2 | FFCV | augpipe ÷ v1 / v2 / FFCV |",
            "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for res, raw in sorted(results.items()):
        r = raw["summary"]
        ours = r["augpipe"]["median"]
        cells = [f"{r[k]['median']:,.0f}" if r[k] else "not run" for k in keys]
        ratios = " / ".join(f"{ours / r[k]['median']:.2f}×" if r[k] else "—" for k in keys)
        rows.append(f"| {res} | {ours:,.0f} | {' | '.join(cells)} | {ratios} |")
    return (f"### Corpus `{name}`: loader rates by resolution (medians of the tables above)\n\n"
            + "\n".join(rows))  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_corpus_args(ap)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--res", default="224,192,160", help="output sizes, comma-separated")
    ap.add_argument("--peer-res", help="the sizes at which the peers run too (default: all "
                    "of --res; the others get augpipe's rows only)")  # fmt: skip
    ap.add_argument(
        "--no-decode", action="store_true", help="skip the 2-process simplejpeg full-decode rows"
    )
    ap.add_argument("--per-core-images", type=int, default=500)
    ap.add_argument("--no-ffcv", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    sizes = [int(v) for v in args.res.split(",") if v]
    if args.quick:
        args.repeats, args.per_core_images, args.batch_size, sizes = 1, 100, 64, [224, 160]
    args.peer_sizes = set(sizes) if args.peer_res is None else {
        int(v) for v in args.peer_res.split(",") if v}  # fmt: skip
    parts, raw, summaries = [], {}, []
    with tempfile.TemporaryDirectory(prefix="augpipe-compare-") as tmp:
        for name, (photos, packed) in chosen_corpora(args, tmp, 256).items():
            beton_dir = Path(tmp) / f"{name}-ffcv"
            beton_dir.mkdir()
            decodes = None if args.no_decode else decode_rates(str(packed), args.workers,
                                                               args.repeats)  # fmt: skip
            raw[f"{name}@decode"] = decodes
            here = {}
            for res in sizes:
                md, here[res] = run_one(args, str(photos), str(packed), res, str(beton_dir),
                                        decodes)  # fmt: skip
                raw[f"{name}@{res}"] = here[res]
                parts.append(f"### Corpus `{name}`, res {res}\n\n{md}")
            summaries.append(by_resolution(name, here))
    parts += summaries
    meta = machine_metadata()
    head = (f"`python bench/compare.py --workers {args.workers} --batch-size {args.batch_size} "
            f"--repeats {args.repeats} --res {','.join(map(str, sizes))}`: whole epochs in random "
            f"order, first epoch discarded, median of {args.repeats} epochs; peers run one at a "
            "time in their own venvs. The full-decode rows: the corpus's packed records decoded "
            f"whole, {args.workers} processes, nothing else (bench/decode_only.py), median of "
            f"{args.repeats} passes.")  # fmt: skip
    if args.quick:
        head = "(--quick: a check that the script runs; figures not meaningful)\n\n" + head
    md = "\n\n".join([head, metadata_line(meta), *parts])
    print(md)
    raw["machine"] = meta
    out_dir = Path(__file__).resolve().parent / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "compare.json").write_text(json.dumps(raw, indent=2))
    if not args.no_write:
        write_results_section("Compare", md)
        print("[compare] wrote the '## Compare' section of bench/RESULTS.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
