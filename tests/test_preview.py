"""`augpipe preview`: a labelled PNG grid; user errors exit 2."""

from __future__ import annotations

import cv2

from augpipe.cli.main import main


def test_preview_writes_a_grid(tiny_packed, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["preview", str(tiny_packed), "--out", str(out), "--n", "6", "--size", "32"]) == 0
    grid = cv2.imread(str(out))
    assert grid is not None and grid.shape[0] > 32 and grid.shape[1] > 4 * 64
    assert "6 samples" in capsys.readouterr().out


def test_preview_test_time_pipeline(tiny_packed, tmp_path):
    out = tmp_path / "ten.png"
    args = [
        "preview",
        str(tiny_packed),
        "--out",
        str(out),
        "--n",
        "2",
        "--size",
        "16",
        "--pipeline",
        "tencrop",
    ]
    assert main(args) == 0
    assert cv2.imread(str(out)).shape[1] >= 11 * 16


def test_preview_user_errors(tiny_packed, tmp_path, capsys):
    bad = [
        ["--pipeline", "nope"],
        ["--n", "0"],
    ]
    for extra in bad:
        assert main(["preview", str(tiny_packed), "--out", str(tmp_path / "x.png"), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error" in err
    assert main(["preview", str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")]) == 2
