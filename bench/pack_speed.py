"""Pack speed: ``augpipe pack`` images/s with 1 and 2 workers, and FFCV's writer on the same images.

    python bench/pack_speed.py [--corpus data/corpus/photos] [--images 1500] [--repeats 3]

Takes ``--images`` images spread evenly over the corpus (every k-th of the sorted ImageFolder
listing, written as a list file so both writers see exactly the same files), and times whole
packs: JPEG quality 90, original sizes (what FFCV's ``RGBImageField(write_mode="jpg",
jpeg_quality=90)`` does). Each configuration runs ``--repeats`` times after one discarded
warm-up (page cache, imports); the median, min and max are reported. FFCV runs in its own venv
(``peers/ffcv``) through ``bench/peers/ffcv_pack.py`` when that venv exists. Results go to
the ``## Pack speed`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    FFCV_VENV,
    PHOTOS,
    PeerError,
    machine_metadata,
    metadata_line,
    run_peer,
    shown,
    summarize,
    write_results_section,
)


def make_list(corpus: Path, n: int, dest: Path) -> int:
    from augpipe.format.sources import image_folder

    src = image_folder(corpus)
    step = max(1, len(src.items) // n)
    chosen = src.items[::step][:n]
    with open(dest, "w") as f:
        for path, label in chosen:
            f.write(f"{os.path.relpath(path, corpus)} {label}\n")
    return len(chosen)


def time_augpipe(
    list_file: Path, corpus: Path, out: Path, workers: int, repeats: int, keep_jpeg: bool = False
) -> dict:
    from augpipe.format.pack import pack

    rates, size = [], 0
    for rep in range(repeats + 1):  # run 0: warm-up, discarded
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        report = pack(None, out, list_file=list_file, root=corpus, workers=workers,
                      keep_jpeg=keep_jpeg, progress=False)  # fmt: skip
        dt = time.perf_counter() - t0
        if rep:
            rates.append(report.packed / dt)
        size = report.bytes
    shutil.rmtree(out, ignore_errors=True)
    return {**summarize(rates), "bytes": size}


def fmt(r: dict) -> str:
    return f"{r['median']:.0f} ({r['min']:.0f}–{r['max']:.0f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=str(PHOTOS))
    ap.add_argument("--images", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-ffcv", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    args = ap.parse_args()
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"pack_speed: corpus {corpus} not found; make it with tools/make_photo_corpus.py",
              file=sys.stderr)  # fmt: skip
        return 2
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="pack_speed-") as tmp:
        tmp = Path(tmp)
        n = make_list(corpus, args.images, tmp / "list.txt")
        rows = {}
        for keep in (False, True):
            for w in (1, 2):
                name = f"augpipe pack{' --keep-jpeg' if keep else ''}, {w} worker(s)"
                rows[name] = time_augpipe(
                    tmp / "list.txt", corpus, tmp / "out", w, args.repeats, keep_jpeg=keep
                )
                print(json.dumps({name: rows[name]}), file=sys.stderr)
        ffcv_note = ""
        if not args.no_ffcv and FFCV_VENV.exists():
            for w in (1, 2):
                try:
                    res = run_peer(FFCV_VENV, "ffcv_pack.py", [
                        tmp / "list.txt", corpus, "--out", tmp / "x.beton", "--workers", w,
                        "--repeats", args.repeats])  # fmt: skip
                except PeerError as exc:
                    ffcv_note = f"FFCV writer not measured: {str(exc).splitlines()[0]}"
                    break
                # FFCV has no warm-up run of its own here: drop its first repeat
                rates = res["rates"][1:] if len(res["rates"]) > 1 else res["rates"]
                rows[f"FFCV {res['versions']['ffcv']} DatasetWriter, {w} worker(s)"] = {
                    **summarize(rates), "bytes": res["bytes"]}  # fmt: skip
        else:
            ffcv_note = f"FFCV writer not measured (no {shown(FFCV_VENV)} venv)."
    load_after = os.getloadavg()
    meta = machine_metadata()
    base = rows["augpipe pack, 1 worker(s)"]["median"]
    ffcv1 = next((r["median"] for k, r in rows.items() if k.startswith("FFCV") and "1 w" in k), 0)
    lines = [
        f"`python bench/pack_speed.py --images {args.images} --repeats {args.repeats}`: {n} "
        f"JPEGs from `{shown(corpus)}` (every k-th file), packed as JPEG q90 at their original "
        "sizes "
        "(decode, EXIF/mode handling, re-encode, CRC, LMDB write, statistics, manifest); "
        "`--keep-jpeg` rows store the source JPEG bytes instead of re-encoding (still decoded "
        "for validation and statistics). "
        "Whole-pack wall time including worker start-up; median (min–max) of "
        f"{args.repeats} runs after one discarded warm-up.",
        "",
        "| writer | images/s | vs augpipe 1 worker | vs FFCV 1 worker | output MB |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        vs_ffcv = f"{r['median'] / ffcv1:.2f}×" if ffcv1 else "–"
        lines.append(f"| {name} | {fmt(r)} | {r['median'] / base:.2f}× | {vs_ffcv} | "
                     f"{r['bytes'] / 1e6:.1f} |")  # fmt: skip
    lines += [
        "",
        f"Load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f}.",
    ]
    cores = os.cpu_count() or 1
    if max(load_before[0], load_after[0]) > cores:
        lines.append(
            f"The load average exceeded the {cores} cores during this run: other processes took "
            "CPU time, so absolute rates are low and the 1-vs-2-worker scaling is mostly "
            "contention, not the packer."
        )
    sizes = {r["bytes"] for k, r in rows.items() if k.startswith("FFCV")}
    if len(sizes) > 1:
        lines.append(
            "FFCV's output size differs between its 1- and 2-worker runs (its file "
            "layout depends on the worker count); augpipe's shards are byte-identical."
        )
    if ffcv_note:
        lines.append(ffcv_note)
    lines.append(metadata_line(meta))
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_results_section("Pack speed", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
