"""End-to-end training speed of ``augpipe train``: images/s and data-wait fraction.

    python bench/train_speed.py [--data data/corpus/packed] [--device cpu|cuda] [--no-write]

For each configuration, one run of the real trainer on the packed photo corpus (a fixed random
subset so epochs are short and whole), ``--epochs`` epochs, the first discarded (worker
start-up, Numba cache load, cuDNN autotuning); median and range of the later epochs' images/s
and data-wait fraction. Beside it, in the same process, the **model-only** rate: the same
model, optimiser and precision stepping on one synthetic batch held on the device (the loader
replaced by fake data), so ``e2e / model-only`` says how much of the model's speed the data
pipeline delivers.

CPU (default): small_cnn at 32 and 64 px, resnet18 at 224. ``--device cuda`` (a GPU machine):
ResNet-50, bf16 autocast, channels_last, 224 px, batch 256, with cudnn.benchmark on and off.
Writes the ``## Train speed`` section of bench/RESULTS.md (CPU) or ``## Train speed (GPU)``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    PACKED,
    machine_metadata,
    metadata_line,
    shown,
    write_results_section,
)

CPU_CONFIGS = [
    {"name": "small_cnn 32 px", "model": "small_cnn", "res": 32, "batch_size": 128, "subset": 1536},
    {"name": "small_cnn 64 px", "model": "small_cnn", "res": 64, "batch_size": 128, "subset": 768},
    {"name": "resnet18 224 px", "model": "resnet18", "res": 224, "batch_size": 32, "subset": 96},
]
CUDA_CONFIGS = [
    {"name": "resnet50 224 px bf16 channels_last", "model": "resnet50", "res": 224,
     "batch_size": 256, "subset": 256 * 12, "amp": "bf16", "channels_last": True},
    {"name": "resnet50 224 px bf16 channels_last, cudnn.benchmark off", "model": "resnet50",
     "res": 224, "batch_size": 256, "subset": 256 * 12, "amp": "bf16", "channels_last": True,
     "cudnn_benchmark": False},
]  # fmt: skip


def run_config(data: str, conf: dict, device: str, epochs: int, workers: int | None) -> dict:
    from augpipe.train import TrainConfig, train

    kw = {k: v for k, v in conf.items() if k != "name"}
    load = os.getloadavg()[0]
    # model-only before and after the run: the machine is shared, its load drifts
    before = model_only_rates(conf, device)
    with tempfile.TemporaryDirectory(prefix="augpipe-train-speed-") as tmp:
        cfg = TrainConfig(data, epochs=epochs, device=device, workers=workers, out=tmp,
                          progress=False, **kw)  # fmt: skip
        summary = train(cfg)
        lines = (Path(tmp) / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines][1:]  # first epoch: warm-up
    rates = [r["images_per_s"] for r in records]
    waits = [r["data_wait_fraction"] for r in records]
    model_only = statistics.median(before + model_only_rates(conf, device))
    e2e = statistics.median(rates)
    return {
        "name": conf["name"],
        "config": kw | {"epochs": epochs, "workers": workers},
        "e2e_images_per_s": e2e,
        "e2e_rates": rates,
        "data_wait_fraction": statistics.median(waits),
        "data_waits": waits,
        "model_only_images_per_s": model_only,
        "ratio_e2e_to_model_only": e2e / model_only,
        "peak_memory_mb": summary["peak_memory_mb"],
        "memory_kind": summary["memory_kind"],
        "load_average_before": load,
    }


def model_only_rates(conf: dict, device: str, steps: int = 4, repeats: int = 3) -> list[float]:
    """Images/s of ``repeats`` runs of training steps on one synthetic batch on the device."""
    import torch

    from augpipe.models import get_model
    from augpipe.train.loop import StepContext, train_epoch
    from augpipe.train.optim import build_optimizer, build_scheduler

    dev = torch.device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = conf.get("cudnn_benchmark", True)
    b, res = conf["batch_size"], conf["res"]
    model = get_model(conf["model"], 10, zero_init_residual=True).to(dev)
    if conf.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    opt = build_optimizer(model, lr=0.01)
    sched = build_scheduler(opt, 10**6, 0)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(conf.get("amp", "none"))
    scaler = torch.amp.GradScaler("cuda") if conf.get("amp") == "fp16" else None
    ctx = StepContext(dev, amp, scaler, conf.get("channels_last", False))
    images = torch.randn(b, 3, res, res, device=dev)
    labels = torch.randint(0, 10, (b,), device=dev)
    fake = [(images, labels)] * steps
    crit = torch.nn.CrossEntropyLoss()
    model.train()
    train_epoch(model, fake[:2], opt, sched, crit, ctx)  # warm-up
    rates = []
    for _ in range(repeats):
        out = train_epoch(model, fake, opt, sched, crit, ctx)
        rates.append(out["images"] / out["seconds"])
    return rates


def markdown(results: list[dict], meta: dict, device: str, data: str, epochs: int) -> str:
    rows = [
        "| configuration | batch | e2e images/s (median, range) | data wait | model-only "
        "images/s | e2e / model-only | peak memory | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lo, hi = min(r["e2e_rates"]), max(r["e2e_rates"])
        rows.append(
            f"| {r['name']} | {r['config']['batch_size']} | {r['e2e_images_per_s']:.0f} "
            f"({lo:.0f}–{hi:.0f}) | {r['data_wait_fraction']:.0%} | "
            f"{r['model_only_images_per_s']:.0f} | {r['ratio_e2e_to_model_only']:.2f} | "
            f"{r['peak_memory_mb']:.0f} MB ({r['memory_kind']}) | {r['load_average_before']:.1f} |"
        )
    cores = os.cpu_count() or 1
    # the 1-minute load average before a configuration includes the previous configuration's
    # own trainer and workers (about the core count), so only clearly more means other work
    busy = any(r["load_average_before"] > cores + 1 for r in results)
    caveat = (
        f"Measured while other processes loaded the machine (load average above {cores + 1} on "
        f"{cores} cores): the e2e and model-only rates were taken minutes apart under varying "
        "load, so their ratio is unreliable here; the data-wait fraction, measured within the "
        "same steps as the e2e rate, is not affected that way."
        if busy
        else ""
    )
    return "\n".join(
        [
            "`python bench/train_speed.py" + (" --device cuda" if device == "cuda" else "") + "`"
            f": the real trainer on `{shown(data)}` (a fixed random subset per configuration), "
            f"{epochs} epochs, first discarded, median of the rest; SGD + Nesterov, fp32 unless "
            "said. *Data wait* = time blocked in `next(loader)` ÷ step time. *Model-only* = the "
            "same steps on one synthetic batch held on the device (no loader), median of 3 runs "
            "before and 3 after the trainer's run. Load avg = the "
            "machine's 1-minute load average before the run (the machine is shared: above the "
            "core count, other processes were competing for the cores).",
            "",
            *rows,
            "",
            "On the CPU the loader's workers and the model share the same cores: e2e can fall "
            "well below model-only while the data wait stays small, because the wait counts only "
            "the time a step blocked in `next(loader)`, not the core time the workers took from "
            "the model. With a GPU the model leaves the cores to the workers, and the data wait "
            "is the GPU's idle share.",
            "",
            *([caveat, ""] if caveat else []),
            metadata_line(meta),
        ]
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(PACKED), help="packed dataset")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--epochs", type=int, default=4, help="per configuration (first discarded)")
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default: cores)")
    ap.add_argument("--only", default=None, help="run configurations whose name contains this")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md")
    args = ap.parse_args()
    if not Path(args.data, "manifest.json").exists():
        print(f"train_speed: {args.data} is not a packed dataset; make it with "
              "tools/make_photo_corpus.py and augpipe pack", file=sys.stderr)  # fmt: skip
        return 2
    configs = CUDA_CONFIGS if args.device == "cuda" else CPU_CONFIGS
    if args.only:
        configs = [c for c in configs if args.only in c["name"]]
    meta = machine_metadata()
    results = []
    for conf in configs:
        t0 = time.perf_counter()
        r = run_config(args.data, conf, args.device, args.epochs, args.workers)
        print(f"{r['name']}: {r['e2e_images_per_s']:.0f} img/s e2e, data wait "
              f"{r['data_wait_fraction']:.0%}, model-only {r['model_only_images_per_s']:.0f} "
              f"img/s ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
        results.append(r)
    out = Path(__file__).resolve().parent / "out" / f"train_speed_{args.device}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str))
    if not args.no_write:
        title = "Train speed" + (" (GPU)" if args.device == "cuda" else "")
        write_results_section(title, markdown(results, meta, args.device, args.data, args.epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
