"""Decode + augment speed per core: augpipe's crop-aware decode and fused kernels vs OpenCV and
torchvision v2, on the same images.

    python bench/augment_speed.py [--corpus both|standard|detail] [--images 500] [--repeats 5]
        [--sizes 224,192,160] [--baseline REV] [--quick] [--no-write] [--skip-peers]

Runs on each benchmark corpus (``bench.common.CORPORA``: the standard q90 one and the q95
"detail" one; ``--packed``/``--photos`` name one other corpus instead). ``--quick``: the first
120 images of each corpus, 2 repeats, a check that the script runs (figures not meaningful).

Everything runs in this one process on one core (cv2.setNumThreads(1); Numba kernels are
single-threaded), over the same records of the packed corpus; the torchvision v2 peer
(``peers/tv``) decodes the same photos from the ImageFolder the corpus was packed from.
Rows:

- ``cv2.imdecode`` alone (full decode): the rate the standard pipeline should reach;
- ``cv2.imdecode + crop + cv2.resize + flip``, using augpipe's own drawn crop rectangles;
- decode only: ``decode.load`` (whole image, DCT-scaled) and ``decode.load_region`` (only the
  crop's bounding box, when the C extension is built), on the standard pipeline's crops;
- augpipe standard: ``RandomResizedCrop(224) + HorizontalFlip`` via ``run_batch``, and the same
  with region decode switched off (``decode.REGION_DECODE = False``);
- augpipe full: standard + Affine + LensDistortion + ColorJitter + PCALighting;
- the same two augpipe pipelines on pre-decoded images (``apply``), to separate decode from warp;
- torchvision v2 ``decode_jpeg + v2.RandomResizedCrop + v2.RandomHorizontalFlip``, one process.

- the same decode-only and decode + augment rates of the standard pipeline at the other
  ``--sizes`` (160 and 192: FFCV's low-resolution recipes), with the DCT scales chosen there;
- kernel only, µs per image (``bench/kernel_time.py``): each record region-decoded, then the
  fused kernel timed on the just-decoded pixels as a worker runs it, per-record minimum over
  passes, for the standard and the warp pipeline at 224; with ``--baseline REV`` the same
  driver also runs on a temporary checkout of REV (its C extension built there), alternating
  with this tree, so that the before/after figures come from one run, and the two trees' kernel
  outputs on the same records are compared (max difference, values that differ, PSNR).

Medians of ``--repeats`` interleaved timed passes after one warm-up pass; results go to
bench/RESULTS.md (section "Augment speed") unless --no-write.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from augpipe import transforms as T  # noqa: E402
from augpipe.format.dataset import ShardDataset  # noqa: E402
from bench.common import (  # noqa: E402
    REPO,
    TV_VENV,
    PeerError,
    add_corpus_args,
    batch_runner,
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


def _has_simplejpeg() -> bool:
    from augpipe import decode

    return decode.simplejpeg is not None


def _restart_rows(packed) -> bool:
    try:
        return bool(json.loads((Path(packed) / "manifest.json").read_text())["options"]
                    .get("restart_rows", False))  # fmt: skip
    except (OSError, KeyError, ValueError):
        return False


def pipelines(size: int):
    std = T.Compose([T.RandomResizedCrop(size), T.HorizontalFlip()])
    full = T.Compose(
        [
            T.RandomResizedCrop(size),
            T.HorizontalFlip(),
            T.Affine(rotate=10, shear=5, translate=0.05, stretch=(0.9, 1.1)),
            T.LensDistortion((-0.2, 0.2)),
            T.ColorJitter(0.4, 0.4, 0.4),
            T.PCALighting(0.1),
        ]
    )
    return std, full


def run_corpus(args, packed: str, photos: str) -> str:
    """The rows of one corpus, as markdown."""
    cv2.setNumThreads(1)
    ds = ShardDataset(packed)
    n = min(args.images, len(ds))
    idx = np.arange(n, dtype=np.int64)
    std, full = (p.bind(ds) for p in pipelines(args.size))
    S = args.size
    out = np.empty((args.batch, S, S, 3), np.uint8)
    load0 = os.getloadavg()[0]

    def run(pipe):
        return batch_runner(pipe, ds, idx, args.batch, out)

    recs = std.sample_params(ds.sizes[idx], idx, 0, 0)
    rects = [(r["A2"][0]) for r in recs]

    def cv2_decode():
        for i in idx:
            cv2.imdecode(ds.raw(int(i)), cv2.IMREAD_COLOR)

    def cv2_pipeline():
        for j, i in enumerate(idx):
            img = cv2.imdecode(ds.raw(int(i)), cv2.IMREAD_COLOR)
            A = rects[j]
            w, h = abs(A[0, 0]) * S, A[1, 1] * S
            x0, y0 = int(round(A[0, 2] - w / 2)), int(round(A[1, 2] - h / 2))
            crop = img[y0 : y0 + int(round(h)), x0 : x0 + int(round(w))]
            res = cv2.resize(crop, (S, S), interpolation=cv2.INTER_LINEAR)
            if j & 1:
                res = cv2.flip(res, 1)
            cv2.cvtColor(res, cv2.COLOR_BGR2RGB)

    from augpipe.decode import load
    from augpipe.ops.params import min_scales

    scales = min_scales(recs)

    def augpipe_decode():
        for j, i in enumerate(idx):
            load(ds, int(i), float(scales[j]))

    from augpipe import decode
    from augpipe.ops.fused import fields, source_boxes

    boxes = source_boxes(fields(recs), (S, S))

    def region_decode():
        for j, i in enumerate(idx):
            decode.load_region(ds, int(i), float(scales[j]), boxes[j, :4], boxes[j, 4], reuse=True)

    def without_region(fn):
        def wrapped():
            flag, decode.REGION_DECODE = decode.REGION_DECODE, False
            try:
                fn()
            finally:
                decode.REGION_DECODE = flag

        return wrapped

    decoded = [ds.image(int(i)) for i in idx]

    def apply_only(pipe):
        def fn():  # parameters drawn per batch, as run_batch does
            for s in range(0, n, args.batch):
                b = idx[s : s + args.batch]
                recs = pipe.sample_params(ds.sizes[b], b, 0, 0)
                for j, i in enumerate(b):
                    pipe.apply(decoded[int(i)], recs[j])

        return fn

    def cv2_resize_only():
        for j in range(n):
            A = rects[j]
            img = decoded[j]
            w, h = abs(A[0, 0]) * S, A[1, 1] * S
            x0, y0 = int(round(A[0, 2] - w / 2)), int(round(A[1, 2] - h / 2))
            cv2.flip(cv2.resize(img[y0 : y0 + int(round(h)), x0 : x0 + int(round(w))], (S, S)), 1)

    fns = {
        "cv2.imdecode only (full decode)": cv2_decode,
        "cv2.imdecode + crop + cv2.resize + flip + BGR->RGB": cv2_pipeline,
        "augpipe decode only (crop-aware `decode.load`, standard crops)": augpipe_decode,
        "augpipe decode only, region (`decode.load_region`, standard crops)": region_decode,
        "augpipe standard: RandomResizedCrop 224 + flip": run(std),
        "augpipe standard, region decode off (whole-image decode)": without_region(run(std)),
        "augpipe full: + Affine + Lens + ColorJitter + PCALighting": run(full),
        "augment only: cv2 crop + resize + flip (decoded images)": cv2_resize_only,
        "augment only: augpipe standard (decoded images)": apply_only(std),
        "augment only: augpipe full (decoded images)": apply_only(full),
    }
    # interleaved: each repeat times every row once, so a change in the machine's load hits
    # all rows alike (the machine is shared); the first pass is the discarded warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for rep in range(args.repeats + 1):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if rep:
                times[name].append(n / (time.perf_counter() - t0))
    rows = {name: summarize(r) for name, r in times.items()}
    peer_note = ""
    if not args.skip_peers:
        try:
            res = run_peer(
                args.tv_venv,
                "torchvision_loader.py",
                [
                    photos,
                    "--version",
                    "v2",
                    "--decode-augment",
                    "--images",
                    str(n),
                    "--repeats",
                    str(args.repeats),
                    "--size",
                    str(S),
                ],
            )
            rows["torchvision v2: decode_jpeg + RandomResizedCrop + flip"] = {
                "median": res["median"],
                "min": min(res["rates"]),
                "max": max(res["rates"]),
                "rates": res["rates"],
            }
            peer_note = f" torchvision peer: {json.dumps(res.get('versions', {}))}."
        except PeerError as exc:
            peer_note = f" torchvision peer not run: {str(exc).splitlines()[0]}"
    load1 = os.getloadavg()[0]

    from augpipe.decode import dct_factor
    from augpipe.ops.params import min_scales

    factors = [
        dct_factor(float(v)) for v in min_scales(std.sample_params(ds.sizes[idx], idx, 0, 0))
    ]
    dct = ", ".join(f"1/{d}: {factors.count(d) / n:.0%}" for d in (1, 2, 4, 8))
    base = rows["cv2.imdecode only (full decode)"]["median"]
    std_rate = rows["augpipe standard: RandomResizedCrop 224 + flip"]["median"]
    full_rate = rows["augpipe full: + Affine + Lens + ColorJitter + PCALighting"]["median"]
    lines = [
        "| what (one core) | images/s median | min–max | vs cv2.imdecode only |",
        "|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['median']:,.0f} | {r['min']:,.0f}–{r['max']:,.0f} | "
            f"{r['median'] / base:.2f}× |"
        )
    dec_name = "augpipe decode only (crop-aware `decode.load`, standard crops)"
    dec = rows[dec_name]["median"]
    region = rows["augpipe decode only, region (`decode.load_region`, standard crops)"]["median"]
    std_off = rows["augpipe standard, region decode off (whole-image decode)"]["median"]
    if decode.REGION_DECODE:
        dec = region
    budget_us = (1 / base - 1 / dec) * 1e6  # what the augmentation may cost to reach the target
    spent_us = (1 / std_rate - 1 / dec) * 1e6
    cv2_aug_us = 1e6 / rows["augment only: cv2 crop + resize + flip (decoded images)"]["median"]
    lines += [
        "",
        f"Per image: crop-aware decode {1e6 / dec:.0f} µs vs cv2.imdecode {1e6 / base:.0f} µs, so "
        f"the standard pipeline may spend {budget_us:.0f} µs on augmentation to match the "
        f"decode-only rate; it spends {spent_us:.0f} µs (cv2.resize + flip alone, decoded "
        f"images: {cv2_aug_us:.0f} µs).",
        "",
        f"Targets: standard ≥ cv2.imdecode-only rate: {std_rate / base:.2f}× "
        f"({'met' if std_rate >= base else 'not met'}); full pipeline cost ≤ 1.5× standard: "
        f"{std_rate / full_rate:.2f}× ({'met' if std_rate / full_rate <= 1.5 else 'not met'}).",
        "",
        f"{n} records of `{shown(packed)}` (JPEG q{packed_quality(packed)}), {args.repeats} "
        "interleaved timed passes "
        "after "
        f"1 warm-up, "
        f"batches of {args.batch}, output {S}×{S} uint8. Load average during the run: "
        f"{load0:.1f} → {load1:.1f}. "
        + load_note([load0, load1])
        + " The torchvision peer runs after the interleaved rows, in its own process."
        + peer_note,
        "",
        f"DCT scale chosen by the crop-aware decode for the standard pipeline on these records: "
        f"{dct}. Whole-image decodes (`decode.load`) use simplejpeg "
        f"({'installed' if _has_simplejpeg() else 'NOT installed: cv2.imdecode'}).",
        "",
        f"Region decode (`augpipe._jpegregion`, libjpeg-turbo, fast IDCT and merged upsampling "
        f"as `fast_decode` asks, only the crop's rows and columns; the rows above skipped "
        f"entirely when the records carry restart markers: "
        f"{'yes' if _restart_rows(packed) else 'no'}): "
        f"{'active' if decode.REGION_DECODE else 'NOT built: rows measure load()'}. "
        f"Decode only, region vs whole image: {region / rows[dec_name]['median']:.2f}×; "
        f"standard pipeline with vs without region decode: {std_rate / std_off:.2f}×.",
        "",
        metadata_line(machine_metadata()),
    ]
    lines += ["", low_resolution(args, ds, idx, n)]
    return "\n".join(lines)


def low_resolution(args, ds, idx, n: int) -> str:
    """Decode only and decode + augment of the standard pipeline at each of ``--sizes``."""
    from augpipe.decode import dct_factor
    from augpipe.ops.params import min_scales

    rows = ["| size | decode only, images/s | decode + augment, images/s | ratio | DCT 1/1, 1/2, "
            "1/4, 1/8 |", "|---|---|---|---|---|"]  # fmt: skip
    for size in args.sizes:
        std = pipelines(size)[0].bind(ds)
        out = np.empty((args.batch, size, size, 3), np.uint8)

        def both(aug, std=std, out=out):
            for s in range(0, n, args.batch):
                b = idx[s : s + args.batch]
                if aug:
                    std.run_batch(ds, b, 0, 0, out[: len(b)])
                else:
                    std.decode_batch(ds, b, 0, 0)

        t: dict[bool, list[float]] = {False: [], True: []}
        for rep in range(args.repeats + 1):
            for aug in (False, True):
                t0 = time.perf_counter()
                both(aug)
                if rep:
                    t[aug].append(n / (time.perf_counter() - t0))
        dec, aug = summarize(t[False])["median"], summarize(t[True])["median"]
        f = [dct_factor(float(v)) for v in min_scales(std.sample_params(ds.sizes[idx], idx))]
        share = ", ".join(f"{f.count(d) / n:.0%}" for d in (1, 2, 4, 8))
        rows.append(f"| {size} | {dec:,.0f} | {aug:,.0f} | {aug / dec:.2f}× | {share} |")
    return (f"Standard pipeline by output size (one core, median of {args.repeats}; target: "
            "decode + augment ≥ 0.8× decode only):\n\n" + "\n".join(rows))  # fmt: skip


def _kernel_run(tree: Path, packed: str, pipeline: str, args, save=None) -> dict:
    """bench/kernel_time.py (this tree's driver) with ``tree``'s augpipe."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, str(REPO / "bench" / "kernel_time.py"), packed, "--pipeline", pipeline,
           "--images", str(args.kernel_images), "--passes", str(args.kernel_passes)]  # fmt: skip
    if save:
        cmd += ["--save", str(save)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _checkout(rev: str, where: Path) -> Path:
    """A detached worktree of ``rev`` with its C extension built in place."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(where), rev],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-q"], cwd=where,
                   check=True, capture_output=True)  # fmt: skip
    return where


def _output_diffs(saved: Path, trees: dict, corpora: dict) -> list[str]:
    """Rows comparing the last tree's kernel outputs with the first's (when there are two)."""
    if len(trees) < 2:
        return []
    rows = []
    for c, name in enumerate(corpora):
        for pipeline in ("standard", "warp"):
            a = np.load(saved / f"0-{c}-{pipeline}.npy").astype(np.int16)
            b = np.load(saved / f"{len(trees) - 1}-{c}-{pipeline}.npy").astype(np.int16)
            d = b - a
            mse = float(np.mean(d.astype(np.float64) ** 2))
            psnr = "identical" if mse == 0 else f"{10 * np.log10(255**2 / mse):.1f}"
            rows.append(f"| {name} | {pipeline} | {int(np.abs(d).max())} | "
                        f"{np.count_nonzero(d) / d.size:.3%} | {psnr} |")  # fmt: skip
    return rows


def kernel_table(args, corpora: dict) -> str:
    """Kernel-only µs per image, this tree (and ``--baseline``), per corpus and pipeline."""
    trees = {"this tree": REPO}
    tmp = None
    if args.baseline:
        tmp = Path(tempfile.mkdtemp(prefix="augpipe-baseline-"))
        trees = {f"baseline {args.baseline}": _checkout(args.baseline, tmp / "tree"), **trees}
    best: dict = {}
    saved = Path(tempfile.mkdtemp(prefix="augpipe-kernel-out-"))
    try:
        for rnd in range(args.kernel_rounds):  # alternating trees: load hits both alike
            for t, (label, tree) in enumerate(trees.items()):
                for c, (name, (_photos, packed)) in enumerate(corpora.items()):
                    for pipeline in ("standard", "warp"):
                        out = saved / f"{t}-{c}-{pipeline}.npy" if rnd == 0 else None
                        r = _kernel_run(tree, str(packed), pipeline, args, out)
                        key = (label, name, pipeline)
                        old = best.get(key)
                        best[key] = r if old is None else {k: min(old[k], r[k]) for k in r}
        diffs = _output_diffs(saved, trees, corpora)
    finally:
        shutil.rmtree(saved, ignore_errors=True)
        if tmp is not None:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(tmp / "tree")], capture_output=True)  # fmt: skip
    rows = ["| tree | corpus | pipeline at 224 | kernel µs/image | region decode µs/image | "
            "sum |", "|---|---|---|---|---|---|"]  # fmt: skip
    for (label, name, pipeline), r in best.items():
        rows.append(f"| {label} | {name} | {pipeline} | {r['kernel_us']:.1f} | "
                    f"{r['decode_us']:.1f} | {r['total_us']:.1f} |")  # fmt: skip
    if diffs:
        rows += ["", "Outputs of this tree against the baseline's (same records):", "",
                 "| corpus | pipeline | max abs difference | values that differ | PSNR dB |",
                 "|---|---|---|---|---|"] + diffs  # fmt: skip
    return ("Kernel only (`bench/kernel_time.py`: each record region-decoded, the fused kernel "
            "timed on the just-decoded pixels, per-record minimum over "
            f"{args.kernel_passes} passes, mean over {args.kernel_images} records; best of "
            f"{args.kernel_rounds} alternating rounds). `standard` = RandomResizedCrop + flip "
            "(separable kernel), `warp` = + Affine + Lens + ColorJitter (warp kernel):\n\n"
            + "\n".join(rows))  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_args(ap)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--sizes", default="224,192,160", help="output sizes of the size table")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--baseline", help="also time the kernel of this git revision (before)")
    ap.add_argument("--kernel-images", type=int, default=300)
    ap.add_argument("--kernel-passes", type=int, default=5)
    ap.add_argument("--kernel-rounds", type=int, default=2)
    ap.add_argument("--tv-venv", default=str(TV_VENV))
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    args.sizes = [int(v) for v in args.sizes.split(",")]
    if args.quick:
        args.images, args.repeats, args.sizes = 120, 2, [224, 160]
        args.kernel_images, args.kernel_passes, args.kernel_rounds = 60, 2, 1
    with tempfile.TemporaryDirectory(prefix="augpipe-quick-") as tmp:
        corpora = chosen_corpora(args, tmp, 120)
        parts = []
        for name, (photos, packed) in corpora.items():
            print(f"[augment_speed] corpus {name}: {shown(packed)}", file=sys.stderr, flush=True)
            parts.append(f"### Corpus `{name}`\n\n" + run_corpus(args, str(packed), str(photos)))
        print("[augment_speed] kernel only ...", file=sys.stderr, flush=True)
        parts.append("### Kernel only\n\n" + kernel_table(args, corpora))
    md = "\n\n".join(parts)
    if args.quick:
        md = "(--quick: a check that the script runs; figures not meaningful)\n\n" + md
    print(md)
    if not args.no_write:
        write_results_section("Augment speed", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
