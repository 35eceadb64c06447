"""Reports of bench/gpu_check.py: ``gpu_check.json`` (everything) and ``gpu_check.md``
(tables, the issue's checks), plus the short summary printed at the end."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _f(v, spec: str = ".0f", none: str = "–") -> str:
    return none if v is None else format(v, spec)


def _rate(d) -> float | None:
    return d.get("images_per_s") if isinstance(d, dict) else None


def _problem(d) -> str:
    if not isinstance(d, dict):
        return "not run"
    if "skipped" in d:
        return f"skipped ({d['skipped']})"
    return f"error: {d['error']}" if "error" in d else ""


def checks(r: dict) -> list[tuple[str, bool | None, str]]:
    """(what, passed or None when not measured, the figures) for the issue's 'Show' list."""
    out: list[tuple[str, bool | None, str]] = []
    loader = r["steps"].get("loader", {})
    eq = loader.get("equality") if isinstance(loader, dict) else None
    if isinstance(eq, dict) and "equal" in eq:
        out.append(("Loader device batches == CPU path converted the same way", eq["equal"],
                    f"{eq['batches']} batches, max |diff| {eq['max_abs_diff']}"))  # fmt: skip
    else:
        out.append(("Loader device batches == CPU path", None, _problem(eq)))
    for run in r["steps"].get("train", {}).get("runs", []):
        c = run["config"]
        name = f"{c['model']} {c['res']} px"
        a, s, p = _rate(run.get("augpipe")), _rate(run.get("synthetic")), _rate(run.get("peer"))
        if a and s:
            out.append((f"{name}: end to end within 5% of the synthetic-data ceiling",
                        a >= 0.95 * s, f"{a:.0f} / {s:.0f} = {a / s:.1%}"))  # fmt: skip
        wait = run.get("augpipe", {}).get("data_wait_fraction")
        if wait is not None:
            out.append((f"{name}: data wait < 5%", wait < 0.05, f"{wait:.1%}"))
        if a and p:
            out.append((f"{name}: at least torchvision's DataLoader", a >= p,
                        f"{a:.0f} vs {p:.0f} ({a / p:.2f}x)"))  # fmt: skip
    for run in r["steps"].get("bench", {}).get("runs", []):
        c = run["config"]
        ok = bool(run.get("bottleneck")) if "error" not in run and "skipped" not in run else None
        out.append((f"augpipe bench {c['model']} {c['res']} px: a verdict", ok,
                    run.get("bottleneck") or _problem(run)))  # fmt: skip
    return out


def markdown(r: dict) -> str:
    env = r.get("environment", {})
    lines = [f"# GPU check ({'dry run, CPU, tiny sizes' if r['mode'] == 'dry' else 'device'})",
             "", "`bench/gpu_check.sh`" + (" --dry-run" if r["mode"] == "dry" else "") +
             f": {r.get('elapsed_s', 0):.0f} s of a {r['budget_s']:.0f} s budget.", ""]  # fmt: skip
    if r.get("fatal"):
        lines += [f"**Stopped:** {r['fatal']}", ""]
    keys = ("gpu", "torch", "cuda_version", "cudnn", "python", "cores", "numba", "lmdb",
            "simplejpeg", "cv2", "torchvision", "decode_path", "augpipe_from")  # fmt: skip
    lines += ["| environment | |", "|---|---|"]
    lines += [f"| {k} | {env.get(k)} |" for k in keys if k in env]
    c = r["steps"].get("corpus")
    if isinstance(c, dict) and "images" in c:
        lines += ["", f"Corpus: {c['images']} images, {c['classes']} classes, {c['kind']}; "
                  f"packed to {c['shard_mb']:.0f} MB in {c['pack_seconds']:.0f} s "
                  f"(cut in {c['cut_seconds']:.0f} s). Numba warm-up "
                  f"{_f(r.get('numba_warmup_s'), '.0f')} s."]  # fmt: skip
    elif c is not None:
        lines += ["", f"Corpus: {_problem(c)}"]
    lines += ["", "## Checks", ""]
    for what, ok, fig in checks(r):
        mark = "not measured" if ok is None else ("PASS" if ok else "FAIL")
        lines.append(f"- **{mark}** {what}: {fig}")
    lines += _loader(r["steps"].get("loader")) + _train(r["steps"].get("train"))
    lines += _bench(r["steps"].get("bench")) + _cudnn(r["steps"].get("cudnn"))
    return "\n".join(lines) + "\n"


def _loader(s) -> list[str]:
    if s is None:
        return []
    out = ["", "## 1. Loader: bfloat16, normalize='dataset', channels_last", ""]
    if _problem(s):
        return out + [_problem(s)]
    c = s["config"]
    out += [f"Batch {c['batch']}, RandomResizedCrop({c['res']}) + flip, ~{c['seconds']:g} s "
            "per point after 3 warm-up batches.", "", "| workers | images/s | × 1 worker |",
            "|---|---|---|"]  # fmt: skip
    base = s["rates"][0]["images_per_s"] if s["rates"] else None
    for p in s["rates"]:
        out.append(f"| {p['workers']} | {p['images_per_s']:.0f} | "
                   f"{p['images_per_s'] / base:.2f} |")  # fmt: skip
    if s.get("skipped_workers"):
        out.append(f"\nSkipped (time limit): {s['skipped_workers']} workers.")
    eq = s.get("equality", {})
    if eq.get("checks"):
        k = eq["checks"][0]
        out += ["", f"Equality with the CPU path: {'equal' if eq['equal'] else 'DIFFERENT'} over "
                f"{eq['batches']} batches; dtype {k['dtype']}, shape {k['shape']}, strides "
                f"{k['stride']}, channels_last {k['channels_last']}."]  # fmt: skip
    return out


def _train(s) -> list[str]:
    if s is None:
        return []
    out = ["", "## 2. Training: bf16 autocast, channels_last (augpipe train vs ceiling vs peer)",
           "", "| model | batch | workers | augpipe img/s | data wait | synthetic ceiling | "
           "augpipe / ceiling | peer img/s | peer data wait | augpipe / peer | peak memory |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    if _problem(s):
        return out + [_problem(s)]
    notes = []
    for run in s["runs"]:
        c, a, syn, p = (
            run["config"],
            run.get("augpipe", {}),
            run.get("synthetic", {}),
            run.get("peer", {}),
        )
        ra, rs, rp = _rate(a), _rate(syn), _rate(p)
        out.append(
            f"| {c['model']} {c['res']} px | {c['batch']} | {run['workers']} | {_f(ra)} | "
            f"{_f(a.get('data_wait_fraction'), '.1%')} | {_f(rs)} | "
            f"{_f(ra / rs if ra and rs else None, '.1%')} | {_f(rp)} | "
            f"{_f(p.get('data_wait_fraction'), '.1%')} | "
            f"{_f(ra / rp if ra and rp else None, '.2f')} | {_f(a.get('peak_memory_mb'))} MB |"
        )
        for key, d in (("augpipe", a), ("synthetic", syn), ("peer", p)):
            if _problem(d):
                notes.append(f"- {c['model']} {c['res']} px, {key}: {_problem(d)}")
        if p.get("dataset"):
            notes.append(f"- peer for {c['model']} {c['res']} px: {p['dataset']}")
    return out + ([""] + notes if notes else [])


def _bench(s) -> list[str]:
    if s is None:
        return []
    out = ["", "## 3. augpipe bench"]
    if _problem(s):
        return out + ["", _problem(s)]
    for run in s["runs"]:
        c = run["config"]
        out += ["", f"### {c['model']} {c['res']} px, batch {c['batch']}", ""]
        if _problem(run):
            out.append(_problem(run))
            continue
        t = run.get("transfer") or {}
        px = c["batch"] * c["res"] * c["res"] * 3
        for kind in ("pinned", "pageable"):
            if t.get(kind):
                gbs = t[kind]["median"] / c["batch"] * px / 1e9
                out.append(f"- host→device {kind}: {t[kind]['median']:.0f} images/s "
                           f"({gbs:.1f} GB/s)")  # fmt: skip
        mem = (run.get("model") or {}).get("peak_memory")
        out.append(f"- peak memory: {_f(mem / 2**20 if mem else None)} MB; bottleneck: "
                   f"{run.get('bottleneck')}")  # fmt: skip
        out += ["", "```", run.get("text", "").rstrip(), "```"]
    return out


def _cudnn(s) -> list[str]:
    if s is None:
        return []
    c = s.get("config", {})
    out = ["", f"## 4. cudnn.benchmark: {c.get('model')} {c.get('res')} px, batch "
           f"{c.get('batch')}, bf16, channels_last, synthetic data", ""]  # fmt: skip
    if _problem(s):
        return out + [_problem(s)]
    on, off = s.get("benchmark_on", {}), s.get("benchmark_off", {})
    out += ["| cudnn.benchmark | step ms | images/s |", "|---|---|---|"]
    for name, d in (("on", on), ("off", off)):
        out.append(f"| {name} | {_f(d.get('step_ms'), '.1f')} | {_f(_rate(d))} |"
                   + (f" {_problem(d)}" if _problem(d) else ""))  # fmt: skip
    if on.get("step_ms") and off.get("step_ms"):
        out.append(f"\nOff / on step time: {off['step_ms'] / on['step_ms']:.2f}.")
    return out


def summary(r: dict) -> str:
    lines = [f"gpu_check ({r['mode']}): {r.get('elapsed_s', 0):.0f} s, decode path: "
             f"{r.get('environment', {}).get('decode_path')}"]  # fmt: skip
    for what, ok, fig in checks(r):
        lines.append(f"  {'?' if ok is None else ('ok' if ok else 'FAIL')}  {what}: {fig}")
    return "\n".join(lines)


def write(r: dict, out_dir: Path) -> None:
    """Both reports, each written to a temp name and renamed (a kill leaves the last pair)."""
    for name, text in (("gpu_check.json", json.dumps(r, indent=1, default=str)),
                       ("gpu_check.md", markdown(r))):  # fmt: skip
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out_dir / name)
