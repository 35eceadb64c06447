"""SGD with Nesterov momentum, per-stage parameter groups, freezing, warm-up + cosine schedule.

Transfer learning (the lecture's recipe): ``freeze`` stops every stage up to and including the
named one (``freeze="layer4"`` trains only the head: a linear classifier on fixed features);
``lr_mult`` scales a stage's learning rate (about 1/10 on the top layer and 1/100 on the
intermediate ones when fine-tuning).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from augpipe.errors import bad_param
from augpipe.models import stage_of


def model_stages(model: nn.Module) -> tuple[str, ...]:
    return tuple(getattr(model, "stages", ()))


def frozen_stages(model: nn.Module, freeze: str | None) -> tuple[str, ...]:
    """The stages ``freeze`` names: every stage up to and including it (never the head)."""
    if freeze is None:
        return ()
    stages = model_stages(model)
    trainable = stages[:-1]  # the head always trains
    if freeze not in trainable:
        raise bad_param("--freeze", f"one of this model's stages {trainable}", freeze)
    return trainable[: trainable.index(freeze) + 1]


def apply_freeze(model: nn.Module, stages: tuple[str, ...]) -> None:
    """``requires_grad=False`` on every parameter of the frozen stages."""
    for name, p in model.named_parameters():
        if stage_of(name) in stages:
            p.requires_grad_(False)


def set_train_mode(model: nn.Module, frozen: tuple[str, ...]) -> None:
    """``model.train()``, but batch norm of frozen stages stays in eval mode.

    A frozen BN in train mode would still update its running statistics and normalise with
    batch statistics, so the "frozen" features would drift.
    """
    model.train()
    if not frozen:
        return
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and _module_stage(name) in frozen:
            m.eval()


def _module_stage(module_name: str) -> str | None:
    try:
        return stage_of(module_name + ".")
    except ValueError:
        return None


def param_groups(
    model: nn.Module, lr: float, weight_decay: float, lr_mult: dict[str, float] | None = None
) -> list[dict]:
    """One group per (stage, decays?) with ``lr = lr × lr_mult[stage]``.

    Weight decay applies to conv/linear weights only, not to batch-norm parameters or biases
    (decaying BN's gamma/beta only fights the normalisation).
    """
    lr_mult = dict(lr_mult or {})
    stages = model_stages(model)
    for stage in lr_mult:
        if stage not in stages:
            raise bad_param("--lr-mult", f"STAGE=F with STAGE in {stages}", stage)
    groups: dict[tuple[str, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        stage = stage_of(name)
        decays = p.ndim > 1
        key = (stage, decays)
        if key not in groups:
            mult = lr_mult.get(stage, 1.0)
            groups[key] = {
                "params": [],
                "names": [],
                "stage": stage,
                "lr_mult": mult,
                "lr": lr * mult,
                "weight_decay": weight_decay if decays else 0.0,
            }
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)
    order = {s: i for i, s in enumerate(stages)}
    return sorted(groups.values(), key=lambda g: (order.get(g["stage"], 99), -g["weight_decay"]))


def build_optimizer(
    model: nn.Module,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 5e-5,
    lr_mult: dict[str, float] | None = None,
) -> torch.optim.SGD:
    groups = param_groups(model, lr, weight_decay, lr_mult)
    if not groups:
        raise bad_param("--freeze", "a setting that leaves something to train", "everything frozen")
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up from ~0 to 1 over ``warmup_steps``, then cosine decay to 0 at the end."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per batch; keeps each group's ``lr_mult`` (it scales the group's base lr)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, warmup_steps)
    )
