"""Preemptible ``augpipe train``: SIGKILL / SIGTERM / Ctrl-C / a kill during a checkpoint write,
then ``--resume`` gives the uninterrupted run's bits and metrics; torchrun (gloo); refusals.

One uninterrupted reference run (module fixture) is shared. small_cnn at 16 px, 42 training
images, batch 8: 5 steps an epoch, 3 epochs, a checkpoint every 3 steps. Single-threaded torch
(tests/train_driver.py) so the CPU kernels give the same bits in every process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from augpipe.cli.main import main
from augpipe.errors import CheckpointError
from augpipe.train import resume
from augpipe.train.loop import EpochSums

DRIVER = str(Path(__file__).with_name("train_driver.py"))
# wall-clock measurements: the only fields of metrics.jsonl that differ between two runs
TIMING = {"images_per_s", "data_wait_fraction", "peak_memory_mb", "train_seconds", "val_seconds",
          "seconds"}  # fmt: skip
STEPS = 15  # 3 epochs x 5 steps


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from augpipe import pack
    from augpipe.synth import make_image_folder

    root = tmp_path_factory.mktemp("resume")
    make_image_folder(root / "img", n_classes=3, per_class=16, min_side=20, max_side=28, seed=5)
    pack(root / "img", root / "data", format="raw", progress=False)
    return root / "data"


def _args(data, *extra) -> list[str]:
    return ["train", str(data), "--model", "small_cnn", "--res", "16", "--epochs", "3",
            "--batch-size", "8", "--no-progress", "--checkpoint-every", "3", *extra]  # fmt: skip


def _drive(args, env=None, new_session=False, launcher=(), timeout=150):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KILL_")}
    full_env = dict(clean, OMP_NUM_THREADS="1", **{k: str(v) for k, v in (env or {}).items()})
    cmd = [sys.executable, *launcher, DRIVER, *map(str, args)]
    with subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=new_session) as proc:  # fmt: skip
        try:
            proc.stdout_text, proc.stderr_text = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    proc.stderr = proc.stderr_text
    return proc


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The uninterrupted run: its run directory."""
    run = tmp_path_factory.mktemp("reference") / "run"
    proc = _drive(_args(data, "--workers", "0", "--out", run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


def _resume_here(args) -> int:
    """``augpipe train ... --resume`` in this process, single-threaded like the driver."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main([str(a) for a in args])
    finally:
        torch.set_num_threads(threads)


def _metrics(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def assert_same_run(ref: Path, run: Path) -> None:
    a = torch.load(ref / "model.pt", weights_only=True)
    b = torch.load(run / "model.pt", weights_only=True)
    assert list(a) == list(b)
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, f"not bit-identical: {differing[:5]}"
    assert _metrics(run) == _metrics(ref)  # line for line: no duplicate or missing epoch
    assert [m["epoch"] for m in _metrics(run)] == [1, 2, 3]
    assert json.loads((run / "summary.json").read_text())["epochs"] == 3


def test_reference_keeps_the_newest_checkpoints_and_they_load_without_pickle(reference):
    # every 3 steps and at each epoch's end (steps 5, 10, 15); --keep 2 (default)
    names = [p.name for p in resume.list_checkpoints(reference)]
    assert names == ["ckpt-000000012-00002.pt", "ckpt-000000015-00003.pt"]
    ckpt = resume.read(reference / "checkpoints" / names[-1])  # weights_only=True
    assert (ckpt["step"], ckpt["epoch"], ckpt["epoch_step"]) == (15, 3, 0)
    assert [r["epoch"] for r in ckpt["records"]] == [1, 2, 3]
    assert ckpt["loader"]["train"]["dataset_len"] == 42 and ckpt["world_size"] == 1
    final = torch.load(reference / "model.pt", weights_only=True)
    assert all(torch.equal(final[k], v) for k, v in ckpt["model"].items())


def test_sigkill_at_a_random_step_then_resume_is_bit_identical(data, reference, tmp_path):
    kill_at = random.Random(15).randint(4, STEPS - 1)  # after the first checkpoint (step 3)
    run = tmp_path / "run"
    proc = _drive(_args(data, "--workers", "0", "--out", run),
                  {"KILL_AT_STEP": kill_at, "KILL_SIGNAL": "KILL"})  # fmt: skip
    assert proc.returncode == -signal.SIGKILL
    assert resume.list_checkpoints(run) and not (run / "model.pt").exists()
    # workers may change on resume
    assert _resume_here(_args(data, "--workers", "1", "--resume", run)) == 0
    assert_same_run(reference, run)


def test_sigterm_mid_epoch_checkpoints_at_the_signal_and_stops_the_workers(
    data, reference, tmp_path
):
    """SIGTERM to the whole process group (as torchrun and Slurm send it), workers included."""
    run = tmp_path / "run"
    proc = _drive(_args(data, "--workers", "1", "--out", run),
                  {"KILL_AT_STEP": 8, "KILL_SIGNAL": "TERM", "KILL_TARGET": "group"},
                  new_session=True)  # fmt: skip
    assert proc.returncode == 143, proc.stderr[-3000:]
    with pytest.raises(ProcessLookupError):  # no worker outlived the trainer
        os.killpg(proc.pid, 0)  # start_new_session: the trainer led its own process group
    at_signal = run / "checkpoints" / "ckpt-000000008-00001.pt"  # step 8: not a multiple of 3
    line = proc.stderr.strip().splitlines()[-1]
    assert "SIGTERM" in line and str(at_signal) in line and "--resume" in line
    assert resume.read(at_signal)["epoch_step"] == 3  # 3 of epoch 2's 5 steps
    assert _resume_here(_args(data, "--workers", "0", "--resume", run)) == 0
    assert_same_run(reference, run)


def test_kill_during_a_checkpoint_write_leaves_the_previous_one(data, reference, tmp_path):
    run = tmp_path / "run"
    # the 2nd checkpoint (end of epoch 1, step 5) is killed with half of its bytes written
    proc = _drive(_args(data, "--workers", "0", "--out", run), {"KILL_IN_SAVE": 2})
    assert proc.returncode == -signal.SIGKILL
    ckpts = resume.list_checkpoints(run)
    assert [p.name for p in ckpts] == ["ckpt-000000003-00000.pt"]
    assert resume.read(ckpts[0])["step"] == 3  # loads (weights_only)
    (partial,) = (run / "checkpoints").glob(".tmp-*")
    with pytest.raises(CheckpointError, match="unreadable"):
        resume.read(partial)  # damaged data is reported, never used
    assert _resume_here(_args(data, "--workers", "0", "--resume", run)) == 0
    assert not list((run / "checkpoints").glob(".tmp-*"))
    assert_same_run(reference, run)


def test_ctrl_c_in_process_raises_training_interrupted_and_resumes(
    data, reference, tmp_path, monkeypatch
):
    from augpipe.cli.main import build_parser
    from augpipe.cli.train import config_from_args
    from augpipe.train import train
    from augpipe.train.preempt import TrainingInterrupted

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = tmp_path / "run"
        original, count = torch.optim.SGD.step, [0]

        def step(self, *a, **k):
            out = original(self, *a, **k)
            count[0] += 1
            if count[0] == 11:  # first step of epoch 3
                os.kill(os.getpid(), signal.SIGINT)
            return out

        monkeypatch.setattr(torch.optim.SGD, "step", step)
        cfg = config_from_args(build_parser().parse_args(_args(data, "--workers", "0",
                                                              "--out", str(run))))  # fmt: skip
        before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under nohup
        with pytest.raises(TrainingInterrupted) as info:
            train(cfg)
        assert info.value.exit_code == 130 and info.value.step == 11
        assert signal.getsignal(signal.SIGINT) is before  # restored
        monkeypatch.setattr(torch.optim.SGD, "step", original)
        cfg.resume = str(run)
        assert train(cfg)["epochs"] == 3
    finally:
        torch.set_num_threads(threads)
    assert_same_run(reference, run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(400)
def test_torchrun_gloo_run_interrupted_and_resumed_matches_its_twin(data, tmp_path):
    def torchrun():
        return ("-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                f"--master_port={_free_port()}")  # fmt: skip

    # 21 images a rank, batch 4: 5 steps an epoch; 2 epochs
    args = [*_args(data, "--batch-size", "4"), "--epochs", "2"]
    twin, run = tmp_path / "twin", tmp_path / "run"
    proc = _drive([*args, "--workers", "0", "--out", twin], launcher=torchrun())
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 sends SIGTERM to torchrun, which sends it to every rank's process group (loader
    # workers included)
    kill = {"KILL_AT_STEP": 7, "KILL_SIGNAL": "TERM", "KILL_TARGET": "parent"}
    proc = _drive([*args, "--workers", "1", "--out", run], launcher=torchrun(), env=kill)
    assert proc.returncode != 0
    assert proc.stderr.count("augpipe train: stopped by SIGTERM") == 1  # rank 0 says it
    state = resume.read(resume.latest(run))  # written at the signal: mid-epoch 2
    assert (state["step"], state["epoch"], state["epoch_step"]) == (7, 1, 2)
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    assert [r["train_position"].tolist() for r in state["ranks"]] == [
        [state["epoch"], state["epoch_step"]]] * 2  # fmt: skip
    proc = _drive([*args, "--workers", "0", "--resume", run], launcher=torchrun())
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(twin / "model.pt", weights_only=True)
    b = torch.load(run / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _metrics(run) == _metrics(twin)


# ------------------------------------------------------------------- refusals and --resume auto


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--lr", "0.5"], "--lr"),
        (["--model", "resnet18"], "--model"),
        (["--seed", "1"], "--seed"),
    ],  # fmt: skip
)
def test_resume_with_other_options_is_refused_naming_the_option(
    data, reference, tmp_path, capsys, extra, named
):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = (run / "metrics.jsonl").read_text()
    assert main(_args(data, "--workers", "0", "--resume", str(run), *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and "\n" not in err and "Traceback" not in err
    assert (run / "metrics.jsonl").read_text() == before  # nothing touched


def test_resume_against_another_dataset_is_refused(data, reference, tmp_path, capsys):
    from augpipe import pack
    from augpipe.synth import make_image_folder

    make_image_folder(tmp_path / "img", n_classes=3, per_class=16, min_side=20, max_side=28,
                      seed=6)  # fmt: skip
    pack(tmp_path / "img", tmp_path / "other", format="raw", progress=False)
    argv = _args(tmp_path / "other", "--workers", "0", "--resume", str(reference))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "another train dataset" in err and "manifest" in err and "\n" not in err


def test_new_run_into_a_directory_with_checkpoints_is_refused(data, reference, capsys):
    assert main(_args(data, "--workers", "0", "--out", str(reference))) == 2
    assert "--resume" in capsys.readouterr().err


def test_resume_auto_starts_then_continues(data, tmp_path, capsys):
    from augpipe.train.trainer import train_pipeline

    run, spec = tmp_path / "run", tmp_path / "pipeline.json"
    train_pipeline(16, 0.35, True).save(spec)
    argv = ["train", str(data), "--model", "small_cnn", "--res", "16", "--epochs", "2",
            "--batch-size", "8", "--steps-per-epoch", "2", "--workers", "0", "--no-progress",
            "--out", str(run), "--resume", "auto", "--pipeline", str(spec)]  # fmt: skip
    assert main(["train", str(data), "--resume", str(run), "--no-progress"]) == 2
    assert "found none" in capsys.readouterr().err
    assert main(argv) == 0  # nothing to continue: starts
    first = (run / "metrics.jsonl").read_text()
    assert main(argv) == 0  # a finished run: nothing left to train, same outputs
    assert (run / "metrics.jsonl").read_text() == first
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2
    # a damaged newest checkpoint: reported, set aside, the run continues from the one before
    older, newest = resume.list_checkpoints(run)
    newest.write_bytes(newest.read_bytes()[:1000])
    assert main(argv) == 0
    assert "unreadable" in capsys.readouterr().err
    assert newest.with_name(newest.name + ".unreadable").exists()
    assert _metrics(run) == [{k: v for k, v in json.loads(line).items() if k not in TIMING}
                             for line in first.splitlines()]  # fmt: skip
    assert resume.latest(run).name == newest.name  # epoch 2 trained again, saved again
    # the --pipeline file edited since: refused, although its path is the same
    edited = json.loads(spec.read_text())
    edited["ops"][1]["p"] = 0.25
    spec.write_text(json.dumps(edited))
    assert main(argv) == 2
    assert "another training pipeline" in capsys.readouterr().err


# ------------------------------------------------------------------------------- pieces


def test_save_is_atomic_keeps_k_and_drops_stale_temporary_files(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    stale = tmp_path / "checkpoints" / ".tmp-ckpt-000000001-00000.pt.123"
    stale.write_bytes(b"half a checkpoint")
    for step in (2, 4, 6):
        state = {"format": resume.FORMAT, "version": resume.VERSION, "step": step,
                 "epoch": step // 4, "w": torch.ones(2)}  # fmt: skip
        resume.save(tmp_path, state, keep=2)
    names = [p.name for p in resume.list_checkpoints(tmp_path)]
    assert names == ["ckpt-000000004-00001.pt", "ckpt-000000006-00001.pt"]
    assert not stale.exists()
    assert resume.read(resume.latest(tmp_path))["step"] == 6


def test_random_states_round_trip():
    import numpy as np

    device = torch.device("cpu")
    state = resume.rng_state(device)
    first = (random.random(), np.random.rand(), torch.rand(1).item(), random.gauss(0, 1))
    resume.set_rng_state(state, device)
    assert (random.random(), np.random.rand(), torch.rand(1).item(), random.gauss(0, 1)) == first


def test_epoch_sums_round_trip_exactly():
    device = torch.device("cpu")
    s = EpochSums.zeros(device)
    s.loss_sum += torch.tensor(1 / 3, dtype=torch.float64) * 7
    s.correct += 5
    s.images, s.steps, s.wait_s, s.seconds = 7, 1, 0.25, 1.5
    t = EpochSums.from_state(s.to_state(), device)
    assert t.loss_sum.item() == s.loss_sum.item() and int(t.correct) == 5
    assert (t.images, t.steps, t.wait_s, t.seconds) == (7, 1, 0.25, 1.5)


def test_stop_signals_record_the_signal_and_a_second_ctrl_c_stops_at_once():
    from augpipe.train.preempt import StopSignals

    cpu = torch.device("cpu")
    with StopSignals() as stop:
        assert stop.requested(cpu) == 0
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested(cpu) == signal.SIGTERM
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested(cpu) == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_compatibility_check_names_the_process_count_and_allows_what_may_change():
    from augpipe.train.config import TrainConfig

    config = TrainConfig("d", model="small_cnn", out="r").resolved().to_json()
    ckpt = {"config": dict(config), "world_size": 2, "datasets": {"train": "ab", "val": "ab"}}
    with pytest.raises(CheckpointError, match="nproc_per_node=2"):
        resume.check_compatible(ckpt, config, 1, {"train": "ab", "val": "ab"}, "c.pt")
    ckpt["world_size"] = 1
    moved = dict(config, data="elsewhere", workers=7, device="cuda", keep=5)
    resume.check_compatible(ckpt, moved, 1, {"train": "ab", "val": "ab"}, "c.pt")
    with pytest.raises(CheckpointError, match="--epochs 16"):
        resume.check_compatible(ckpt, dict(config, epochs=17), 1, ckpt["datasets"], "c.pt")


def test_resume_and_out_must_name_the_same_directory(tmp_path):
    from augpipe.errors import ConfigError
    from augpipe.train.config import TrainConfig

    c = TrainConfig("d", resume=str(tmp_path / "a")).resolved()
    assert c.out == str(tmp_path / "a")
    with pytest.raises(ConfigError, match="--out"):
        TrainConfig("d", resume=str(tmp_path / "a"), out=str(tmp_path / "b")).resolved()
    with pytest.raises(ConfigError, match="--out RUN_DIR"):
        TrainConfig("d", resume="auto").resolved()


def test_sigterm_with_progressive_resolution_resumes_at_the_right_size(data, tmp_path, monkeypatch):
    """In process: a training resolution that changes per epoch, with recipe ops (random
    erasing, Mixup/CutMix soft targets) that every rebuilt pipeline keeps."""
    from augpipe.train import TrainConfig, train, trainer
    from augpipe.train.preempt import TrainingInterrupted

    def cfg(out, **kw):
        return TrainConfig(str(data), model="small_cnn", res=16, epochs=3, batch_size=8,
                           workers=0, progressive_res=(8, 16), reprob=0.25, mixup=0.2,
                           cutmix=1.0, out=str(out), progress=False, **kw)  # fmt: skip

    built, make_loader = [], trainer.make_loader

    def recording(dataset, pipeline, batch_size, train, *args):
        if train:
            built.append([type(op).__name__ for op in pipeline.ops])
        return make_loader(dataset, pipeline, batch_size, train, *args)

    monkeypatch.setattr(trainer, "make_loader", recording)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg(tmp_path / "twin"))
        original, count = torch.optim.SGD.step, [0]

        def step(self, *a, **k):
            out = original(self, *a, **k)
            count[0] += 1
            if count[0] == 7:  # in epoch 2, at res 16 (epoch 1 ran at 8)
                os.kill(os.getpid(), signal.SIGTERM)
            return out

        monkeypatch.setattr(torch.optim.SGD, "step", step)
        with pytest.raises(TrainingInterrupted) as info:
            train(cfg(tmp_path / "run"))
        assert info.value.exit_code == 143
        monkeypatch.setattr(torch.optim.SGD, "step", original)
        train(cfg(tmp_path / "run", resume="auto"))
    finally:
        torch.set_num_threads(threads)
    assert [m["res"] for m in _metrics(tmp_path / "run")] == [8, 16, 16]
    assert len(built) == 5  # twin: 8 then 16; interrupted: 8 then 16; resumed: 16
    assert all(ops[-2:] == ["RandomErasing", "Mixup"] for ops in built), built
    assert _metrics(tmp_path / "run") == _metrics(tmp_path / "twin")
    a = torch.load(tmp_path / "twin" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
