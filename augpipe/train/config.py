"""One typed configuration for ``augpipe train``, validated before anything is built."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from augpipe.errors import bad_param

AMP_MODES = ("none", "fp16", "bf16")
TTA_MODES = ("none", "flip", "10crop", "multiscale")
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4", "fc")


@dataclass
class TrainConfig:
    """Every option of a training run; ``config.json`` in the run directory is this, resolved.

    ``lr=None`` resolves to 0.1 × global batch / 256 (Goyal et al.); ``device="auto"`` to
    ``cuda`` when available; ``warmup_epochs=None`` to min(5, epochs / 10); ``min_scale=None``
    (smallest area fraction of a random-resized crop) to ImageNet's 0.08 at res >= 128 and 0.35
    below, where a crop of 8% of a small image leaves too few pixels to recognise anything.
    """

    data: str
    val: str | None = None
    model: str = "resnet18"
    epochs: int = 16
    batch_size: int = 256
    lr: float | None = None
    res: int = 224
    workers: int | None = None
    device: str = "auto"
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    label_smoothing: float = 0.1
    min_scale: float | None = None
    flip: bool = True
    tta: str = "none"
    init: str | None = None
    freeze: str | None = None
    lr_mult: dict[str, float] = field(default_factory=dict)
    progressive_res: tuple[int, int] | None = None
    out: str | None = None
    json: str | None = None
    tensorboard: bool = False
    # optimisation defaults that train well (SGD + Nesterov, no decay on BN/bias)
    momentum: float = 0.9
    weight_decay: float = 5e-5
    warmup_epochs: float | None = None
    zero_init_residual: bool = True
    cudnn_benchmark: bool = True
    seed: int = 0
    val_fraction: float = 0.1
    steps_per_epoch: int | None = None
    subset: int | None = None
    prefetch: int | None = None
    progress: bool = True
    # preemption: checkpoints every N steps (None: at each epoch's end only), the newest K kept;
    # resume: a run directory to continue, or "auto" (continue --out if it holds a checkpoint)
    checkpoint_every: int | None = None
    keep: int = 2
    resume: str | None = None
    # --pipeline: a pipeline JSON file or a registered string spec (augpipe.spec.load_pipeline)
    # for training, in place of the one --res, --min-scale and --no-flip build (resume compares
    # the pipeline it gives, not the path: resume.check_compatible)
    pipeline: str | None = None
    # timm's recipe options (augpipe.train.recipe)
    aa: str | None = None
    reprob: float = 0.0
    remode: str = "pixel"
    mixup: float = 0.0
    cutmix: float = 0.0
    cutmix_minmax: tuple[float, float] | None = None
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: str = "batch"
    bce_loss: bool = False
    aug_repeats: int = 0

    def resolved(self, world_size: int = 1, cuda_available: bool = False) -> TrainConfig:
        """A validated copy with every ``None``/``auto`` default replaced by its value."""
        self.validate()
        c = dataclasses.replace(self, lr_mult=dict(self.lr_mult))
        if c.device == "auto":
            c.device = "cuda" if cuda_available else "cpu"
        if c.device == "cuda" and not cuda_available:
            raise bad_param("--device", "a device this machine has", "cuda", "use --device cpu")
        if c.amp == "fp16" and c.device != "cuda":
            raise bad_param(
                "--amp", "bf16 or none on the CPU", "fp16", "use --amp bf16, or run on CUDA"
            )
        if c.lr is None:
            c.lr = 0.1 * c.batch_size * world_size / 256
        if c.min_scale is None and c.pipeline is None:
            c.min_scale = 0.08 if c.res >= 128 else 0.35
        if c.warmup_epochs is None:
            c.warmup_epochs = min(5.0, c.epochs / 10)
        if c.resume not in (None, "auto"):
            if c.out is not None and Path(c.out).resolve() != Path(c.resume).resolve():
                raise bad_param("--out", f"the run directory --resume continues ({c.resume!r})",
                                c.out, "drop --out when resuming")  # fmt: skip
            c.out = c.resume
        if c.resume == "auto" and c.out is None:
            raise bad_param("--resume auto", "--out RUN_DIR (where a restarted job continues)",
                            None, "add --out RUN_DIR")  # fmt: skip
        if c.out is None:
            c.out = str(Path("runs") / time.strftime("train-%Y%m%d-%H%M%S"))
        return c

    def validate(self) -> None:
        _positive_int("--epochs", self.epochs)
        _positive_int("--batch-size", self.batch_size)
        _positive_int("--res", self.res, minimum=8)
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise bad_param("--lr", "a positive number", self.lr)
        if self.workers is not None and self.workers < 0:
            raise bad_param("--workers", "an integer >= 0", self.workers)
        if self.device not in ("auto", "cpu", "cuda"):
            raise bad_param("--device", "cpu or cuda", self.device)
        if self.amp not in AMP_MODES:
            raise bad_param("--amp", f"one of {AMP_MODES}", self.amp)
        if self.tta not in TTA_MODES:
            raise bad_param("--tta", f"one of {TTA_MODES}", self.tta)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise bad_param("--label-smoothing", "a number in [0, 1)", self.label_smoothing)
        if self.freeze is not None and self.freeze not in STAGES[:-1]:
            raise bad_param("--freeze", f"one of {STAGES[:-1]}", self.freeze)
        for stage, mult in self.lr_mult.items():
            if stage not in STAGES:
                raise bad_param("--lr-mult", f"STAGE=F with STAGE in {STAGES}", stage)
            if not (math.isfinite(mult) and mult >= 0):
                raise bad_param("--lr-mult", "a factor >= 0", f"{stage}={mult}")
        if self.progressive_res is not None:
            lo, hi = self.progressive_res
            _positive_int("--progressive-res START", lo, minimum=8)
            _positive_int("--progressive-res END", hi, minimum=8)
        if self.min_scale is not None and not 0.0 < self.min_scale <= 1.0:
            raise bad_param("--min-scale", "an area fraction in (0, 1]", self.min_scale)
        if not 0.0 < self.val_fraction < 1.0:
            raise bad_param("--val-fraction", "a number in (0, 1)", self.val_fraction)
        if self.subset is not None:
            _positive_int("--subset", self.subset, minimum=2)
        if self.steps_per_epoch is not None:
            _positive_int("--steps-per-epoch", self.steps_per_epoch)
        if self.weight_decay < 0 or self.momentum < 0:
            raise bad_param("--weight-decay/--momentum", "numbers >= 0", (self.weight_decay,))
        if self.checkpoint_every is not None:
            _positive_int("--checkpoint-every", self.checkpoint_every)
        _positive_int("--keep", self.keep)
        if self.warmup_epochs is not None and self.warmup_epochs < 0:
            raise bad_param("--warmup-epochs", "a number >= 0", self.warmup_epochs)
        self._validate_recipe()
        if self.pipeline is not None:
            self._check_pipeline()

    def _check_pipeline(self) -> None:
        from augpipe.spec.files import is_string_spec, load_pipeline

        if self.min_scale is not None or not self.flip:
            raise bad_param(
                "--min-scale/--no-flip",
                "no crop flags with --pipeline",
                self.pipeline,
                "set the crop and flip in the pipeline file",
            )
        load_pipeline(self.pipeline, size=self.res)  # ConfigError naming the file
        if self.progressive_res is not None and not is_string_spec(self.pipeline):
            raise bad_param("--progressive-res", "no --pipeline file (its sizes are fixed)",
                            self.pipeline, "drop one of the two")  # fmt: skip

    def _validate_recipe(self) -> None:
        if self.aa:
            from augpipe.ops.policies.strings import policy_from_string

            policy_from_string(self.aa)  # a malformed string names its bad key
        if not 0.0 <= self.reprob <= 1.0:
            raise bad_param("--reprob", "a probability in [0, 1]", self.reprob)
        if self.remode not in ("const", "rand", "pixel"):
            raise bad_param("--remode", "const, rand or pixel", self.remode)
        for name, v in (("--mixup", self.mixup), ("--cutmix", self.cutmix)):
            if not (math.isfinite(v) and v >= 0):
                raise bad_param(name, "an alpha >= 0 (0: off)", v)
        for name, v in (("--mixup-prob", self.mixup_prob),
                        ("--mixup-switch-prob", self.mixup_switch_prob)):  # fmt: skip
            if not 0.0 <= v <= 1.0:
                raise bad_param(name, "a probability in [0, 1]", v)
        if self.mixup_mode not in ("batch", "pair", "elem"):
            raise bad_param("--mixup-mode", "batch, pair or elem", self.mixup_mode)
        if self.cutmix_minmax is not None:
            lo, hi = self.cutmix_minmax
            if not 0.0 <= lo < hi <= 1.0:
                raise bad_param("--cutmix-minmax", "MIN MAX with 0 <= MIN < MAX <= 1",
                                self.cutmix_minmax)  # fmt: skip
        if not isinstance(self.aug_repeats, int) or self.aug_repeats < 0:
            raise bad_param("--aug-repeats", "an integer >= 0 (0 or 1: off)", self.aug_repeats)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        for key in ("progressive_res", "cutmix_minmax"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d


def _positive_int(name: str, value: object, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise bad_param(name, f"an integer >= {minimum}", value)


def parse_lr_mult(items: list[str] | None) -> dict[str, float]:
    """``["layer4=0.1", "fc=1"]`` → ``{"layer4": 0.1, "fc": 1.0}``; ConfigError on bad syntax."""
    out: dict[str, float] = {}
    for item in items or []:
        stage, sep, value = item.partition("=")
        try:
            out[stage.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise bad_param("--lr-mult", "STAGE=FACTOR, e.g. layer3=0.01", item)
    return out


def parse_progressive_res(text: str | None) -> tuple[int, int] | None:
    """``"160:224"`` → ``(160, 224)``."""
    if text is None:
        return None
    lo, sep, hi = text.partition(":")
    try:
        return int(lo), int(hi)
    except ValueError:
        raise bad_param("--progressive-res", "START:END in pixels, e.g. 160:224", text) from None


def res_for_epoch(cfg: TrainConfig, epoch: int) -> int:
    """Training resolution of an epoch: linear from START to END, rounded to a multiple of 8."""
    if cfg.progressive_res is None:
        return cfg.res
    lo, hi = cfg.progressive_res
    if cfg.epochs == 1:
        return hi
    if epoch <= 0 or epoch >= cfg.epochs - 1:
        return lo if epoch <= 0 else hi
    r = lo + (hi - lo) * epoch / (cfg.epochs - 1)
    return max(8, int(round(r / 8)) * 8)  # multiples of 8 keep kernels' tiles aligned
