"""bench/gpu_check.sh --dry-run: the device check's every step runs on the CPU, so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_dry_run_writes_both_reports_with_every_step_measured(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "out"), PYTHON=sys.executable,
               TMPDIR=str(tmp_path))  # fmt: skip
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run"], env=env,
                         capture_output=True, text=True, timeout=280)  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    r = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    md = (tmp_path / "out" / "gpu_check.md").read_text()
    assert r["mode"] == "dry" and "error" not in json.dumps(r["steps"]), r["steps"]
    assert r["environment"]["decode_path"]
    steps = r["steps"]
    assert steps["corpus"]["images"] == 24
    loader = steps["loader"]
    assert [p["workers"] for p in loader["rates"]] == [1, 2]
    assert all(p["images_per_s"] > 0 for p in loader["rates"])
    eq = loader["equality"]
    assert eq["equal"] and eq["batches"] == 3 and eq["checks"][0]["dtype"] == "torch.bfloat16"
    assert eq["checks"][0]["channels_last"]
    (run0,) = steps["train"]["runs"]
    for key in ("augpipe", "synthetic", "peer"):
        assert run0[key]["images_per_s"] > 0, key
    assert 0 <= run0["augpipe"]["data_wait_fraction"] <= 1
    (bench,) = steps["bench"]["runs"]
    assert bench["bottleneck"] and "Verdict" in bench["text"]
    assert steps["cudnn"]["benchmark_on"]["step_ms"] > 0
    assert steps["cudnn"]["benchmark_off"]["step_ms"] > 0
    for title in ("## Checks", "## 1. Loader", "## 2. Training", "## 3. augpipe bench",
                  "## 4. cudnn.benchmark"):  # fmt: skip
        assert title in md
    assert "gpu_check (dry)" in run.stdout  # the short summary


def test_reports_survive_skipped_and_failed_steps(tmp_path):
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import gpu_check_report as report
    finally:
        sys.path.pop(0)
    r = {"mode": "device", "budget_s": 360, "elapsed_s": 400, "environment": {"gpu": "x"},
         "steps": {"corpus": {"error": "RuntimeError: no photos"},
                   "loader": {"skipped": "time limit"},
                   "train": {"runs": [{"config": {"model": "resnet50", "res": 224, "batch": 256},
                                       "workers": 14, "augpipe": {"error": "boom"},
                                       "synthetic": {"images_per_s": 3000.0},
                                       "peer": {"skipped": "time limit"}}]},
                   "cudnn": {"config": {}, "benchmark_on": {"step_ms": 80.0,
                                                            "images_per_s": 3200.0}}}}  # fmt: skip
    report.write(r, tmp_path)
    md = (tmp_path / "gpu_check.md").read_text()
    assert "error: RuntimeError: no photos" in md and "resnet50 224 px, augpipe: error: boom" in md
    assert "**not measured** Loader" in md
    assert json.loads((tmp_path / "gpu_check.json").read_text())["elapsed_s"] == 400


def test_what_travels_to_the_device_fits_its_limit():
    """The device call sends the tracked tree plus the carried folders: 64 MiB in all."""
    import shutil

    import pytest

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    header = (REPO / "bench" / "gpu_check.sh").read_text()
    assert 'carry=[".whl", ".gpu_photos"]' in header
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.split(b"\0")  # fmt: skip
    tracked = sum((REPO / f.decode()).stat().st_size for f in files if f and (REPO / f.decode())
                  .is_file())  # fmt: skip
    # with the slash: the patterns are for folders, which a fresh checkout does not have yet
    ignored = subprocess.run(["git", "check-ignore", ".whl/", ".gpu_photos/"], cwd=REPO,
                             capture_output=True, text=True).stdout.split()  # fmt: skip
    assert ignored == [".whl/", ".gpu_photos/"]  # carried, never committed
    photos = 7 << 20  # the 12 mate-backgrounds nature photos --prepare copies (6.6 MB)
    wheels = 2 << 20  # lmdb + simplejpeg cp312 wheels (~1 MB)
    assert tracked + photos + wheels < 48 << 20, f"{tracked / 2**20:.1f} MiB tracked"
