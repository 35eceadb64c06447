"""bench/common.py helpers (median_rate, RESULTS.md sections, peers) and the corpus maker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # bench/ and tools/ are scripts, not part of the package

from bench.common import PeerError, median_rate, run_peer, write_results_section  # noqa: E402


def test_median_rate_discards_warmup():
    calls = []
    r = median_rate(lambda: calls.append(1), n_items=100, repeats=3, warmup=2)
    assert len(calls) == 5
    assert len(r["rates"]) == 3 and r["min"] <= r["median"] <= r["max"]
    with pytest.raises(ValueError):
        median_rate(lambda: None, n_items=0)


def test_write_results_section_replaces_only_its_section(tmp_path):
    path = tmp_path / "RESULTS.md"
    write_results_section("Loader", "loader v1", path)
    assert path.read_text().startswith("# Benchmark results")
    write_results_section("Compare", "compare v1\n\n| a | b |", path)
    write_results_section("Decode", "decode v1", path)
    write_results_section("Compare", "compare v2", path)
    text = path.read_text()
    assert "compare v1" not in text and "compare v2" in text
    assert text.index("## Loader") < text.index("## Compare") < text.index("## Decode")
    assert "loader v1" in text and "decode v1" in text
    assert text.count("## Compare") == 1


def _fake_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin" / "python")
    return venv


def test_run_peer_parses_the_last_json_line(tmp_path):
    peers = tmp_path / "peers"
    peers.mkdir()
    (peers / "ok.py").write_text(
        "import json, sys\nprint('log line')\n"
        "print(json.dumps({'rates': [1.0], 'a': sys.argv[1]}))\n"
    )
    (peers / "bad.py").write_text("print('not json')\n")
    (peers / "crash.py").write_text("raise SystemExit('boom')\n")
    venv = _fake_venv(tmp_path)
    assert run_peer(venv, "ok.py", ["x"], peers_dir=peers) == {"rates": [1.0], "a": "x"}
    with pytest.raises(PeerError, match="not JSON"):
        run_peer(venv, "bad", [], peers_dir=peers)
    with pytest.raises(PeerError, match="boom"):
        run_peer(venv, "crash", [], peers_dir=peers)


def test_run_peer_missing_venv_says_how_to_make_it(tmp_path):
    with pytest.raises(PeerError, match="README"):
        run_peer(tmp_path / "missing", "torchvision_loader.py", [])


def test_photo_corpus_is_imagenet_like_and_deterministic(tmp_path):
    from tools.make_photo_corpus import main as make_corpus

    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):  # two fake "photos", large enough to cut from
        img = cv2.GaussianBlur(rng.integers(0, 256, (1100, 1500, 3), dtype=np.uint8), (9, 9), 3)
        cv2.imwrite(str(src / f"p{k}.jpg"), img)
    a, b = tmp_path / "a", tmp_path / "b"
    assert make_corpus([str(src), str(a), "--n", "12", "--classes", "3", "--workers", "1"]) == 0
    assert make_corpus([str(src), str(b), "--n", "12", "--classes", "3", "--workers", "2"]) == 0
    files = sorted(p.relative_to(a) for p in a.rglob("*.jpg"))
    assert len(files) == 12 and {f.parts[0] for f in files} == {"class_00", "class_01", "class_02"}
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes()  # independent of --workers
        h, w = cv2.imread(str(a / f)).shape[:2]
        assert 300 <= min(h, w) <= 500 and max(h, w) / min(h, w) <= 2.0 + 1e-6
