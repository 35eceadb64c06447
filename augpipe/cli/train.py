"""``augpipe train OUT [--val VAL] ...``: train a built-in CNN on a packed dataset."""

from __future__ import annotations

import json
import sys

from augpipe.train.config import AMP_MODES, STAGES, TTA_MODES


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a built-in CNN: throughput, data-wait and accuracy",
        description="Train resnet18/34/50 or small_cnn on a packed dataset with augpipe's Loader. "
        "Per epoch: loss, accuracy, val top-1/top-5, images/s, data-wait fraction, peak memory "
        "(RUN_DIR/metrics.jsonl). Multi-process: torchrun --nproc_per_node=N -m augpipe train ...",
    )
    p.add_argument("data", metavar="OUT", help="packed training dataset (augpipe pack)")
    p.add_argument(
        "--val",
        metavar="VAL",
        help="packed validation dataset (default: hold out --val-fraction of OUT, stratified)",
    )
    p.add_argument(
        "--model",
        default="resnet18",
        help="small_cnn, resnet18, resnet34 or resnet50 (default resnet18)",
    )
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=256, help="per process (default 256)")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default 0.1 x batch x processes / 256)",
    )
    p.add_argument("--res", type=int, default=224, help="training and evaluation crop size")
    p.add_argument("--workers", type=int, default=None, help="loader worker processes")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument(
        "--amp",
        default="none",
        choices=AMP_MODES,
        help="autocast precision: bf16 (CPU or CUDA), fp16 (CUDA, gradient scaler)",
    )
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--label-smoothing", "--smoothing", dest="label_smoothing", type=float, default=0.1,
        metavar="X", help="label smoothing (timm's --smoothing; in the Mixup targets too)",
    )  # fmt: skip
    p.add_argument(
        "--min-scale",
        type=float,
        default=None,
        metavar="A",
        help="smallest area fraction of a training crop (default 0.08 at res >= 128, 0.35 below)",
    )
    p.add_argument(
        "--no-flip",
        dest="flip",
        action="store_false",
        help="no random horizontal flips (for data where mirroring changes the class)",
    )
    p.add_argument(
        "--tta",
        default="none",
        choices=TTA_MODES,
        help="test-time crops averaged (softmax): flip=2, 10crop=10, multiscale=50",
    )
    p.add_argument(
        "--init",
        metavar="CKPT",
        help="start from a state_dict (ours or torchvision's); the head is "
        "re-initialised when the class count differs",
    )
    p.add_argument(
        "--freeze",
        metavar="STAGE",
        choices=STAGES[:-1],
        help="freeze every stage up to and including STAGE "
        "(stem, layer1..layer4; layer4 = train only the head)",
    )
    p.add_argument(
        "--lr-mult",
        metavar="STAGE=F",
        nargs="+",
        action="extend",
        default=[],
        help="scale a stage's learning rate, e.g. layer3=0.01 layer4=0.1",
    )
    p.add_argument(
        "--progressive-res",
        metavar="START:END",
        help="train resolution rising linearly from START to END over the epochs",
    )
    p.add_argument(
        "--pipeline",
        metavar="FILE.json",
        help="the training pipeline: a JSON file (pipe.save) or a registered string spec; "
        "default: RandomResizedCrop(--res, --min-scale) + flip. Saved as RUN_DIR/pipeline.json",
    )
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default runs/train-<time>)")
    p.add_argument("--json", metavar="PATH", help="write the final summary as JSON")
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="TensorBoard scalars and weight histograms in RUN_DIR/tensorboard",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--momentum", type=float, default=0.9, help="Nesterov momentum")
    g.add_argument(
        "--weight-decay",
        type=float,
        default=5e-5,
        help="on conv/linear weights only, not batch norm or biases",
    )
    g.add_argument(
        "--warmup-epochs",
        type=float,
        default=None,
        help="linear warm-up before cosine decay (default min(5, epochs/10))",
    )
    g.add_argument(
        "--no-zero-init-residual",
        dest="zero_init_residual",
        action="store_false",
        help="keep the last BN gamma of each residual branch at 1",
    )
    g.add_argument("--no-cudnn-benchmark", dest="cudnn_benchmark", action="store_false")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of OUT held out for validation when --val is absent",
    )
    g.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="cap the steps of each epoch (short benchmark runs)",
    )
    g.add_argument(
        "--subset",
        type=int,
        default=None,
        metavar="N",
        help="quick runs: a fixed random N training and N/10 validation images",
    )
    g.add_argument("--prefetch", type=int, default=None, help="batches the loader keeps ready")
    g.add_argument("--no-progress", dest="progress", action="store_false")
    _add_resume_args(p)
    _recipe_args(p)
    p.set_defaults(func=run)


def _recipe_args(p) -> None:
    g = p.add_argument_group("recipe (timm's flags)")
    g.add_argument("--aa", metavar="POLICY", default=None,
                   help="rand-m9-mstd0.5-inc1 | trivialaugment | autoaugment | original | v0 | "
                   "augmix-m5-w4-d2 | randaugment-n2-m9 (docs/transforms.md)")  # fmt: skip
    g.add_argument("--reprob", type=float, default=0.0, help="RandomErasing probability")
    g.add_argument("--remode", default="pixel", choices=("const", "rand", "pixel"))
    g.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA", help="Mixup alpha")
    g.add_argument("--cutmix", type=float, default=0.0, metavar="ALPHA", help="CutMix alpha")
    g.add_argument("--cutmix-minmax", type=float, nargs=2, default=None, metavar=("MIN", "MAX"))
    g.add_argument("--mixup-prob", type=float, default=1.0)
    g.add_argument("--mixup-switch-prob", type=float, default=0.5)
    g.add_argument("--mixup-mode", default="batch", choices=("batch", "pair", "elem"))
    g.add_argument("--bce-loss", action="store_true", help="binary cross-entropy loss")
    g.add_argument("--aug-repeats", type=int, default=0, metavar="R",
                   help="each sample R times per epoch (DeiT: 3)")  # fmt: skip


def _recipe_config(args) -> dict:
    return {
        "aa": args.aa,
        "reprob": args.reprob,
        "remode": args.remode,
        "mixup": args.mixup,
        "cutmix": args.cutmix,
        "cutmix_minmax": tuple(args.cutmix_minmax) if args.cutmix_minmax else None,
        "mixup_prob": args.mixup_prob,
        "mixup_switch_prob": args.mixup_switch_prob,
        "mixup_mode": args.mixup_mode,
        "bce_loss": args.bce_loss,
        "aug_repeats": args.aug_repeats,
    }


def _add_resume_args(p) -> None:
    g = p.add_argument_group("preemption (docs/train.md)")
    g.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="N",
        help="also checkpoint every N steps (default: at the end of each epoch only)",
    )
    g.add_argument("--keep", type=int, default=2, metavar="K", help="checkpoints kept (default 2)")
    g.add_argument(
        "--resume",
        metavar="RUN_DIR|auto",
        help="continue RUN_DIR from its newest checkpoint (same options); auto: continue --out "
        "if it holds a checkpoint, else start it (for jobs a scheduler restarts)",
    )


def config_from_args(args):
    from augpipe.train.config import TrainConfig, parse_lr_mult, parse_progressive_res

    return TrainConfig(
        data=args.data,
        val=args.val,
        model=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        res=args.res,
        workers=args.workers,
        device=args.device,
        amp=args.amp,
        channels_last=args.channels_last,
        compile=args.compile,
        label_smoothing=args.label_smoothing,
        min_scale=args.min_scale,
        flip=args.flip,
        tta=args.tta,
        init=args.init,
        freeze=args.freeze,
        lr_mult=parse_lr_mult(args.lr_mult),
        progressive_res=parse_progressive_res(args.progressive_res),
        out=args.out,
        json=args.json,
        tensorboard=args.tensorboard,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs,
        zero_init_residual=args.zero_init_residual,
        cudnn_benchmark=args.cudnn_benchmark,
        seed=args.seed,
        val_fraction=args.val_fraction,
        steps_per_epoch=args.steps_per_epoch,
        subset=args.subset,
        prefetch=args.prefetch,
        progress=args.progress,
        checkpoint_every=args.checkpoint_every,
        keep=args.keep,
        resume=args.resume,
        pipeline=args.pipeline,
        **_recipe_config(args),
    )


def run(args) -> int:
    from augpipe.train.preempt import TrainingInterrupted
    from augpipe.train.trainer import train

    try:
        summary = train(config_from_args(args))
    except TrainingInterrupted as exc:  # SIGTERM / Ctrl-C: checkpoint written, workers stopped
        if _rank() == 0:
            print(f"augpipe train: {exc}", file=sys.stderr)
        return exc.exit_code
    if summary.get("world_size", 1) == 1 or _rank() == 0:
        brief = {
            k: summary[k]
            for k in (
                "val_top1",
                "val_top5",
                "train_images_per_s",
                "data_wait_fraction",
                "epochs",
                "seconds",
            )
        }
        brief["run_dir"] = summary["run_dir"]
        print(json.dumps(brief), file=sys.stdout)
    return 0


def _rank() -> int:
    import os

    return int(os.environ.get("RANK", "0"))
