"""``augpipe demo --size tiny``: every step (make, pack, inspect, bench, train) runs end to end."""

from __future__ import annotations

from augpipe.bench.verdict import BOTTLENECKS
from augpipe.cli.main import main


def test_demo_tiny_runs_every_step(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--size", "tiny", "--out", str(out), "--workers", "1"]) == 0
    text = capsys.readouterr().out
    for n in range(1, 6):
        assert f"== {n}/5" in text
    assert "Verdict: bottleneck =" in text and "val top-1" in text
    assert (out / "images").is_dir() and (out / "packed" / "manifest.json").is_file()
    assert (out / "run").is_dir()


def test_demo_returns_every_report(tmp_path):
    from augpipe.bench.demo import run_demo

    lines: list[str] = []
    r = run_demo(tmp_path / "d", size="tiny", workers=1, echo=lines.append)
    assert r["pack"]["packed"] == 36
    assert r["inspect"]["count"] == 36
    assert r["bench"]["bottleneck"] in BOTTLENECKS
    assert 0.0 <= r["train"]["val_top1"] <= 1.0 and r["train"]["epochs"] == 2


def test_demo_refuses_a_non_empty_out(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["demo", "--size", "tiny", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "Traceback" not in err
    assert (tmp_path / "keep.txt").read_text() == "mine"
