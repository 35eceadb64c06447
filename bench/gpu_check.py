"""The GPU path in one call (issue 14): the driver that bench/gpu_check.sh runs.

    python bench/gpu_check.py --out DIR [--dry-run] [--budget S] [--only STEPS]
                              [--photos-src PHOTOS | --data PACKED --photos IMAGEFOLDER]

Steps, each one skipped (and said so) when the budget would not hold it:
  corpus  cut an ImageNet-like JPEG corpus from real photos (tools/make_photo_corpus.py) and
          ``augpipe pack`` it (dry run: a tiny synthetic folder)
  loader  Loader(device, bfloat16, normalize="dataset", channels_last) at 1, 2, 4, 8, 14
          workers: images/s; its batches against the CPU path's uint8 batches converted the
          same way (values, dtype, shape, strides)
  train   ``augpipe train`` ResNet-50 224 and ResNet-18 160, bf16, channels_last, batch 256,
          14 workers: images/s and data wait, against the same model on synthetic on-device
          data (the ceiling) and against torchvision's ImageFolder + DataLoader (the peer)
  bench   ``augpipe bench --device cuda`` for small_cnn 32 px and ResNet-50 224
  cudnn   ResNet-50 step time with cudnn.benchmark on and off
``--dry-run`` runs the same steps on the CPU at tiny sizes. After every step the reports are
rewritten (``DIR/gpu_check.json`` and ``DIR/gpu_check.md``), so a kill keeps what was done.
This module imports the installed (or PYTHONPATH) augpipe only, never the checkout's
``bench`` package, so on the device it measures what ``pip install`` built.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_check_report, next to us
import gpu_check_report as report  # noqa: E402

STEPS = ("corpus", "loader", "train", "bench", "cudnn")
SIZES = {
    "device": {
        "device": "cuda", "images": 10000, "classes": 10, "pack_workers": 16,
        "loader": {"workers": [1, 2, 4, 8, 14], "res": 224, "batch": 256, "seconds": 4.0},
        "train": [{"model": "resnet50", "res": 224, "batch": 256, "steps": 30},
                  {"model": "resnet18", "res": 160, "batch": 256, "steps": 30}],
        "train_workers": 14, "synthetic_steps": 12,
        "bench": [{"model": "small_cnn", "res": 32, "batch": 256},
                  {"model": "resnet50", "res": 224, "batch": 256}],
        "bench_workers": "8,14", "bench_seconds": 1.0,
        "cudnn": {"model": "resnet50", "res": 224, "batch": 256, "steps": 12},
    },
    "dry": {
        "device": "cpu", "images": 24, "classes": 3, "pack_workers": 1,
        "loader": {"workers": [1, 2], "res": 32, "batch": 4, "seconds": 0.2},
        "train": [{"model": "small_cnn", "res": 32, "batch": 4, "steps": 2}],
        "train_workers": 0, "synthetic_steps": 2,
        "bench": [{"model": "small_cnn", "res": 32, "batch": 4}],
        "bench_workers": "0", "bench_seconds": 0.05,
        "cudnn": {"model": "small_cnn", "res": 32, "batch": 4, "steps": 2},
    },
}  # fmt: skip


class Budget:
    """The run's hard time limit: steps ask ``left()`` and skip what would not fit."""

    def __init__(self, seconds: float):
        self.start = time.monotonic()
        self.end = self.start + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_cli(args: list[str], timeout: float, cwd: str) -> subprocess.CompletedProcess:
    """``python -m augpipe ARGS`` (the augpipe this interpreter imports), output captured."""
    cmd = [sys.executable, "-m", "augpipe", *map(str, args)]
    log(" ".join(cmd[2:]))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=max(5.0, timeout), cwd=cwd)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:4])} exited {out.returncode}: {out.stderr[-800:]}")
    return out


# ------------------------------------------------------------------------------ environment


def environment(dev: str) -> dict:
    import numba
    import numpy
    import torch

    import augpipe
    from augpipe import decode

    env = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "augpipe": augpipe.__version__,
        "augpipe_from": str(Path(augpipe.__file__).parent),
        "decode_path": "region decode (C extension augpipe._jpegregion)"
        if decode.REGION_DECODE
        else "whole-image decode (augpipe._jpegregion not built here)",
        "cuda": torch.cuda.is_available(),
    }
    for name in ("lmdb", "simplejpeg", "cv2", "torchvision"):
        try:
            env[name] = getattr(__import__(name), "__version__", "?")
        except ImportError:
            env[name] = None
    if dev == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env["gpu"] = f"{p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs"
        env["cuda_version"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    return env


# ----------------------------------------------------------------------------------- corpus


def step_corpus(cfg: dict, args, work: Path, budget: Budget) -> dict:
    photos, packed = work / "photos", work / "packed"
    t0 = time.perf_counter()
    if args.photos_src:
        tool = Path(args.repo) / "tools" / "make_photo_corpus.py"
        cmd = [sys.executable, str(tool), args.photos_src, str(photos), "--n", str(cfg["images"]),
               "--classes", str(cfg["classes"]), "--workers", str(cfg["pack_workers"])]  # fmt: skip
        log(" ".join(cmd[1:]))
        subprocess.run(cmd, check=True, capture_output=True, timeout=max(5.0, budget.left()))
        kind = f"real photos cut from {args.photos_src} (tools/make_photo_corpus.py)"
    else:
        from augpipe.synth import make_image_folder

        per = cfg["images"] // cfg["classes"]
        make_image_folder(photos, n_classes=cfg["classes"], per_class=per, min_side=40,
                          max_side=72, seed=0)  # fmt: skip
        kind = "synthetic (augpipe.synth.make_image_folder), not real photos"
    t_cut = time.perf_counter() - t0
    run_cli(["pack", photos, packed, "--workers", cfg["pack_workers"], "--keep-jpeg",
             "--no-progress"], budget.left(), str(work))  # fmt: skip
    manifest = json.loads((packed / "manifest.json").read_text())
    shard_bytes = sum(s["bytes"] for s in manifest["shards"])
    return {"kind": kind, "images": manifest["count"], "classes": len(manifest["classes"]),
            "shard_mb": shard_bytes / 2**20, "cut_seconds": t_cut,
            "pack_seconds": time.perf_counter() - t0 - t_cut,
            "photos": str(photos), "packed": str(packed)}  # fmt: skip


def warm_numba(packed: str, resolutions) -> float:
    """Compile (or load from the cache) the kernels of the train and val pipelines once in
    this process, so that the loaders' workers start from the cache instead of all compiling
    at once (a fresh machine has no Numba cache)."""
    from augpipe.loader.loader import Loader
    from augpipe.train.trainer import train_pipeline
    from augpipe.train.tta import val_pipeline

    t0 = time.perf_counter()
    for res in resolutions:
        for pipe in (train_pipeline(res), val_pipeline("none", res)):
            with Loader(packed, 4, pipe, workers=0, output="numpy") as loader:
                next(iter(loader))
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------- loader


def _endless(loader):
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def loader_rate(packed: str, dev: str, workers: int, lc: dict) -> dict:
    import torch

    from augpipe.loader.loader import Loader
    from augpipe.train.trainer import train_pipeline

    kw = dict(workers=workers, device=dev, dtype="bfloat16", normalize="dataset",
              channels_last=True)  # fmt: skip
    with Loader(packed, lc["batch"], train_pipeline(lc["res"]), **kw) as loader:
        it = _endless(loader)
        for _ in range(3):  # worker start-up, first batches
            next(it)
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        sync()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < lc["seconds"]:
            images, _ = next(it)
            n += images.shape[0]
        sync()
        dt = time.perf_counter() - t0
        it.close()
    return {"workers": workers, "images_per_s": n / dt, "images": n, "seconds": dt}


def loader_equality(packed: str, dev: str, lc: dict, batches: int = 3) -> dict:
    """The device path's batches == the CPU path's uint8 batches, converted here the same way:
    (x - 255 mean) * (1 / (255 std)) in float32, then bfloat16, NCHW with channels_last."""
    import torch

    from augpipe.format.dataset import ShardDataset
    from augpipe.loader.loader import Loader
    from augpipe.train.trainer import train_pipeline

    ds = ShardDataset(packed)
    mean = torch.tensor((ds.stats["mean"] * 255.0).astype("float32")).reshape(1, 3, 1, 1)
    inv = 1.0 / torch.tensor((ds.stats["std"] * 255.0).astype("float32")).reshape(1, 3, 1, 1)
    pipe = train_pipeline(lc["res"])
    kw = dict(batch_size=lc["batch"], pipeline=pipe, workers=min(2, lc["workers"][-1]), seed=1)
    out = {"batches": 0, "equal": True, "max_abs_diff": 0.0, "checks": []}
    dkw = dict(output="torch", device=dev, dtype="bfloat16", normalize="dataset",
               channels_last=True)  # fmt: skip
    with Loader(packed, **dkw, **kw) as dl, Loader(packed, output="numpy", **kw) as cl:
        for _, (xd, yd), (xc, yc) in zip(range(batches), dl, cl):
            ref = torch.from_numpy(xc).permute(0, 3, 1, 2).to(torch.float32)  # NCHW view of NHWC
            ref = ((ref - mean) * inv).to(torch.bfloat16)
            got = xd.cpu()
            same_layout = got.stride() == ref.stride() and got.shape == ref.shape
            cl_ok = got.is_contiguous(memory_format=torch.channels_last)
            diff = (got.float() - ref.float()).abs().max().item()
            ok = (got.dtype == torch.bfloat16 and same_layout and cl_ok and diff == 0.0
                  and torch.equal(yd.cpu(), torch.from_numpy(yc)))  # fmt: skip
            out["checks"].append({"dtype": str(got.dtype), "shape": list(got.shape),
                                  "stride": list(got.stride()), "channels_last": cl_ok,
                                  "max_abs_diff": diff, "equal": ok})  # fmt: skip
            out["equal"] &= ok
            out["max_abs_diff"] = max(out["max_abs_diff"], diff)
            out["batches"] += 1
    ds.close()
    out["equal"] = bool(out["equal"] and out["batches"] == batches)
    return out


def step_loader(cfg: dict, packed: str, budget: Budget) -> dict:
    lc, dev = cfg["loader"], cfg["device"]
    out = {"config": lc, "rates": [], "skipped_workers": []}
    out["equality"] = loader_equality(packed, dev, lc)
    for w in lc["workers"]:
        if budget.left() < lc["seconds"] + 60:
            out["skipped_workers"].append(w)
            continue
        log(f"loader {dev} bf16 channels_last, {w} worker(s)")
        out["rates"].append(loader_rate(packed, dev, w, lc))
    return out


# ------------------------------------------------------------------------------------ train


def train_augpipe(conf: dict, cfg: dict, packed: str, work: Path, budget: Budget) -> dict:
    name = f"{conf['model']}-{conf['res']}"
    summary_path = work / f"train-{name}.json"
    run_cli(["train", packed, "--model", conf["model"], "--res", conf["res"], "--batch-size",
             conf["batch"], "--amp", "bf16", "--channels-last", "--workers", cfg["train_workers"],
             "--epochs", 2, "--steps-per-epoch", conf["steps"], "--device", cfg["device"],
             "--json", summary_path, "--out", work / f"run-{name}", "--no-progress"],
            budget.left() - 20, str(work))  # fmt: skip
    s = json.loads(summary_path.read_text())
    return {"images_per_s": s["train_images_per_s"], "data_wait_fraction":
            s["data_wait_fraction"], "peak_memory_mb": s["peak_memory_mb"],
            "memory_kind": s["memory_kind"], "seconds": s["seconds"]}  # fmt: skip


def step_train(cfg: dict, packed: str, photos: str, work: Path, budget: Budget) -> dict:
    from gpu_check_train import synthetic_rate, train_peer

    out = []
    for conf in cfg["train"]:
        row: dict = {"config": conf, "workers": cfg["train_workers"]}
        out.append(row)
        for key, fn in (
            ("augpipe", lambda c=conf: train_augpipe(c, cfg, packed, work, budget)),
            ("synthetic", lambda c=conf: synthetic_rate(c, cfg["device"], cfg["synthetic_steps"])),
            ("peer", lambda c=conf: train_peer(c, cfg, photos, packed, budget)),
        ):
            if budget.left() < 45:
                row[key] = {"skipped": "time limit"}
                continue
            log(f"train {conf['model']} {conf['res']} px: {key}")
            row[key] = guarded(fn)
    return {"runs": out}


# ------------------------------------------------------------------------------ bench, cudnn


def step_bench(cfg: dict, packed: str, work: Path, budget: Budget) -> dict:
    out = []
    for conf in cfg["bench"]:
        if budget.left() < 60:
            out.append({"config": conf, "skipped": "time limit"})
            continue
        path = work / f"bench-{conf['model']}-{conf['res']}.json"
        args = ["bench", packed, "--device", cfg["device"], "--model", conf["model"], "--res",
                conf["res"], "--batch-size", conf["batch"], "--workers", cfg["bench_workers"],
                "--seconds", cfg["bench_seconds"], "--amp", "bf16", "--channels-last",
                "--json", path, "--quiet"]  # fmt: skip
        res = guarded(lambda: run_cli(args, budget.left() - 20, str(work)))  # noqa: B023
        if "error" in res:
            out.append({"config": conf, **res})
            continue
        data = json.loads(path.read_text())
        out.append({"config": conf, "text": res["value"].stdout, "bottleneck":
                    data.get("bottleneck"), "transfer": data["stages"].get("transfer"),
                    "model": data["stages"].get("model"), "end_to_end": data.get("end_to_end"),
                    "verdict": data.get("verdict")})  # fmt: skip
    return {"runs": out}


def step_cudnn(cfg: dict, budget: Budget) -> dict:
    from gpu_check_train import synthetic_rate

    c = cfg["cudnn"]
    out = {"config": c}
    for flag in (True, False):
        key = "benchmark_on" if flag else "benchmark_off"
        if budget.left() < 30:
            out[key] = {"skipped": "time limit"}
            continue
        log(f"cudnn.benchmark={flag}: {c['model']} {c['res']} px")
        out[key] = guarded(lambda: synthetic_rate(c, cfg["device"], c["steps"], flag))  # noqa: B023
    return out


# ------------------------------------------------------------------------------------- main


def guarded(fn) -> dict:
    """``fn()``'s dict (or ``{"value": ...}``), or ``{"error": ...}``: one step's failure is
    reported and the rest still runs."""
    try:
        value = fn()
    except Exception as exc:  # noqa: BLE001 - report everything, stop nothing
        log(f"error: {exc!r}")
        return {"error": f"{type(exc).__name__}: {exc}"[:1500],
                "traceback": traceback.format_exc()[-2000:]}  # fmt: skip
    return value if isinstance(value, dict) else {"value": value}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--work", default=None, help="scratch folder (default: OUT/../gpu_check_work)")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes")
    ap.add_argument("--budget", type=float, default=None, help="hard limit in seconds")
    ap.add_argument("--only", default=",".join(STEPS), help=f"comma list of {','.join(STEPS)}")
    ap.add_argument("--photos-src", default=None, help="folder of real photos to cut a corpus")
    ap.add_argument("--data", default=None, help="an existing packed dataset (skips corpus)")
    ap.add_argument("--photos", default=None, help="its ImageFolder of JPEGs (for the peer)")
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent))
    args = ap.parse_args(argv)
    mode = "dry" if args.dry_run else "device"
    cfg = SIZES[mode]
    budget = Budget(args.budget if args.budget else (600.0 if args.dry_run else 360.0))
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else out_dir.parent / "gpu_check_work"
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"mode": mode, "sizes": cfg, "budget_s": budget.end - budget.start,
                     "steps": {}}  # fmt: skip
    results["environment"] = guarded(lambda: environment(cfg["device"]))

    def save() -> None:
        results["elapsed_s"] = budget.elapsed()
        report.write(results, out_dir)

    save()
    if cfg["device"] == "cuda" and not results["environment"].get("cuda"):
        results["fatal"] = "torch.cuda.is_available() is False: run with --dry-run on a CPU"
        save()
        print(report.summary(results))
        return 1
    packed, photos = args.data, args.photos
    if packed is None:
        results["steps"]["corpus"] = c = guarded(lambda: step_corpus(cfg, args, work, budget))
        packed, photos = c.get("packed"), c.get("photos")
        save()
    if packed is None:
        print(report.summary(results))
        return 1
    resolutions = sorted({cfg["loader"]["res"], *(t["res"] for t in cfg["train"])})
    if only & {"loader", "train", "bench"}:
        results["numba_warmup_s"] = guarded(lambda: warm_numba(packed, resolutions)).get("value")
    steps = {
        "loader": lambda: step_loader(cfg, packed, budget),
        "train": lambda: step_train(cfg, packed, photos, work, budget),
        "bench": lambda: step_bench(cfg, packed, work, budget),
        "cudnn": lambda: step_cudnn(cfg, budget),
    }
    for name, fn in steps.items():
        if name not in only:
            continue
        if budget.left() < 20:
            results["steps"][name] = {"skipped": "time limit", "config": cfg.get(name)}
        else:
            log(f"step {name} ({budget.left():.0f} s left)")
            results["steps"][name] = guarded(fn)
        save()
    print(report.summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
