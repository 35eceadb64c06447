"""Trainer pieces that need no data: config, freeze, param groups, schedule, TTA, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from augpipe.errors import ConfigError
from augpipe.models import get_model, resnet18, small_cnn
from augpipe.train.checkpoint import load_init
from augpipe.train.config import (
    TrainConfig,
    parse_lr_mult,
    parse_progressive_res,
    res_for_epoch,
)
from augpipe.train.loop import StepContext
from augpipe.train.optim import (
    apply_freeze,
    build_optimizer,
    build_scheduler,
    frozen_stages,
    lr_factor,
    param_groups,
    set_train_mode,
)
from augpipe.train.tta import VIEWS, average_softmax, expand_views, multiscale_sides, predict

# ------------------------------------------------------------------------------------ config


def test_config_resolves_defaults():
    c = TrainConfig("d", batch_size=128, epochs=20).resolved(world_size=2)
    assert c.device == "cpu" and c.lr == pytest.approx(0.1 * 256 / 256)
    assert c.warmup_epochs == 2.0 and c.out


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "--epochs"),
        ({"amp": "fp8"}, "--amp"),
        ({"tta": "5crop"}, "--tta"),
        ({"freeze": "fc"}, "--freeze"),
        ({"lr_mult": {"layer9": 0.1}}, "--lr-mult"),
        ({"label_smoothing": 1.5}, "--label-smoothing"),
        ({"amp": "fp16", "device": "cpu"}, "bf16"),
        ({"device": "cuda"}, "--device"),
    ],
)
def test_bad_config_is_a_config_error_naming_the_flag(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig("d", **kwargs).resolved(cuda_available=False)


def test_flag_parsers():
    assert parse_lr_mult(["layer4=0.1", "fc=1"]) == {"layer4": 0.1, "fc": 1.0}
    assert parse_progressive_res("160:224") == (160, 224)
    with pytest.raises(ConfigError, match="STAGE=FACTOR"):
        parse_lr_mult(["layer4"])
    with pytest.raises(ConfigError, match="START:END"):
        parse_progressive_res("160-224")


def test_progressive_resolution_goes_from_start_to_end_in_multiples_of_8():
    c = TrainConfig("d", epochs=5, res=64, progressive_res=(32, 64))
    got = [res_for_epoch(c, e) for e in range(5)]
    assert got[0] == 32 and got[-1] == 64 and got == sorted(got)
    assert all(r % 8 == 0 for r in got)
    assert res_for_epoch(TrainConfig("d", res=48), 3) == 48


# ------------------------------------------------------------------- freeze and param groups


def test_freeze_layer2_freezes_stem_layer1_layer2_only():
    model = resnet18(num_classes=5)
    stages = frozen_stages(model, "layer2")
    assert stages == ("stem", "layer1", "layer2")
    apply_freeze(model, stages)
    for name, p in model.named_parameters():
        frozen = name.startswith(("conv1", "bn1", "layer1", "layer2"))
        assert p.requires_grad is not frozen, name
    set_train_mode(model, stages)
    assert not model.bn1.training and not model.layer2[1].bn2.training
    assert model.layer3[0].bn1.training and model.training


def test_freeze_of_a_stage_the_model_lacks_is_a_config_error():
    with pytest.raises(ConfigError, match="layer4"):
        frozen_stages(small_cnn(num_classes=3), "layer4")


def test_frozen_params_leave_the_optimizer():
    model = resnet18(num_classes=5)
    apply_freeze(model, frozen_stages(model, "layer4"))
    opt = build_optimizer(model, lr=0.1)
    assert {g["stage"] for g in opt.param_groups} == {"fc"}


def test_lr_mult_lands_in_param_groups_and_survives_the_schedule():
    model = resnet18(num_classes=5)
    opt = build_optimizer(model, lr=0.2, lr_mult={"layer3": 0.01, "layer4": 0.1})
    by_stage = {}
    for g in opt.param_groups:
        by_stage.setdefault(g["stage"], set()).add(round(g["lr"], 12))
    assert by_stage["layer3"] == {0.002} and by_stage["layer4"] == {0.02}
    assert by_stage["fc"] == {0.2} and by_stage["stem"] == {0.2}
    sched = build_scheduler(opt, total_steps=10, warmup_steps=2)
    for _ in range(5):
        opt.step()
        sched.step()
    ratios = {g["stage"]: g["lr"] / (0.2 * lr_factor(5, 10, 2)) for g in opt.param_groups}
    assert ratios["layer3"] == pytest.approx(0.01) and ratios["fc"] == pytest.approx(1.0)


def test_no_weight_decay_on_batch_norm_or_bias():
    groups = param_groups(small_cnn(num_classes=3), lr=0.1, weight_decay=1e-4)
    for g in groups:
        for name, p in zip(g["names"], g["params"]):
            assert g["weight_decay"] == (1e-4 if p.ndim > 1 else 0.0), name


def test_lr_schedule_warms_up_linearly_then_decays_by_cosine():
    f = [lr_factor(s, 100, 10) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[9:], f[10:]))
    assert f[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert lr_factor(100, 100, 10) == pytest.approx(0.0)


def test_optimizer_is_sgd_with_nesterov():
    opt = build_optimizer(small_cnn(num_classes=3), lr=0.1, momentum=0.9)
    assert isinstance(opt, torch.optim.SGD)
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in opt.param_groups)


# -------------------------------------------------------------------------------------- TTA


@pytest.mark.parametrize(("mode", "k_in", "k_out"), [
    ("none", 1, 1), ("flip", 1, 2), ("10crop", 10, 10), ("multiscale", 50, 50),
])  # fmt: skip
def test_tta_view_counts_and_shapes(mode, k_in, k_out):
    images = torch.randn(3, 3, 8, 8) if k_in == 1 else torch.randn(3, k_in, 3, 8, 8)
    flat, k = expand_views(images, mode)
    assert k == k_out == VIEWS[mode] and flat.shape == (3 * k_out, 3, 8, 8)
    probs = predict(small_cnn(num_classes=4, width=4).eval(), images, mode)
    assert probs.shape == (3, 4)
    assert torch.allclose(probs.sum(1), torch.ones(3), atol=1e-5)


def test_tta_flip_views_are_the_image_and_its_mirror_adjacent():
    images = torch.arange(2 * 3 * 2 * 4, dtype=torch.float32).view(2, 3, 2, 4)
    flat, k = expand_views(images, "flip")
    assert torch.equal(flat[0], images[0]) and torch.equal(flat[1], images[0].flip(-1))
    assert torch.equal(flat[2], images[1])


def test_tta_averages_softmax_not_logits():
    logits = torch.tensor([[10.0, 0.0], [0.0, 1.0]])  # two views of one image
    avg = average_softmax(logits, 2)
    expected = (torch.softmax(logits[0], 0) + torch.softmax(logits[1], 0)) / 2
    assert torch.allclose(avg[0], expected)


def test_multiscale_sides_are_resnets_scaled_to_the_resolution():
    assert multiscale_sides(224) == (224, 256, 384, 480, 640)
    assert multiscale_sides(112) == (112, 128, 192, 240, 320)


# ------------------------------------------------------------------------ precision, init


def test_bf16_autocast_runs_on_the_cpu():
    model = small_cnn(num_classes=3, width=8)
    ctx = StepContext(torch.device("cpu"), amp_dtype=torch.bfloat16)
    with ctx.autocast():
        out = model(torch.randn(4, 3, 16, 16))
        loss = torch.nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 0]))
    assert out.dtype == torch.bfloat16
    loss.backward()
    assert model.fc.weight.grad.dtype == torch.float32


def test_init_reinitialises_the_head_when_classes_differ(tmp_path):
    src = resnet18(num_classes=10)
    path = tmp_path / "model.pt"
    torch.save(src.state_dict(), path)
    dst = resnet18(num_classes=4)
    fresh_fc = dst.fc.weight.clone()
    assert load_init(dst, path) == {"head_reinitialised": True}
    assert torch.equal(dst.layer4[1].conv2.weight, src.layer4[1].conv2.weight)
    assert torch.equal(dst.fc.weight, fresh_fc)
    same = resnet18(num_classes=10)
    assert load_init(same, path) == {"head_reinitialised": False}
    assert torch.equal(same.fc.weight, src.fc.weight)


def test_init_accepts_wrapped_and_ddp_prefixed_checkpoints(tmp_path):
    src = small_cnn(num_classes=3, width=8)
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = small_cnn(num_classes=3, width=8)
    load_init(dst, path)
    assert torch.equal(dst.stem[0].weight, src.stem[0].weight)


@pytest.mark.parametrize("content", ["missing", "wrong_model", "garbage"])
def test_bad_init_checkpoint_is_a_config_error(tmp_path, content):
    path = tmp_path / "ckpt.pt"
    if content == "wrong_model":
        torch.save(small_cnn(num_classes=3).state_dict(), path)
    elif content == "garbage":
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="--init"):
        load_init(get_model("resnet18", num_classes=3), path)


def test_tensorboard_without_the_package_is_a_config_error_naming_the_fix(tmp_path, monkeypatch):
    import sys

    from augpipe.train.metrics import RunLog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"augpipe\[tensorboard\]"):
        RunLog(tmp_path, tensorboard=True)


def test_tensorboard_gets_the_epoch_scalars_and_weight_histograms(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from augpipe.train.metrics import RunLog

    log = RunLog(tmp_path, tensorboard=True)
    model = small_cnn(num_classes=2, width=4)
    log.log_epoch({"epoch": 1, "loss": 0.5, "val_top1": 0.75}, model)
    log.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"histograms": 0})
    events.Reload()
    assert {"loss", "val_top1"} <= set(events.Tags()["scalars"])
    assert events.Scalars("loss")[0].value == pytest.approx(0.5)
    assert len(events.Tags()["histograms"]) >= len(list(model.parameters()))


def test_run_log_writes_nothing_on_other_ranks(tmp_path):
    from augpipe.train.metrics import RunLog

    log = RunLog(tmp_path / "run", enabled=False)
    log.write_config({"a": 1})
    log.log_epoch({"epoch": 1})
    assert log.save_model(small_cnn(num_classes=2, width=4)) is None
    assert not (tmp_path / "run").exists()


def test_held_out_split_is_stratified_and_deterministic():
    import numpy as np

    from augpipe.train.split import split_indices

    labels = np.repeat(np.arange(3), [10, 20, 1])
    train_idx, val_idx = split_indices(labels, 0.1, seed=0)
    assert np.bincount(labels[val_idx], minlength=3).tolist() == [1, 2, 0]
    assert len(np.intersect1d(train_idx, val_idx)) == 0 and len(train_idx) + len(val_idx) == 31
    assert np.array_equal(val_idx, split_indices(labels, 0.1, seed=0)[1])
