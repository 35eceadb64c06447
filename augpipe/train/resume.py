"""Training checkpoints in the run directory: atomic writes, ``weights_only`` reads, resume checks.

``RUN_DIR/checkpoints/ckpt-STEP-EPOCH.pt``: STEP optimiser steps done, EPOCH the epoch in
progress (0-based; equal to the number of epochs finished and logged). A checkpoint is a dict of
tensors and plain containers only (it loads with ``torch.load(weights_only=True)``: a checkpoint
from a stranger cannot run code). It is written to a temporary file, fsynced, renamed, and the
directory fsynced, so a kill at any instant leaves the previous checkpoint intact; the newest
``keep`` are kept.

>>> from augpipe.train.resume import latest, read
>>> path = latest("runs/r18")          # newest checkpoint, or None
>>> read(path)["step"]
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sys
from pathlib import Path

import numpy as np
import torch

from augpipe.errors import CheckpointError, ConfigError

FORMAT = "augpipe-train-checkpoint"
VERSION = 1
SUBDIR = "checkpoints"
_NAME = re.compile(r"ckpt-(\d{9})-(\d{5})\.pt")
_TMP_PREFIX = ".tmp-"

# config keys that may differ on resume: where and how fast the run goes, what it prints. The
# datasets are compared by manifest hash and the --pipeline file by the pipeline it gives
# ("train_pipeline"), not by path (files may move).
MAY_CHANGE = frozenset({"data", "val", "out", "json", "progress", "tensorboard", "workers",
                        "prefetch", "device", "compile", "channels_last", "cudnn_benchmark",
                        "checkpoint_every", "keep", "resume", "pipeline"})  # fmt: skip
_FLAGS = {"flip": "--no-flip (flip)", "zero_init_residual": "--no-zero-init-residual"}


def manifest_hash(dataset) -> str:
    """SHA-256 of the dataset's manifest (shard list with checksums, classes, statistics)."""
    text = json.dumps(dataset.manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def pipeline_text(pipeline) -> str:
    """The training pipeline as canonical JSON text (``Compose.to_dict``)."""
    return json.dumps(pipeline.to_dict(), sort_keys=True, separators=(",", ":"))


def checkpoint_dir(run_dir) -> Path:
    return Path(run_dir) / SUBDIR


def name_for(step: int, epoch: int) -> str:
    return f"ckpt-{step:09d}-{epoch:05d}.pt"


def list_checkpoints(run_dir) -> list[Path]:
    """The run's checkpoints, oldest first (temporary files of interrupted writes excluded)."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    found = [(m.groups(), p) for p in d.iterdir() if (m := _NAME.fullmatch(p.name))]
    return [p for (s, e), p in sorted(found, key=lambda x: (int(x[0][0]), int(x[0][1])))]


def latest(run_dir) -> Path | None:
    paths = list_checkpoints(run_dir)
    return paths[-1] if paths else None


def save(run_dir, state: dict, keep: int) -> Path:
    """Write ``state`` atomically as the checkpoint for ``state["step"]``/``state["epoch"]``."""
    d = checkpoint_dir(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    final = d / name_for(int(state["step"]), int(state["epoch"]))
    tmp = d / f"{_TMP_PREFIX}{final.name}.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(d)
    _prune(d, keep)
    return final


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _prune(d: Path, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints; drop temporary files of writes that were killed."""
    for old in list_checkpoints(d.parent)[:-keep]:
        old.unlink(missing_ok=True)
    for stale in d.glob(f"{_TMP_PREFIX}*"):
        stale.unlink(missing_ok=True)


def read(path) -> dict:
    """Load one checkpoint with ``weights_only=True``; CheckpointError if it is not one."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, damaged, or holding objects weights_only refuses
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(
            f"--resume: checkpoint {str(path)!r} is unreadable ({type(exc).__name__}: "
            f"{first[:200]})"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("version") != VERSION:
        raise CheckpointError(
            f"--resume: {str(path)!r} is not an augpipe training checkpoint "
            f"(version {VERSION}); resume from a run directory made by this augpipe"
        )
    return obj


def newest_readable(run_dir) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads; an unreadable newer one is reported and skipped."""
    paths = list_checkpoints(run_dir)
    problems = []
    for path in reversed(paths):
        try:
            return path, read(path)
        except CheckpointError as exc:
            problems.append(str(exc))
            print(f"augpipe train: warning: {exc}; using an older one", file=sys.stderr)
    if paths:
        raise CheckpointError(f"--resume: no checkpoint in {str(run_dir)!r} is readable "
                              f"({problems[0]}); start a new run with another --out")  # fmt: skip
    return None


def set_aside_newer(run_dir, chosen: Path) -> list[Path]:
    """Rename the (unreadable) checkpoints newer than ``chosen`` to ``NAME.unreadable``: kept
    for inspection, never resumed from, and not counted by ``--keep``."""
    paths = list_checkpoints(run_dir)
    newer = paths[paths.index(chosen) + 1 :] if chosen in paths else []
    for path in newer:
        path.replace(path.with_name(path.name + ".unreadable"))
    return newer


def find(cfg) -> tuple[Path, dict] | None:
    """The checkpoint ``cfg.resume`` asks for (None: start a new run).

    ``resume=None`` refuses a run directory that already holds checkpoints (a new run would mix
    with them); ``"auto"`` continues when there is one; a path must hold one.
    """
    found = newest_readable(cfg.out) if list_checkpoints(cfg.out) else None
    if cfg.resume is None:
        if found is not None:
            raise ConfigError(
                f"--out: {cfg.out!r} already holds checkpoints of a run; pass --resume "
                f"{cfg.out} (or --resume auto) to continue it, or choose another --out"
            )
        return None
    if found is None and cfg.resume != "auto":
        raise CheckpointError(
            f"--resume: expected a checkpoint in {str(checkpoint_dir(cfg.out))!r}, found none; "
            "use --resume auto to start the run when there is none"
        )
    return found


def check_compatible(ckpt: dict, config: dict, world_size: int, hashes: dict, path) -> None:
    """Refuse a checkpoint from another dataset, model or incompatible options (one line)."""
    where = f"--resume: checkpoint {str(path)!r}"
    for part, given in hashes.items():
        saved = ckpt["datasets"].get(part)
        if saved != given:
            what = config["data"] if part == "train" or config.get("val") is None else config["val"]
            raise CheckpointError(
                f"{where} was trained on another {part} dataset (manifest sha256 "
                f"{str(saved)[:12]}), {what!r} has {given[:12]}; pass the run's own dataset, "
                "or start a new run with another --out"
            )
    if int(ckpt["world_size"]) != world_size:
        raise CheckpointError(
            f"{where} was written by {int(ckpt['world_size'])} process(es), this run has "
            f"{world_size}; resume with torchrun --nproc_per_node={int(ckpt['world_size'])} "
            "(the data partition and the global batch depend on it)"
        )
    saved = ckpt["config"]
    for key in sorted(set(saved) | set(config)):
        if key in MAY_CHANGE or saved.get(key) == config.get(key):
            continue
        if key == "train_pipeline":
            raise CheckpointError(
                f"{where} was trained with another training pipeline than this command builds "
                "(the run's is RUN_DIR/pipeline.json); pass the run's --pipeline and crop "
                "options, or start a new run with another --out"
            )
        flag = _FLAGS.get(key, "--" + key.replace("_", "-"))
        raise CheckpointError(
            f"{where} was made with {flag} {saved.get(key)!r}, this command has "
            f"{config.get(key)!r}; repeat the run's options (RUN_DIR/config.json) or start a "
            "new run with another --out"
        )


# ------------------------------------------------------------------------------ random states


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """Every random generator a run may use, as tensors: torch (CPU, CUDA), Python, NumPy."""
    _, words, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "rng_torch": torch.get_rng_state(),
        "rng_python": torch.tensor(words, dtype=torch.int64),
        "rng_python_gauss": torch.tensor([gauss is not None, gauss or 0.0], dtype=torch.float64),
        "rng_numpy": torch.from_numpy(keys.astype(np.int64)),
        "rng_numpy_extra": torch.tensor([pos, has_gauss, cached], dtype=torch.float64),
    }
    if device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["rng_torch"].to(torch.uint8))
    has, gauss = state["rng_python_gauss"].tolist()
    random.setstate((3, tuple(state["rng_python"].tolist()), gauss if has else None))
    pos, has_gauss, cached = state["rng_numpy_extra"].tolist()
    keys = state["rng_numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(pos), int(has_gauss), cached))
    if device.type == "cuda" and "rng_cuda" in state:
        torch.cuda.set_rng_state(state["rng_cuda"].to(torch.uint8), device)
