"""``augpipe demo``: the whole product in one command, on a synthetic dataset it makes itself.

Generates a small learnable ImageFolder (``augpipe.synth``), packs it, inspects it, runs a short
``augpipe bench`` and a short training of ``small_cnn``, and prints what each step found.

    >>> from augpipe.bench.demo import run_demo
    >>> result = run_demo("/tmp/augpipe-demo", size="tiny")
    >>> result["bench"]["bottleneck"], result["train"]["val_top1"]
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from augpipe.errors import bad_param


@dataclass(frozen=True)
class DemoSize:
    n_classes: int
    per_class: int
    min_side: int
    max_side: int
    res: int
    batch_size: int
    bench_seconds: float
    epochs: int


SIZES = {
    # CI: seconds, not minutes; proves every step runs end to end
    "tiny": DemoSize(3, 12, 32, 48, 32, 16, 0.2, 2),
    # the README's first command: under 3 minutes on 2 cores, small_cnn learns the classes
    "small": DemoSize(6, 80, 48, 96, 32, 32, 1.0, 8),
}


def _fresh_dir(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise bad_param("--out", "a new or empty directory", str(out),
                        "pick another path or remove it")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)


def run_demo(
    out: str | Path | None = None,
    size: str = "small",
    workers: int = 2,
    echo: Callable[[str], None] = print,
) -> dict:
    """Run every step; returns the pack report, inspect summary, bench results and train summary.

    ``out=None`` works in a temporary directory removed at the end.
    """
    if size not in SIZES:
        raise bad_param("--size", f"one of {sorted(SIZES)}", size)
    z = SIZES[size]
    tmp = None
    if out is None:
        tmp = tempfile.mkdtemp(prefix="augpipe-demo-")
        root = Path(tmp)
    else:
        root = Path(out)
        _fresh_dir(root)
    t0 = time.perf_counter()
    try:
        return _steps(root, z, size, workers, echo, t0)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _steps(root: Path, z: DemoSize, size: str, workers: int, echo, t0: float) -> dict:
    from augpipe.bench.report import text_report
    from augpipe.bench.run import run_bench
    from augpipe.bench.stages import BenchConfig
    from augpipe.format.inspect import format_summary, summary
    from augpipe.format.pack import pack
    from augpipe.synth import make_image_folder

    def step(n: int, title: str) -> None:
        echo(f"\n== {n}/5 {title}  [{time.perf_counter() - t0:.0f} s]")

    step(1, f"make a synthetic ImageFolder ({z.n_classes} classes x {z.per_class} images)")
    images = make_image_folder(root / "images", n_classes=z.n_classes, per_class=z.per_class,
                               min_side=z.min_side, max_side=z.max_side, seed=0)  # fmt: skip
    echo(f"wrote {images}")

    step(2, f"augpipe pack {images} {root / 'packed'}")
    packed = root / "packed"
    rep = pack(images, packed, format="jpeg", quality=90, workers=workers, progress=False)
    echo(f"packed {rep.packed} images ({rep.bytes / 1e6:.2f} MB), {len(rep.skipped)} skipped, "
         f"in {rep.seconds:.1f} s")  # fmt: skip

    step(3, f"augpipe inspect {packed}")
    info = summary(packed)
    echo(format_summary(info))

    step(4, f"augpipe bench {packed} --model small_cnn --res {z.res}")
    import torch

    cfg = BenchConfig(model="small_cnn", res=z.res, batch_size=z.batch_size,
                      workers=tuple(range(1, workers + 1)), seconds=z.bench_seconds,
                      device="cuda" if torch.cuda.is_available() else "cpu")  # fmt: skip
    bench = run_bench(packed, cfg)
    echo(text_report(bench))

    step(5, f"augpipe train {packed} --model small_cnn --res {z.res} --epochs {z.epochs}")
    train = _train(packed, root / "run", z, workers)
    echo(
        f"small_cnn after {train['epochs']} epochs: val top-1 {train['val_top1']:.1%} "
        f"(chance {1 / z.n_classes:.0%}), {train['train_images_per_s']:.0f} images/s, "
        f"{train['data_wait_fraction']:.0%} waiting for data, {train['seconds']:.1f} s"
    )
    total = time.perf_counter() - t0
    echo(f"\ndemo ({size}) done in {total:.0f} s. Next: 'augpipe pack DIR OUT' on your own "
         "images, then 'augpipe bench OUT --model resnet50' on your machine.")  # fmt: skip
    return {"root": str(root), "pack": {"packed": rep.packed, "bytes": rep.bytes},
            "inspect": info, "bench": bench, "train": train, "seconds": total}  # fmt: skip


def _train(packed: Path, run_dir: Path, z: DemoSize, workers: int) -> dict:
    from augpipe.train.config import TrainConfig
    from augpipe.train.trainer import train

    cfg = TrainConfig(
        data=str(packed),
        model="small_cnn",
        res=z.res,
        epochs=z.epochs,
        batch_size=z.batch_size,
        workers=workers,
        device="auto",
        out=str(run_dir),
        val_fraction=0.2,
        progress=False,
    )
    return train(cfg)
