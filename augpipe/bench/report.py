"""Render ``augpipe bench`` results: a text report, the JSON file, a bar chart of capacities."""

from __future__ import annotations

import json
from pathlib import Path


def _rate(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def _row(name: str, fig: dict | None, note: str = "") -> str:
    if fig is None:
        return f"  {name:<30} {'-':>10}   {'':<19} {note}"
    spread = f"{_rate(fig['min'])}..{_rate(fig['max'])}" if "min" in fig else ""
    return f"  {name:<30} {_rate(fig['median']):>10}   {spread:<19} {note}".rstrip()


def _cold_note(disk: dict) -> str:
    # A file mapped or read by another process keeps its pages: the "cold" read is then warm.
    if disk["cold"]["images_per_s"] > 0.3 * disk["warm"]["median"]:
        return "; near the warm rate: pages stayed cached (file in use elsewhere?)"
    return ""


def text_report(r: dict) -> str:
    d, c, st, m = r["dataset"], r["config"], r["stages"], r["machine"]
    disk = st["disk"]
    gpu = m.get("gpu") or "no GPU"
    lines = [
        f"augpipe bench: {d['path']} ({d['records']:,} records, {d['classes']} classes, "
        f"{d['encoding']}, {d.get('bytes', 0) / 1e6:,.1f} MB)",
        f"model {c['model']} @ {c['res']}px, batch {c['batch_size']}, device {c['device']}, "
        f"amp {c['amp']}{', channels_last' if c['channels_last'] else ''}; pipeline "
        f"{c['pipeline']}",
        f"machine: {m['cores']} cores ({m['cpu_model']}), {gpu}; torch {m['torch']}, "
        f"numba {m['numba']}, opencv {m['opencv']}; commit {m['git_commit']}",
        "",
        f"  {'stage (images/s, median)':<30} {'median':>10}   {'min..max':<19} note",
        _row(
            "shard read, cold",
            {"median": disk["cold"]["images_per_s"]},
            f"{disk['cold']['mb_per_s']:,.0f} MB/s"
            + ("" if disk["cold"]["dropped"] else ", page cache NOT dropped")
            + _cold_note(disk),
        ),
        _row(
            "shard read, warm",
            disk["warm"],
            "fits in page cache" if disk["fits_in_cache"] else "larger than free memory",
        ),
        _row("decode only, per core", st["decode"], "crop-aware decode only"),
        _row("decode + augment, per core", st["decode_augment"], "crop-aware decode + kernel"),
    ]
    for w, fig in st["loader"].items():
        lines.append(_row(f"loader, {w} worker(s)", fig, "uint8 batches"))
    if st.get("transfer"):
        lines.append(_row("host->device, pinned", st["transfer"]["pinned"]))
        lines.append(_row("host->device, pageable", st["transfer"]["pageable"]))
    else:
        lines.append(_row("host->device", None, "CUDA only"))
    mem = st["model"].get("peak_memory")
    mem_note = f"peak device memory {mem / 2**30:.2f} GiB" if mem else "synthetic data"
    lines.append(_row(f"model fwd+bwd ({c['model']})", st["model"], mem_note))
    e2e = r.get("end_to_end")
    if e2e:
        lines.append(
            _row("end to end (train steps)", {"median": e2e["images_per_s"]},
                 f"{e2e['workers']} worker(s), {e2e['data_wait_fraction']:.0%} waiting for data")
        )  # fmt: skip
    v = r["verdict"]
    lines += [
        "",
        f"Verdict: bottleneck = {v['bottleneck']} ({_rate(v['rate'])} images/s); "
        f"headroom {v['headroom']:.1f}x",
    ]
    lines += [f"  - {reason}" for reason in v["reasons"]]
    if v["advice"]:
        lines.append("Advice:")
        lines += [f"  - {a}" for a in v["advice"]]
    lines.append(f"(bench took {r.get('seconds_total', 0):.0f} s)")
    return "\n".join(lines)


def write_json(r: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(r, indent=2, default=float) + "\n")


def write_plot(r: dict, path: str | Path) -> str | None:
    """Bar chart of stage capacities; returns a note instead when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install 'augpipe[bench]')"
    v = r["verdict"]
    caps = v["capacities"]
    names = list(caps)
    values = [caps[n] for n in names]
    if r.get("end_to_end"):
        names.append("end to end")
        values.append(r["end_to_end"]["images_per_s"])
    colors = ["tab:red" if n == v["bottleneck"] else "tab:blue" for n in names]
    if names[-1] == "end to end":
        colors[-1] = "tab:gray"
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(names) + 1.5))
    ax.barh(names, values, color=colors)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("images/s (log scale)")
    c = r["config"]
    ax.set_title(f"{c['model']} @ {c['res']}px, batch {c['batch_size']}, {c['device']}: "
                 f"bottleneck = {v['bottleneck']}")  # fmt: skip
    for y, val in enumerate(values):
        ax.text(val, y, f" {_rate(val)}", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
