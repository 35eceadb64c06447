"""``torchrun --nproc_per_node=2 -m augpipe train``: gloo on the CPU, disjoint data per rank."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(180)
def test_two_process_gloo_run_trains_on_disjoint_data(tmp_path):
    from augpipe import pack
    from augpipe.synth import make_image_folder

    make_image_folder(tmp_path / "img", n_classes=3, per_class=24, min_side=32, max_side=40, seed=3)
    pack(tmp_path / "img", tmp_path / "data", progress=False)
    run, summary = tmp_path / "run", tmp_path / "summary.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           "-m", "augpipe", "train", str(tmp_path / "data"), "--model", "small_cnn",
           "--res", "32", "--epochs", "2", "--batch-size", "8", "--workers", "1",
           "--out", str(run), "--json", str(summary), "--no-progress"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=170, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2
    # 66 training images (6 held out): 33 per rank, 32 of them in full batches of 8
    assert config["rank_samples_epoch0"] == [32, 32]
    assert config["rank_overlap_epoch0"] == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]  # one writer, not one per rank
    assert all(r["train_images"] == 64 for r in records)  # summed over both ranks
    assert json.loads(summary.read_text())["epochs"] == 2
    assert proc.stdout.count('"val_top1"') == 1  # only rank 0 prints the summary
