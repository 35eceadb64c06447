"""Shared helpers for the speed benchmarks in bench/ (never imported by the test suite's timing).

    from bench.common import median_rate, machine_metadata, write_results_section, run_peer

- ``median_rate(fn, n_items)``: call ``fn()`` (which processes ``n_items`` items) warmup + repeats
  times; the warm-up calls are discarded; returns median/min/max/all rates in items per second.
- ``machine_metadata()``: cores, CPU model, versions, git commit: put it beside every figure.
- ``write_results_section(title, markdown)``: replace (or append) one ``## title`` section of
  bench/RESULTS.md, leaving the other engineers' sections alone.
- ``run_peer(venv, script, args)``: run ``bench/peers/<script>`` inside a peer's own virtual
  environment and parse the JSON object it prints on its last stdout line.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"
PEERS_DIR = BENCH_DIR / "peers"


def _location(env: str, default: Path) -> Path:
    return Path(os.environ[env]) if os.environ.get(env) else default


# Benchmark inputs are never committed: by default they live in gitignored folders of the
# repository (make them as README.md's "Developing" section says); the variables move them.
CORPUS = _location("AUGPIPE_CORPUS", REPO / "data" / "corpus")
PHOTOS = CORPUS / "photos"  # ImageFolder of real-photo JPEGs (tools/make_photo_corpus.py)
PACKED = CORPUS / "packed"  # the same images after `augpipe pack`
# the benchmark corpora by name: (photos, packed); "detail" is tools/make_photo_corpus.py
# --preset detail (q95, larger images) packed with --quality 95, under CORPUS/detail
CORPORA = {
    "standard": (PHOTOS, PACKED),
    "detail": (CORPUS / "detail" / "photos", CORPUS / "detail" / "packed"),
}
PEER_VENVS = _location("AUGPIPE_PEERS", REPO / "peers")
TV_VENV = PEER_VENVS / "tv"  # torch 2.14.1 + torchvision 0.29.1 (bench/peers/README.md)
FFCV_VENV = PEER_VENVS / "ffcv"  # ffcv 1.0.2


def quick_corpus(photos, n: int, tmp, quality: int | None = None,
                 restart_rows: bool | None = None) -> tuple[Path, Path]:  # fmt: skip
    """For ``--quick`` runs: the first ``n`` images of ``photos`` (sorted, spread over its
    classes) linked into ``tmp/photos`` and packed into ``tmp/packed`` (JPEG, ``quality`` and
    ``restart_rows`` or the pack defaults): (photos, packed), small enough for a whole epoch in
    seconds."""
    from augpipe.format.pack import pack

    photos, tmp = Path(photos), Path(tmp)
    classes = sorted(p for p in photos.iterdir() if p.is_dir())
    per = max(1, -(-n // max(1, len(classes))))
    for c in classes:
        (tmp / "photos" / c.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(c.iterdir())[:per]:
            (tmp / "photos" / c.name / f.name).symlink_to(f.resolve())
    kw = {} if quality is None else {"quality": quality}
    if restart_rows is not None:
        kw["restart_rows"] = restart_rows
    pack(tmp / "photos", tmp / "packed", progress=False, **kw)
    return tmp / "photos", tmp / "packed"


def add_corpus_args(ap) -> None:
    """``--corpus``, ``--photos``, ``--packed``, ``--quick``: the options every speed benchmark
    takes to choose its corpora (see ``chosen_corpora``)."""
    ap.add_argument("--corpus", choices=("both", *CORPORA), default="both")
    ap.add_argument("--photos", help="one other ImageFolder (the peers read) instead of --corpus")
    ap.add_argument("--packed", help="the same images, packed")
    for name, (_photos, packed) in CORPORA.items():  # e.g. a repack with other pack options
        ap.add_argument(
            f"--{name}-packed",
            metavar="DIR",
            help=f"the {name} corpus packed elsewhere (default {shown(packed)})",
        )
    ap.add_argument("--quick", action="store_true", help="a small check that it runs")


def chosen_corpora(args, tmp, n_quick: int) -> dict[str, tuple[Path, Path]]:
    """name -> (photos, packed) for ``add_corpus_args``'s options; with ``--quick``, subsets of
    ``n_quick`` images packed into ``tmp`` at each corpus's own JPEG quality."""
    if args.packed:
        corpora = {"given": (Path(args.photos or args.packed), Path(args.packed))}
    else:
        names = list(CORPORA) if args.corpus == "both" else [args.corpus]
        corpora = {k: CORPORA[k] for k in names}
        for k, (photos, _packed) in corpora.items():
            if getattr(args, f"{k}_packed", None):
                corpora[k] = (photos, Path(getattr(args, f"{k}_packed")))
    if args.quick:
        corpora = {k: quick_corpus(ph, n_quick, Path(tmp) / k, packed_quality(pk),
                                   packed_option(pk, "restart_rows"))
                   for k, (ph, pk) in corpora.items()}  # fmt: skip
    return corpora


def packed_quality(packed) -> int | None:
    """The JPEG quality a packed dataset was written with (its manifest), if recorded."""
    try:
        return json.loads((Path(packed) / "manifest.json").read_text())["options"]["quality"]
    except (OSError, KeyError, ValueError):
        return None


def packed_option(packed, name: str):
    """One of the pack options a packed dataset's manifest records (None if unreadable;
    ``restart_rows`` absent: False, the datasets packed before the option existed)."""
    try:
        options = json.loads((Path(packed) / "manifest.json").read_text())["options"]
    except (OSError, KeyError, ValueError):
        return None
    return options.get(name, False if name == "restart_rows" else None)


def shown(path) -> str:
    """A path as RESULTS.md names it: relative to the repository when inside it."""
    p = Path(os.path.abspath(path))  # not resolve(): data/corpus may be a link to elsewhere
    if p.is_relative_to(REPO):
        return str(p.relative_to(REPO))
    if "AUGPIPE_CORPUS" in os.environ and p.is_relative_to(CORPUS):  # no machine's own folders
        return str(Path("$AUGPIPE_CORPUS") / p.relative_to(CORPUS))
    return str(path)


RESULTS_HEADER = """# Benchmark results

Measured figures only, each section written by its benchmark script (`bench/*.py`), with the
machine it ran on. Medians of several runs, warm-up discarded; ratios are against peers run in the
same process run, on the same images and cores.
"""


def median_rate(
    fn: Callable[[], object], n_items: int, repeats: int = 5, warmup: int = 1
) -> dict[str, float | list[float]]:
    """Rates (items/s) of ``fn()`` over ``repeats`` timed calls after ``warmup`` discarded ones."""
    if repeats < 1 or n_items < 1:
        raise ValueError(f"median_rate: repeats and n_items must be >= 1, got {repeats}, {n_items}")
    for _ in range(warmup):
        fn()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        rates.append(n_items / dt if dt > 0 else float("inf"))
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "rates": rates,
    }


def batch_runner(pipe, ds, idx, batch: int, out):
    """A callable for ``median_rate``: one pass of the bound pipeline ``pipe`` over the
    records ``idx`` of ``ds``, ``batch`` at a time, into the uint8 buffer ``out``."""

    def fn():
        for s in range(0, len(idx), batch):
            b = idx[s : s + batch]
            pipe.run_batch(ds, b, 0, 0, out[: len(b)])

    return fn


def summarize(rates: list[float]) -> dict[str, float | list[float]]:
    """The same dict as ``median_rate`` for rates measured elsewhere (for example by a peer)."""
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "rates": rates,
    }


def machine_metadata() -> dict[str, object]:
    """Where a figure came from: cores, CPU, library versions, GPU, commit, time."""
    from augpipe.bench.machine import machine_metadata as meta

    return meta()


def metadata_line(meta: dict[str, object] | None = None) -> str:
    """One markdown line describing the machine, for RESULTS.md sections."""
    m = meta or machine_metadata()
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    return (
        f"Machine: {m['cores']} cores ({m['cpu_model']}){gpu}; Python {m['python']}, "
        f"NumPy {m['numpy']}, Numba {m['numba']}, OpenCV {m['opencv']}, torch {m['torch']}; "
        f"commit {m['git_commit']}; load average {m.get('load_avg_1min') or 0:.1f} at the end; "
        f"{m['date']}."
    )


def write_results_section(title: str, markdown: str, path: Path = RESULTS) -> None:
    """Replace the ``## title`` section of RESULTS.md (up to the next ``## ``), or append it."""
    text = path.read_text() if path.exists() else RESULTS_HEADER
    section = f"## {title}\n\n{markdown.strip()}\n"
    # A section runs from its heading to the next level-2 heading or the end of the file.
    pattern = re.compile(rf"^## {re.escape(title)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


class PeerError(RuntimeError):
    """A peer benchmark could not run (missing venv, crash, no JSON on its last line)."""


def run_peer(
    venv: str | Path,
    script: str,
    args: list[str],
    timeout: float = 1800,
    peers_dir: Path = PEERS_DIR,
) -> dict:
    """Run ``venv/bin/python bench/peers/script args...`` and parse its last stdout line as JSON."""
    venv = Path(venv)
    python = venv / "bin" / "python"
    if not python.exists():
        raise PeerError(
            f"peer venv {venv} is missing ({python} not found); create it as described in "
            f"bench/peers/README.md"
        )
    script_path = Path(peers_dir) / (script if script.endswith(".py") else script + ".py")
    if not script_path.exists():
        raise PeerError(f"peer script {script_path} not found")
    cmd = [str(python), str(script_path), *map(str, args)]
    # The peer must not import this repo's packages or our venv's site-packages.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise PeerError(f"peer {script} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise PeerError(
            f"peer {script}: last stdout line is not JSON: {lines[-1][:200]!r}"
        ) from exc
    if not isinstance(result, dict):
        raise PeerError(f"peer {script}: expected a JSON object, got {type(result).__name__}")
    return result


if __name__ == "__main__":  # quick look at what would be recorded
    json.dump(machine_metadata(), sys.stdout, indent=2)
    print()


def load_note(loads: list[float], cores: int | None = None) -> str:
    """Say honestly whether other work shared the machine, from 1-minute load averages."""
    cores = cores or os.cpu_count() or 1
    peak = max(loads) if loads else 0.0
    if peak > cores + 0.5:
        return (
            f"The load average reached {peak:.1f} on {cores} cores: other processes shared the "
            "machine, so absolute rates are depressed; use the ratios between rows of this run."
        )
    return (
        f"The load average stayed at or below {peak:.1f} on {cores} cores (the benchmark's own "
        "processes): the machine was otherwise quiet."
    )
