"""Where a figure came from: cores, CPU model, library versions, GPU, git commit, date."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # absent or broken: report it as missing, never fail the benchmark
        return None
    return getattr(mod, "__version__", "unknown")


def git_commit(repo: Path = REPO) -> str | None:
    """Short commit of the source tree, with ``+dirty`` when tracked files changed."""
    if not (repo / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=5)  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=5)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine_metadata() -> dict[str, object]:
    """JSON-ready description of this machine and software."""
    from augpipe import __version__

    meta: dict[str, object] = {
        "cores": usable_cores(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "augpipe": __version__,
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "opencv": _version("cv2"),
        "torch": _version("torch"),
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "gpu": None,
        "git_commit": git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        import torch

        if torch.cuda.is_available():
            meta["gpu"] = torch.cuda.get_device_name(0)
            meta["cuda"] = torch.version.cuda
    except Exception:  # a broken torch install must not stop the report
        pass
    return meta
