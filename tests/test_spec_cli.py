"""``--pipeline FILE.json`` on ``augpipe train``, ``bench`` and ``preview``; bad files exit 2."""

from __future__ import annotations

import json

import cv2
import pytest

from augpipe import transforms as T
from augpipe.cli.main import main
from augpipe.spec import load_pipeline

BENCH = ["--model", "small_cnn", "--res", "16", "--batch-size", "8", "--seconds", "0.05",
         "--quiet", "--workers", "0"]  # fmt: skip
TRAIN = ["--model", "small_cnn", "--res", "16", "--epochs", "1", "--batch-size", "8",
         "--steps-per-epoch", "1", "--workers", "0", "--val-fraction", "0.25",
         "--no-progress"]  # fmt: skip


@pytest.fixture
def pipe_file(tmp_path):
    pipe = T.Compose([T.RandomResizedCrop((20, 28), scale=(0.3, 1.0)), T.HorizontalFlip(),
                      T.UserOp("user_augs:Cutout", args={"size": 4})])  # fmt: skip
    return pipe.save(tmp_path / "pipe.json"), pipe


def _bad_files(tmp_path):
    files = {
        "newer": {"version": 9, "ops": []},
        "unknown_op": {"version": 1, "ops": [{"op": "Blurr"}]},
        "bad_field": {"version": 1, "ops": [{"op": "CenterCrop", "size": "big"}]},
        "user_op": {"version": 1, "ops": [{"op": "CenterCrop", "size": 16},
                                          {"op": "UserOp", "path": "no_such_mod_z:f"}]},
    }  # fmt: skip
    out = []
    for name, d in files.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(d))
        out.append(str(path))
    return out


def _one_line_exit_2(argv, capsys, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err
    return err


def test_preview_takes_a_pipeline_file(tiny_packed, tmp_path, pipe_file, capsys):
    out = tmp_path / "grid.png"
    assert main(["preview", str(tiny_packed), "--out", str(out), "--n", "2",
                 "--pipeline", pipe_file[0]]) == 0  # fmt: skip
    grid = cv2.imread(str(out))
    assert grid is not None and grid.shape[0] >= 20 and grid.shape[1] >= 2 * 28
    assert "pipe.json" in capsys.readouterr().out


def test_preview_takes_a_registered_string_spec(tiny_packed, tmp_path):
    out = tmp_path / "rand.png"
    assert main(["preview", str(tiny_packed), "--out", str(out), "--n", "2", "--size", "16",
                 "--pipeline", "rand-m9-mstd0.5-inc1"]) == 0  # fmt: skip
    assert cv2.imread(str(out)) is not None


def test_bad_pipeline_files_exit_2_from_every_command(tiny_packed, tmp_path, capsys):
    for path in _bad_files(tmp_path):
        for argv in (
            ["preview", str(tiny_packed), "--out", str(tmp_path / "g.png"), "--pipeline", path],
            ["bench", str(tiny_packed), *BENCH, "--pipeline", path],
            ["train", str(tiny_packed), *TRAIN, "--out", str(tmp_path / "r"), "--pipeline", path],
        ):
            _one_line_exit_2(argv, capsys, path)
    assert not (tmp_path / "r").exists()  # rejected before anything ran
    _one_line_exit_2(["preview", str(tiny_packed), "--out", str(tmp_path / "g.png"),
                      "--pipeline", "zzz-m9-mstd0.5"], capsys, "zzz-m9-mstd0.5")  # fmt: skip


def test_bench_measures_the_given_pipeline(tiny_packed, tmp_path, pipe_file):
    path = tmp_path / "bench.json"
    assert main(["bench", str(tiny_packed), *BENCH, "--pipeline", pipe_file[0],
                 "--json", str(path)]) == 0  # fmt: skip
    data = json.loads(path.read_text())
    assert data["config"]["pipeline_spec"] == pipe_file[1].to_dict()
    assert "UserOp" in data["config"]["pipeline"]


def test_train_saves_the_resolved_pipeline_beside_config(tiny_packed, tmp_path, pipe_file):
    run = tmp_path / "run"
    assert main(["train", str(tiny_packed), *TRAIN, "--out", str(run),
                 "--pipeline", pipe_file[0]]) == 0  # fmt: skip
    saved = json.loads((run / "pipeline.json").read_text())
    assert saved == pipe_file[1].to_dict()
    assert json.loads((run / "config.json").read_text())["pipeline"] == pipe_file[0]
    assert load_pipeline(run / "val_pipeline.json").ops == [T.CenterCrop(16, short_side=18)]

    default = tmp_path / "default"
    assert main(["train", str(tiny_packed), *TRAIN, "--out", str(default)]) == 0
    ops = load_pipeline(default / "pipeline.json").ops
    assert ops == [T.RandomResizedCrop(16, scale=(0.35, 1.0)), T.HorizontalFlip()]


def test_train_rejects_crop_flags_beside_a_pipeline(tiny_packed, tmp_path, pipe_file, capsys):
    argv = ["train", str(tiny_packed), *TRAIN, "--out", str(tmp_path / "r"),
            "--pipeline", pipe_file[0]]  # fmt: skip
    _one_line_exit_2([*argv, "--no-flip"], capsys, "--pipeline")
    _one_line_exit_2([*argv, "--progressive-res", "16:24"], capsys, "--progressive-res")


def test_resume_refuses_a_changed_pipeline_file(tiny_packed, tmp_path, pipe_file, capsys):
    run = tmp_path / "run"
    argv = ["train", str(tiny_packed), *TRAIN, "--pipeline", pipe_file[0]]
    assert main([*argv, "--out", str(run)]) == 0
    assert main([*argv, "--resume", str(run)]) == 0  # the same file: nothing left to train
    T.Compose([T.RandomResizedCrop(20), T.HorizontalFlip()]).save(pipe_file[0])
    _one_line_exit_2([*argv, "--resume", str(run)], capsys, "--pipeline")
