"""One epoch of ``augpipe train``: train steps (periodic checkpoints, stop requests), validation,
the metrics record; and the run's checkpoints and final summary.

``Run`` holds what every epoch uses and the run's position (optimiser steps done, epoch records);
``Run.checkpoint`` writes everything needed to continue exactly (see docs/train.md,
"Preemptible training"). Under torchrun every rank calls it at the same step: per-rank state
(random generators, Loader position, the epoch's running sums) is gathered with tensor
collectives and rank 0 writes one file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from augpipe.train import distributed, resume
from augpipe.train.config import TrainConfig
from augpipe.train.loop import EpochSums, StepContext, evaluate, train_epoch
from augpipe.train.metrics import RunLog, peak_memory_mb
from augpipe.train.optim import set_train_mode
from augpipe.train.preempt import StopSignals, TrainingInterrupted


@dataclass
class Run:
    """What every epoch uses, and where the run is."""

    cfg: TrainConfig
    info: distributed.DistInfo
    model: nn.Module  # the plain model (its state_dict is what is saved)
    net: nn.Module  # the model as trained: maybe wrapped by DDP and/or torch.compile
    frozen: tuple[str, ...]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    criterion: nn.Module
    ctx: StepContext
    steps: int  # per epoch
    train_loader: object
    val_loader: object
    log: RunLog
    stop: StopSignals
    datasets: dict[str, str]  # manifest hashes
    config: dict  # what a resume must match (resume.check_compatible)
    # more training state (an EMA of the weights, ...): objects with state_dict() and
    # load_state_dict(), saved in every checkpoint under their name (trainer._restore loads them)
    stateful: dict[str, object] = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)
    step: int = 0  # optimiser steps done in the whole run
    seconds_before: float = 0.0  # run time before this process (a resumed run)
    t_start: float = field(default_factory=time.perf_counter)
    _saved: tuple | None = None

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.t_start

    def checkpoint(self, epoch: int, sums: EpochSums | None, val_state: dict | None = None) -> Path:
        """Save the run at the current step, ``sums.steps`` steps into ``epoch`` (None: at its
        start). A collective under torchrun; rank 0 writes. Returns the checkpoint's path."""
        epoch_step = sums.steps if sums is not None else 0
        path = resume.checkpoint_dir(self.cfg.out) / resume.name_for(self.step, epoch)
        if self._saved == (self.step, epoch, epoch_step):
            return path  # nothing moved since the last one (a signal during its write)
        device = self.ctx.device
        train_state = self.train_loader.state_dict()
        local = resume.rng_state(device)
        local["train_position"] = torch.tensor([train_state["epoch"], train_state["batch"]])
        if sums is not None:
            local.update(sums.to_state())
        ranks = distributed.gather_tensors(local, device)
        if self.info.is_main:
            state = {
                "format": resume.FORMAT,
                "version": resume.VERSION,
                "step": self.step,
                "epoch": epoch,
                "epoch_step": epoch_step,
                "config": dict(self.config),
                "world_size": self.info.world_size,
                "datasets": dict(self.datasets),
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.ctx.scaler.state_dict() if self.ctx.scaler is not None else None,
                "stateful": {name: obj.state_dict() for name, obj in self.stateful.items()},
                "loader": {"train": train_state, "val": val_state or self.val_loader.state_dict()},
                "ranks": ranks,
                "records": [dict(r) for r in self.records],
                "seconds": self.seconds(),
                "torch": str(torch.__version__),
            }
            path = resume.save(self.cfg.out, state, self.cfg.keep)
        distributed.barrier()  # no rank moves on (or exits) before the file is in place
        self._saved = (self.step, epoch, epoch_step)
        return path

    def interrupt(self, signum: int, epoch: int, sums: EpochSums, val_state=None):
        path = self.checkpoint(epoch, sums, val_state)
        raise TrainingInterrupted(signum, path, self.cfg.out, self.step)


def run_epoch(run: Run, epoch: int, res: int, sums: EpochSums | None = None) -> dict:
    """Train (the rest of) ``epoch``, validate, log; raises TrainingInterrupted on a signal."""
    cfg, info, ctx, steps, scheduler = run.cfg, run.info, run.ctx, run.steps, run.scheduler
    t0 = time.perf_counter()
    sums = EpochSums.zeros(ctx.device) if sums is None else sums
    prior_s = sums.seconds  # training time of this epoch before a resume
    train_loader = run.train_loader
    train_loader.set_epoch(epoch)
    set_train_mode(run.net, run.frozen)
    bar = tqdm(
        total=steps,
        initial=sums.steps,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        unit="step",
        leave=False,
        disable=not (cfg.progress and info.is_main),
        dynamic_ncols=True,
    )
    done = [sums.steps]
    signum = [0]

    def on_step(step: int, loss: float, wait: float) -> None:
        bar.update(step - done[0])
        done[0] = step
        bar.set_postfix(loss=f"{loss:.3f}", wait=f"{wait:.0%}", res=res)

    def stop() -> bool:
        signum[0] = run.stop.requested(ctx.device)
        return signum[0] != 0

    def after_step(s: EpochSums) -> None:
        run.step += 1
        every = cfg.checkpoint_every
        if every and run.step % every == 0 and s.steps < steps:  # the epoch's end saves anyway
            run.checkpoint(epoch, s)

    with bar:
        t = train_epoch(run.net, train_loader, run.optimizer, scheduler, run.criterion, ctx,
                        steps, on_step, sums=sums, stop=stop, after_step=after_step)  # fmt: skip
    if t["interrupted"]:
        run.interrupt(signum[0], epoch, sums)
    t_val = time.perf_counter()
    val_state = run.val_loader.state_dict()  # a pass broken off restarts from here
    v = evaluate(run.net, run.val_loader, cfg.tta, ctx, stop=stop)
    if v["interrupted"]:
        run.interrupt(signum[0], epoch, sums, val_state)
    val_seconds = time.perf_counter() - t_val
    dev = ctx.device
    images, loss_sum, correct, wait_s = distributed.all_reduce(
        [t["images"], t["loss_sum"], t["correct"], t["wait_s"]], dev
    )
    (train_s,) = distributed.all_reduce([t["seconds"]], dev, op="max")
    step_s_total = distributed.all_reduce([t["seconds"]], dev)[0]
    n, top1, top5, vloss = distributed.all_reduce(
        [v["n"], v["top1"], v["top5"], v["loss_sum"]], dev
    )
    mem, mem_kind = peak_memory_mb(dev)
    (mem,) = distributed.all_reduce([mem], dev, op="max")
    record = {
        "epoch": epoch + 1,
        "res": res,
        "lr": cfg.lr * scheduler.lr_lambdas[0](max(0, scheduler.last_epoch - 1)),
        "loss": loss_sum / max(images, 1),
        "train_top1": correct / max(images, 1),
        "val_loss": vloss / max(n, 1),
        "val_top1": top1 / max(n, 1),
        "val_top5": top5 / max(n, 1),
        "images_per_s": images / max(train_s, 1e-9),
        "data_wait_fraction": wait_s / max(step_s_total, 1e-9),
        "peak_memory_mb": mem,
        "memory_kind": mem_kind,
        "train_images": int(images),
        "train_seconds": train_s,
        "val_seconds": val_seconds,
        "seconds": time.perf_counter() - t0 + prior_s,
    }
    if info.is_main and cfg.progress:
        tqdm.write(
            f"epoch {epoch + 1}/{cfg.epochs} res {res}: loss {record['loss']:.3f} "
            f"train {record['train_top1']:.1%} val top-1 {record['val_top1']:.1%} "
            f"top-5 {record['val_top5']:.1%} | {record['images_per_s']:.0f} img/s, "
            f"data wait {record['data_wait_fraction']:.0%}, peak mem {mem:.0f} MB ({mem_kind})"
        )
    run.records.append(record)
    run.log.log_epoch(record, run.model if cfg.tensorboard else None)
    run.checkpoint(epoch + 1, None)
    return record


def summary(cfg, info, records: list[dict], seconds: float, val_source: str) -> dict:
    # throughput: leave out the first epoch (worker start-up, cuDNN autotuning, compilation)
    # whenever there is a later one
    steady = records[1:] if len(records) > 1 else records
    images = sum(r["train_images"] for r in steady)
    train_s = sum(r["train_seconds"] for r in steady)
    waits = [r["data_wait_fraction"] * r["train_seconds"] for r in steady]
    last = records[-1]
    return {
        "val_top1": last["val_top1"],
        "val_top5": last["val_top5"],
        "train_images_per_s": images / max(train_s, 1e-9),
        "data_wait_fraction": sum(waits) / max(train_s, 1e-9),
        "epochs": len(records),
        "seconds": seconds,
        "val_loss": last["val_loss"],
        "train_top1": last["train_top1"],
        "loss": last["loss"],
        "peak_memory_mb": max(r["peak_memory_mb"] for r in records),
        "memory_kind": last["memory_kind"],
        "model": cfg.model,
        "res": cfg.res,
        "tta": cfg.tta,
        "amp": cfg.amp,
        "device": cfg.device,
        "world_size": info.world_size,
        "batch_size": cfg.batch_size,
        "val_source": val_source,
        "run_dir": str(cfg.out),
        "config": cfg.to_json(),
    }
