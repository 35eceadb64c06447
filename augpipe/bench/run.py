"""``run_bench(path, cfg)``: every stage alone, then end to end, then the verdict; one dict.

>>> from augpipe.bench.run import run_bench
>>> from augpipe.bench.stages import BenchConfig
>>> results = run_bench("photos.packed", BenchConfig(model="resnet50", res=224))
>>> results["bottleneck"]
'model'
"""

from __future__ import annotations

import time
from collections.abc import Callable

from augpipe.bench import stages
from augpipe.bench.machine import machine_metadata, usable_cores
from augpipe.bench.stages import BenchConfig
from augpipe.bench.verdict import StageFigures, decide
from augpipe.errors import ConfigError, bad_param

AMPS = ("none", "fp16", "bf16")
DEVICES = ("cpu", "cuda")


def validate(cfg: BenchConfig) -> None:
    if cfg.device not in DEVICES:
        raise bad_param("--device", f"one of {DEVICES}", cfg.device)
    if cfg.amp not in AMPS:
        raise bad_param("--amp", f"one of {AMPS}", cfg.amp)
    if cfg.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "--device: expected a visible CUDA GPU for 'cuda', got none "
                f"(torch {torch.__version__}); use --device cpu or install a CUDA build of torch"
            )
    if cfg.amp == "fp16" and cfg.device == "cpu":
        raise bad_param("--amp", "none or bf16 on the CPU", cfg.amp, "fp16 autocast needs CUDA")
    for name, value, lo in (("--res", cfg.res, 8), ("--batch-size", cfg.batch_size, 1)):
        if value < lo:
            raise bad_param(name, f"an integer >= {lo}", value)
    if not cfg.workers or any(w < 0 for w in cfg.workers):
        raise bad_param("--workers", "a comma-separated list of worker counts >= 0, e.g. 1,2,4",
                        ",".join(map(str, cfg.workers)))  # fmt: skip
    if cfg.seconds <= 0:
        raise bad_param("--seconds", "a positive number of seconds per stage", cfg.seconds)


def train_pipeline(res: int):
    """The pipeline the trainer uses: random-resized crop + horizontal flip."""
    from augpipe.transforms import Compose, HorizontalFlip, RandomResizedCrop

    return Compose([RandomResizedCrop(res), HorizontalFlip()])


def run_bench(path, cfg: BenchConfig, log: Callable[[str], None] = lambda s: None) -> dict:
    """Measure every stage on the packed dataset at ``path``; the JSON-ready results."""
    import cv2

    validate(cfg)
    # Per-core stages are single-threaded by definition (OpenCV is only the decode fallback).
    cv2_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return _run_bench(path, cfg, log)
    finally:
        cv2.setNumThreads(cv2_threads)


def _run_bench(path, cfg: BenchConfig, log: Callable[[str], None]) -> dict:
    from augpipe.format.dataset import ShardDataset

    t_start = time.perf_counter()
    ds = ShardDataset(path)
    if len(ds) < 1:
        raise bad_param("OUT", "a packed dataset with at least one record", str(path))
    cfg.batch_size = min(cfg.batch_size, len(ds))
    if cfg.pipeline is not None:  # --pipeline FILE.json or a registered string spec
        from augpipe.spec import load_pipeline

        pipeline = load_pipeline(cfg.pipeline, size=cfg.res)
        shape = pipeline.output_shape
        if len(shape) != 3:
            raise bad_param("--pipeline", "a training pipeline (one crop per image)",
                            cfg.pipeline, f"it makes {shape[0]} crops per image")  # fmt: skip
        if shape[0] == shape[1]:
            cfg.res = shape[0]  # the model stage runs at the pipeline's size
        described = f"{cfg.pipeline}: " + " + ".join(type(op).__name__ for op in pipeline.ops)
    else:
        pipeline = train_pipeline(cfg.res)
        described = f"RandomResizedCrop({cfg.res}) + HorizontalFlip"
    s = cfg.seconds
    out: dict = {
        "dataset": {
            "path": str(path),
            "records": len(ds),
            "classes": len(ds.classes),
            "encoding": ds.encoding,
        },  # fmt: skip
        "config": {
            "model": cfg.model,
            "res": cfg.res,
            "batch_size": cfg.batch_size,
            "workers": list(cfg.workers),
            "device": cfg.device,
            "amp": cfg.amp,
            "channels_last": cfg.channels_last,
            "seconds": cfg.seconds,
            "pipeline": described,
            "pipeline_spec": pipeline.to_dict(),
        },  # fmt: skip
        "stages": {},
    }
    st = out["stages"]
    log("shard read (cold, then warm)")
    st["disk"] = stages.shard_read(ds, s, cfg.seed)
    out["dataset"]["bytes"] = st["disk"]["bytes"]
    log("decode only, one core")
    st["decode"] = stages.decode_only(ds, pipeline, s, cfg.seed)
    log("decode + augment, one core")
    st["decode_augment"] = stages.decode_augment(ds, pipeline, s, cfg.seed)
    st["loader"] = {}
    for w in cfg.workers:
        log(f"loader, {w} worker(s)")
        st["loader"][str(w)] = stages.loader_rate(ds, pipeline, w, cfg.batch_size, s, cfg.seed)
    st["transfer"] = None
    if cfg.device == "cuda":
        log("host -> device copy")
        st["transfer"] = stages.transfer(cfg, s)
    log(f"model {cfg.model} forward+backward, synthetic data on {cfg.device}")
    st["model"] = stages.model_compute(cfg, len(ds.classes), s)
    figures = figures_from(out, usable_cores())
    best = max(figures.loader, key=lambda w: figures.loader[w])
    log(f"end to end: training steps with the loader ({best} workers)")
    e2e = stages.end_to_end(ds, pipeline, cfg, best, max(s, 2.0))
    out["end_to_end"] = e2e
    figures.end_to_end = e2e["images_per_s"]
    figures.data_wait_fraction = e2e["data_wait_fraction"]
    verdict = decide(figures)
    out["verdict"] = verdict.to_dict()
    out["bottleneck"] = verdict.bottleneck
    out["machine"] = machine_metadata()
    out["seconds_total"] = time.perf_counter() - t_start
    ds.close()
    return out


def figures_from(results: dict, cores: int) -> StageFigures:
    """The verdict's inputs, taken from the results dict (so a saved JSON can be re-judged)."""
    st, cfg = results["stages"], results["config"]
    transfer = st.get("transfer") or {}
    model = st["model"]
    e2e = results.get("end_to_end") or {}
    return StageFigures(
        decode_per_core=st["decode"]["median"],
        decode_augment_per_core=st["decode_augment"]["median"],
        loader={int(w): v["median"] for w, v in st["loader"].items()},
        model=model["median"],
        cores=cores,
        disk_cold=st["disk"]["cold"]["images_per_s"],
        disk_warm=st["disk"]["warm"]["median"],
        fits_in_cache=st["disk"]["fits_in_cache"],
        transfer_pinned=transfer.get("pinned", {}).get("median"),
        transfer_pageable=transfer.get("pageable", {}).get("median"),
        device=cfg["device"],
        amp=cfg["amp"],
        channels_last=cfg["channels_last"],
        batch_size=cfg["batch_size"],
        encoding=results["dataset"]["encoding"],
        peak_memory=model.get("peak_memory"),
        device_memory=model.get("device_memory"),
        end_to_end=e2e.get("images_per_s"),
        data_wait_fraction=e2e.get("data_wait_fraction"),
    )
