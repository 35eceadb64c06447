"""``train(config)``: the whole run — data, model, optimiser, epochs, metrics, files.

>>> from augpipe.train import TrainConfig, train
>>> summary = train(TrainConfig("data.packed", model="small_cnn", res=32, epochs=4))
>>> summary["val_top1"]
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from augpipe.errors import DatasetError
from augpipe.models import get_model
from augpipe.train import distributed
from augpipe.train.checkpoint import load_init
from augpipe.train.config import TrainConfig, res_for_epoch
from augpipe.train.loop import StepContext, evaluate, train_epoch
from augpipe.train.metrics import RunLog, peak_memory_mb, write_summary
from augpipe.train.optim import (
    apply_freeze,
    build_optimizer,
    build_scheduler,
    frozen_stages,
    set_train_mode,
)
from augpipe.train.split import SubsetDataset, random_subset, split_indices
from augpipe.train.tta import VIEWS, val_pipeline

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def train_pipeline(res: int, min_scale: float = 0.08, flip: bool = True):
    from augpipe.transforms import Compose, HorizontalFlip, RandomResizedCrop

    ops = [RandomResizedCrop(res, scale=(min_scale, 1.0))]
    return Compose(ops + [HorizontalFlip()] if flip else ops)


def open_datasets(cfg: TrainConfig):
    """(train, val, how the val set was made); ``--subset N`` keeps N train and N/10 val images."""
    train_ds, val_ds, source = _open_datasets(cfg)
    if cfg.subset is not None:
        train_ds = random_subset(train_ds, cfg.subset, cfg.seed)
        val_ds = random_subset(val_ds, max(1, cfg.subset // 10), cfg.seed)
        source += f", subset of {len(train_ds)} train / {len(val_ds)} val images"
    return train_ds, val_ds, source


def _open_datasets(cfg: TrainConfig):
    from augpipe.format.dataset import ShardDataset

    train_ds = ShardDataset(cfg.data)
    if cfg.val is not None:
        val_ds = ShardDataset(cfg.val)
        if list(val_ds.classes) != list(train_ds.classes):
            raise DatasetError(
                f"--val: expected the same classes as {cfg.data!r} ({len(train_ds.classes)}), "
                f"got {len(val_ds.classes)} different or reordered ones in {cfg.val!r}; "
                "pack both from folders with the same class sub-folders"
            )
        return train_ds, val_ds, "val"
    train_idx, val_idx = split_indices(train_ds.labels, cfg.val_fraction, cfg.seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise DatasetError(
            f"{cfg.data!r}: too few records ({len(train_ds)}) to hold out a validation split; "
            "pass --val VAL"
        )
    split = f"held-out {cfg.val_fraction:g} of the training data (seed {cfg.seed})"
    return SubsetDataset(train_ds, train_idx), SubsetDataset(train_ds, val_idx), split


def make_loader(dataset, pipeline, batch_size: int, train: bool, cfg: TrainConfig, device):
    from augpipe.loader.loader import Loader

    kwargs = {}
    if cfg.workers is not None:
        kwargs["workers"] = cfg.workers
    if cfg.prefetch is not None:
        kwargs["prefetch"] = cfg.prefetch
    world = distributed.world_size_from_env()
    # drop the last partial batch when training (a batch of 1 breaks batch norm), unless the
    # dataset is so small that nothing would be left
    drop_last = train and len(dataset) // world >= batch_size
    return Loader(
        dataset,
        batch_size,
        pipeline,
        shuffle=train,
        seed=cfg.seed,
        drop_last=drop_last,
        output="torch",
        device=str(device),
        dtype=torch.float32,
        normalize="dataset",
        channels_last=cfg.channels_last and train,
        **kwargs,
    )


def train(config: TrainConfig) -> dict:
    """Run training; returns the summary (also written to ``--json`` and the run directory)."""
    cfg = config.resolved(distributed.world_size_from_env(), torch.cuda.is_available())
    info = distributed.setup(cfg.device)
    try:
        return _run(cfg, info)
    finally:
        distributed.cleanup()


def _run(cfg: TrainConfig, info: distributed.DistInfo) -> dict:
    t_run = time.perf_counter()
    device = torch.device("cuda", info.local_rank) if cfg.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        # cuDNN times its candidate algorithms (implicit GEMM, FFT, Winograd) once per shape
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = True  # the head's matmul; convs already TF32
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank

    train_ds, val_ds, val_source = open_datasets(cfg)
    num_classes = len(train_ds.classes)
    model = get_model(cfg.model, num_classes, zero_init_residual=cfg.zero_init_residual)
    init_info = load_init(model, cfg.init) if cfg.init else {}
    frozen = frozen_stages(model, cfg.freeze)
    apply_freeze(model, frozen)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.lr_mult)

    res = res_for_epoch(cfg, 0)
    pipe = train_pipeline(res, cfg.min_scale, cfg.flip)
    train_loader = make_loader(train_ds, pipe, cfg.batch_size, True, cfg, device)
    val_batch = max(1, cfg.batch_size // VIEWS[cfg.tta])
    val_loader = make_loader(val_ds, val_pipeline(cfg.tta, cfg.res), val_batch, False, cfg, device)
    log = RunLog(cfg.out, enabled=info.is_main, tensorboard=cfg.tensorboard)
    try:
        steps = len(train_loader)
        if cfg.steps_per_epoch is not None:
            steps = min(steps, cfg.steps_per_epoch)
        total_steps = steps * cfg.epochs
        scheduler = build_scheduler(optimizer, total_steps, round(cfg.warmup_epochs * steps))

        net: nn.Module = model
        if info.enabled:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if cfg.compile:
            net = torch.compile(net)
        amp_dtype = AMP_DTYPES[cfg.amp]
        scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
        ctx = StepContext(device, amp_dtype, scaler, cfg.channels_last)
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        run = _Run(cfg, info, net, frozen, optimizer, scheduler, criterion, ctx, steps, val_loader)

        # what each rank trains on in epoch 0: shows the partition is disjoint
        mine = train_loader.indices(0)[: steps * cfg.batch_size]
        rank_samples, rank_overlap = distributed.partition_check(mine)
        log.write_config(
            {
                **cfg.to_json(),
                "world_size": info.world_size,
                "num_classes": num_classes,
                "classes": list(train_ds.classes),
                "train_images": len(train_ds),
                "val_images": len(val_ds),
                "val_source": val_source,
                "frozen_stages": list(frozen),
                "train_steps_per_epoch": steps,
                "rank_samples_epoch0": rank_samples,
                "rank_overlap_epoch0": rank_overlap,
                "torch": torch.__version__,
                **init_info,
            }
        )
        records = []
        for epoch in range(cfg.epochs):
            new_res = res_for_epoch(cfg, epoch)
            if new_res != res:  # progressive resizing: a new pipeline at the new size
                train_loader.close()
                res = new_res
                pipe = train_pipeline(res, cfg.min_scale, cfg.flip)
                train_loader = make_loader(train_ds, pipe, cfg.batch_size, True, cfg, device)
            record = _epoch(run, epoch, res, train_loader)
            records.append(record)
            log.log_epoch(record, model if cfg.tensorboard else None)
        log.save_model(model)
        summary = _summary(cfg, info, records, time.perf_counter() - t_run, val_source)
        if info.is_main:
            write_summary(log.run_dir / "summary.json", summary)
            if cfg.json:
                write_summary(cfg.json, summary)
        return summary
    finally:
        log.close()
        train_loader.close()
        val_loader.close()


@dataclass
class _Run:
    """What every epoch uses."""

    cfg: TrainConfig
    info: distributed.DistInfo
    net: nn.Module  # the model as trained: maybe wrapped by DDP and/or torch.compile
    frozen: tuple[str, ...]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    criterion: nn.Module
    ctx: StepContext
    steps: int
    val_loader: object


def _epoch(run: _Run, epoch: int, res: int, train_loader) -> dict:
    cfg, info, ctx, steps, scheduler = run.cfg, run.info, run.ctx, run.steps, run.scheduler
    t0 = time.perf_counter()
    train_loader.set_epoch(epoch)
    set_train_mode(run.net, run.frozen)
    bar = tqdm(
        total=steps,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        unit="step",
        leave=False,
        disable=not (cfg.progress and info.is_main),
        dynamic_ncols=True,
    )
    done = [0]

    def on_step(step: int, loss: float, wait: float) -> None:
        bar.update(step - done[0])
        done[0] = step
        bar.set_postfix(loss=f"{loss:.3f}", wait=f"{wait:.0%}", res=res)

    with bar:
        t = train_epoch(
            run.net, train_loader, run.optimizer, scheduler, run.criterion, ctx, steps, on_step
        )
    t_val = time.perf_counter()
    v = evaluate(run.net, run.val_loader, cfg.tta, ctx)
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
        "seconds": time.perf_counter() - t0,
    }
    if info.is_main and cfg.progress:
        tqdm.write(
            f"epoch {epoch + 1}/{cfg.epochs} res {res}: loss {record['loss']:.3f} "
            f"train {record['train_top1']:.1%} val top-1 {record['val_top1']:.1%} "
            f"top-5 {record['val_top5']:.1%} | {record['images_per_s']:.0f} img/s, "
            f"data wait {record['data_wait_fraction']:.0%}, peak mem {mem:.0f} MB ({mem_kind})"
        )
    return record


def _summary(cfg, info, records: list[dict], seconds: float, val_source: str) -> dict:
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
