"""``train(config)``: the whole run — data, model, optimiser, epochs, metrics, files.

>>> from augpipe.train import TrainConfig, train
>>> summary = train(TrainConfig("data.packed", model="small_cnn", res=32, epochs=4))
>>> summary["val_top1"]
"""

from __future__ import annotations

import time

import torch
from torch import nn

from augpipe.errors import DatasetError
from augpipe.models import get_model
from augpipe.train import distributed, recipe, resume
from augpipe.train.checkpoint import load_init
from augpipe.train.config import TrainConfig, res_for_epoch
from augpipe.train.epoch import Run, run_epoch
from augpipe.train.epoch import summary as epoch_summary
from augpipe.train.loop import EpochSums, StepContext
from augpipe.train.metrics import RunLog, write_summary
from augpipe.train.optim import (
    apply_freeze,
    build_optimizer,
    build_scheduler,
    frozen_stages,
)
from augpipe.train.preempt import StopSignals
from augpipe.train.split import SubsetDataset, random_subset, split_indices
from augpipe.train.tta import VIEWS, val_pipeline

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def train_pipeline(res: int, min_scale: float = 0.08, flip: bool = True, spec=None, extra=()):
    """Crop (+ flip), or the ``--pipeline`` spec; then ``extra``: the recipe's ops
    (``augpipe.train.recipe``)."""
    if spec is not None:  # --pipeline FILE.json or a registered string spec
        from augpipe.spec import load_pipeline

        pipe = load_pipeline(spec, size=res)
        if not extra:
            return pipe
        # the recipe's fused ops go before the file's user ops (those run after the fused pass)
        ops = sorted([*pipe.ops, *extra], key=lambda op: op.kind in ("sample", "batch"))
        return type(pipe)(ops, fill=pipe.fill, fast_decode=pipe.fast_decode,
                          dct_slack=getattr(pipe, "dct_slack", 1.0))  # fmt: skip
    from augpipe.transforms import Compose, HorizontalFlip, RandomResizedCrop

    ops = [RandomResizedCrop(res, scale=(min_scale, 1.0))]
    return Compose((ops + [HorizontalFlip()] if flip else ops) + list(extra))


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
    """Run training; returns the summary (also written to ``--json`` and the run directory).

    SIGTERM/SIGINT write a checkpoint and raise ``TrainingInterrupted``; ``resume="auto"`` or
    a run directory continues from its newest checkpoint (docs/train.md).
    """
    cfg = config.resolved(distributed.world_size_from_env(), torch.cuda.is_available())
    info = distributed.setup(cfg.device)
    try:
        with StopSignals() as stop:
            return _run(cfg, info, stop)
    finally:
        distributed.cleanup()


def _run(cfg: TrainConfig, info: distributed.DistInfo, stop: StopSignals) -> dict:
    t_run = time.perf_counter()
    device = torch.device("cuda", info.local_rank) if cfg.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        # cuDNN times its candidate algorithms (implicit GEMM, FFT, Winograd) once per shape
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = True  # the head's matmul; convs already TF32
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank

    train_ds, val_ds, val_source = open_datasets(cfg)
    hashes = {"train": resume.manifest_hash(train_ds), "val": resume.manifest_hash(val_ds)}
    # what a resume must match: the options, and the training pipeline itself (a --pipeline
    # file may have been edited since)
    run_config = {**cfg.to_json(), "train_pipeline": resume.pipeline_text(
        train_pipeline(cfg.res, cfg.min_scale, cfg.flip, cfg.pipeline))}  # fmt: skip
    found = resume.find(cfg)
    ckpt = found[1] if found else None
    if found:
        resume.check_compatible(ckpt, run_config, info.world_size, hashes, found[0])
        if info.is_main:
            resume.set_aside_newer(cfg.out, found[0])
    num_classes = len(train_ds.classes)
    model = get_model(cfg.model, num_classes, zero_init_residual=cfg.zero_init_residual)
    # resuming: the checkpoint has the weights (the --init file may be gone by now)
    init_info = load_init(model, cfg.init) if cfg.init and not ckpt else {}
    frozen = frozen_stages(model, cfg.freeze)
    apply_freeze(model, frozen)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.lr_mult)

    start_epoch = ckpt["epoch"] if ckpt else 0
    res = res_for_epoch(cfg, start_epoch)
    extra = recipe.recipe_ops(cfg, num_classes)  # --aa, --reprob, --mixup/--cutmix
    train_ds = recipe.repeated(train_ds, cfg)  # --aug-repeats
    pipe = train_pipeline(res, cfg.min_scale, cfg.flip, cfg.pipeline, extra)
    train_loader = make_loader(train_ds, pipe, cfg.batch_size, True, cfg, device)
    val_batch = max(1, cfg.batch_size // VIEWS[cfg.tta])
    val_pipe = val_pipeline(cfg.tta, cfg.res, recipe.stored_short_side(val_ds))
    val_loader = make_loader(val_ds, val_pipe, val_batch, False, cfg, device)
    log = None
    try:
        log = RunLog(cfg.out, enabled=info.is_main, tensorboard=cfg.tensorboard,
                     records=ckpt["records"] if ckpt else None)  # fmt: skip
        steps = len(train_loader)
        if cfg.steps_per_epoch is not None:
            steps = min(steps, cfg.steps_per_epoch)
        total_steps = steps * cfg.epochs
        scheduler = build_scheduler(optimizer, total_steps, round(cfg.warmup_epochs * steps))
        amp_dtype = AMP_DTYPES[cfg.amp]
        scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
        stateful: dict[str, object] = {}  # see Run.stateful
        sums = _restore(ckpt, info, device, model, optimizer, scheduler, scaler, stateful,
                        train_loader, val_loader) if ckpt else None  # fmt: skip

        net: nn.Module = model
        if info.enabled:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if cfg.compile:
            net = torch.compile(net)
        ctx = StepContext(device, amp_dtype, scaler, cfg.channels_last)
        criterion = recipe.criterion(cfg)
        run = Run(cfg, info, model, net, frozen, optimizer, scheduler, criterion, ctx, steps,
                  train_loader, val_loader, log, stop, hashes, run_config, stateful)  # fmt: skip
        if ckpt:
            run.step, run.seconds_before = int(ckpt["step"]), float(ckpt["seconds"])
            run.records = [dict(r) for r in ckpt["records"]]
            run._saved = (run.step, start_epoch, int(ckpt["epoch_step"]))
        else:
            # what each rank trains on in epoch 0: shows the partition is disjoint
            mine = train_loader.indices(0)[: steps * cfg.batch_size]
            rank_samples, rank_overlap = distributed.partition_check(mine, device)
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
        if info.is_main:  # the resolved pipelines, as data (augpipe.load_pipeline reads them)
            train_loader.pipeline.save(log.run_dir / "pipeline.json")
            val_loader.pipeline.save(log.run_dir / "val_pipeline.json")
        if ckpt:  # last: nothing after this may draw random numbers before the first step
            resume.set_rng_state(ckpt["ranks"][info.rank], device)
        for epoch in range(start_epoch, cfg.epochs):
            new_res = res_for_epoch(cfg, epoch)
            if new_res != res:  # progressive resizing: a new pipeline at the new size
                run.train_loader.close()
                res = new_res
                pipe = train_pipeline(res, cfg.min_scale, cfg.flip, cfg.pipeline, extra)
                run.train_loader = make_loader(train_ds, pipe, cfg.batch_size, True, cfg, device)
                train_loader = run.train_loader
            run_epoch(run, epoch, res, sums)
            sums = None
        log.save_model(model)
        summary = epoch_summary(cfg, info, run.records, run.seconds_before + time.perf_counter()
                                - t_run, val_source)  # fmt: skip
        if info.is_main:
            write_summary(log.run_dir / "summary.json", summary)
            if cfg.json:
                write_summary(cfg.json, summary)
        return summary
    finally:
        if log is not None:
            log.close()
        train_loader.close()
        val_loader.close()


def _restore(ckpt, info, device, model, optimizer, scheduler, scaler, stateful, train_loader,
             val_loader):  # fmt: skip
    """Load a checkpoint into the freshly built run; returns the epoch's running sums (or None
    at an epoch boundary)."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if scaler is not None and ckpt["scaler"] is not None:
        scaler.load_state_dict(ckpt["scaler"])
    for name, obj in stateful.items():
        obj.load_state_dict(ckpt["stateful"][name])  # same options, so the same objects
    mine = ckpt["ranks"][info.rank]
    epoch, batch = (int(v) for v in mine["train_position"].tolist())
    train_loader.load_state_dict({**ckpt["loader"]["train"], "rank": info.rank, "epoch": epoch,
                                  "batch": batch})  # fmt: skip
    val_loader.load_state_dict({**ckpt["loader"]["val"], "rank": info.rank})
    return EpochSums.from_state(mine, device) if int(ckpt["epoch_step"]) else None
