"""``augpipe train`` end to end on small learnable synthetic data (CPU, a few seconds a run)."""

from __future__ import annotations

import json

import pytest
import torch

from augpipe.cli.main import main
from augpipe.models import small_cnn
from augpipe.train import TrainConfig, train
from augpipe.train.loop import StepContext, evaluate
from augpipe.train.tta import val_pipeline

SUMMARY_KEYS = {"val_top1", "val_top5", "train_images_per_s", "data_wait_fraction", "epochs",
                "seconds"}  # fmt: skip
EPOCH_KEYS = {"epoch", "res", "lr", "loss", "train_top1", "val_top1", "val_top5", "images_per_s",
              "data_wait_fraction", "peak_memory_mb", "memory_kind"}  # fmt: skip


@pytest.fixture(scope="module")
def learnable(tmp_path_factory):
    """4 learnable classes: 240 training and 60 validation images of 32..48 px, packed."""
    from augpipe import pack
    from augpipe.synth import make_image_folder

    root = tmp_path_factory.mktemp("learnable")
    make_image_folder(root / "train", n_classes=4, per_class=60, min_side=32, max_side=48, seed=1)
    make_image_folder(root / "val", n_classes=4, per_class=15, min_side=32, max_side=48, seed=2)
    pack(root / "train", root / "train.packed", progress=False)
    pack(root / "val", root / "val.packed", progress=False)
    return root


@pytest.fixture(scope="module")
def trained(learnable):
    """One CLI run of small_cnn, 4 epochs at 32 px: (run dir, --json summary)."""
    run, out = learnable / "run", learnable / "summary.json"
    argv = ["train", str(learnable / "train.packed"), "--val", str(learnable / "val.packed"),
            "--model", "small_cnn", "--res", "32", "--epochs", "4", "--batch-size", "32",
            "--lr", "0.1", "--workers", "1", "--out", str(run), "--json", str(out),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    return run, json.loads(out.read_text())


def _cfg(learnable, tmp_path, **kw) -> TrainConfig:
    base = dict(data=str(learnable / "train.packed"), val=str(learnable / "val.packed"),
                model="small_cnn", res=32, epochs=1, batch_size=32, lr=0.05, workers=0,
                out=str(tmp_path / "run"), progress=False)  # fmt: skip
    return TrainConfig(**(base | kw))


def test_small_cnn_reaches_90_percent_on_learnable_synthetic_data(trained):
    _, summary = trained
    assert summary["val_top1"] >= 0.9
    assert summary["val_top5"] >= summary["val_top1"]


def test_run_directory_and_summary(trained):
    run, summary = trained
    assert SUMMARY_KEYS <= set(summary) and summary["epochs"] == 4
    assert 0.0 <= summary["data_wait_fraction"] <= 1.0 and summary["train_images_per_s"] > 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert all(EPOCH_KEYS <= set(r) for r in records)
    assert records[-1]["loss"] < records[0]["loss"]
    config = json.loads((run / "config.json").read_text())
    assert config["device"] == "cpu" and config["lr"] == 0.1 and config["warmup_epochs"] == 0.4
    assert config["min_scale"] == 0.35 and config["num_classes"] == 4


def test_model_pt_is_a_plain_state_dict_that_round_trips(trained, learnable):
    from augpipe import Loader

    run, summary = trained
    state = torch.load(run / "model.pt", weights_only=True)
    model = small_cnn(num_classes=4)
    model.load_state_dict(state)
    loader = Loader(str(learnable / "val.packed"), 16, val_pipeline("none", 32), shuffle=False,
                    workers=0, normalize="dataset")  # fmt: skip
    result = evaluate(model, loader, "none", StepContext(torch.device("cpu")))
    assert result["top1"] / result["n"] == summary["val_top1"]


@pytest.mark.parametrize(("mode", "k"), [("flip", 1), ("10crop", 10), ("multiscale", 50)])
def test_tta_pipelines_give_k_crops_and_evaluate(trained, learnable, mode, k):
    from augpipe import Loader

    run, _ = trained

    def loader():
        return Loader(str(learnable / "val.packed"), 4, val_pipeline(mode, 32), shuffle=False,
                      workers=0, normalize="dataset")  # fmt: skip

    expected = (32, 32, 3) if k == 1 else (k, 32, 32, 3)
    assert loader().sample_shape == expected
    images, labels = next(iter(loader()))
    assert images.shape == ((4, 3, 32, 32) if k == 1 else (4, k, 3, 32, 32))
    model = small_cnn(num_classes=4)
    model.load_state_dict(torch.load(run / "model.pt", weights_only=True))
    result = evaluate(model, loader(), mode, StepContext(torch.device("cpu")))
    assert result["n"] == 60 and result["top1"] >= 0.8 * 60


def test_freeze_keeps_frozen_params_bit_identical_and_trains_the_head(
    trained, tiny_packed, tmp_path
):
    """--init from the 4-class run onto 3 classes (new head), freeze everything but the head."""
    run, _ = trained
    before = torch.load(run / "model.pt", weights_only=True)
    cfg = TrainConfig(str(tiny_packed), model="small_cnn", res=32, epochs=2, batch_size=8,
                      lr=0.1, workers=0, init=str(run / "model.pt"), freeze="layer3",
                      out=str(tmp_path / "ft"), progress=False, val_fraction=0.25)  # fmt: skip
    summary = train(cfg)
    after = torch.load(tmp_path / "ft" / "model.pt", weights_only=True)
    config = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert config["head_reinitialised"] is True
    assert config["frozen_stages"] == ["stem", "layer1", "layer2", "layer3"]
    for key, value in before.items():
        if not key.startswith("fc."):  # weights and BN running statistics alike
            assert torch.equal(after[key], value), key
    assert after["fc.weight"].shape == (3, 256)
    assert summary["val_source"].startswith("held-out")


def test_fine_tune_with_lr_mult_changes_only_unfrozen_stages(trained, learnable, tmp_path):
    run, _ = trained
    before = torch.load(run / "model.pt", weights_only=True)
    cfg = _cfg(learnable, tmp_path, init=str(run / "model.pt"), freeze="layer1",
               lr_mult={"layer2": 0.0, "layer3": 0.1})  # fmt: skip
    train(cfg)
    after = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert torch.equal(after["layer1.0.weight"], before["layer1.0.weight"])
    assert torch.equal(after["layer2.0.weight"], before["layer2.0.weight"])  # lr x 0
    assert not torch.equal(after["layer3.0.weight"], before["layer3.0.weight"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lr_mult"] == {
        "layer2": 0.0, "layer3": 0.1}  # fmt: skip


def test_bf16_autocast_training_runs_on_the_cpu(learnable, tmp_path):
    summary = train(_cfg(learnable, tmp_path, amp="bf16", channels_last=True, steps_per_epoch=3))
    assert summary["amp"] == "bf16" and summary["loss"] == summary["loss"]  # finite, not NaN


def test_progressive_resolution_changes_the_training_size(learnable, tmp_path):
    train(_cfg(learnable, tmp_path, epochs=2, progressive_res=(24, 32), steps_per_epoch=2))
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["res"] for line in lines] == [24, 32]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lr-mult", "layer9=0.1"], "--lr-mult"),
        (["--freeze", "layer4"], "--freeze"),  # small_cnn has no layer4
        (["--amp", "fp16", "--device", "cpu"], "--amp"),
        (["--init", "/nonexistent/model.pt"], "--init"),
    ],
)
def test_user_errors_exit_2_with_one_line(learnable, tmp_path, capsys, extra, message):
    argv = ["train", str(learnable / "train.packed"), "--model", "small_cnn", "--res", "32",
            "--workers", "0", "--out", str(tmp_path / "r"), "--no-progress", *extra]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_missing_dataset_exits_2(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope"), "--no-progress"]) == 2
    assert "nope" in capsys.readouterr().err
