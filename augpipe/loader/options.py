"""Validation of the Loader's output options (dtype, normalize, output, device, start method)."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np

from augpipe.errors import ConfigError, ConfigTypeError, bad_param

DTYPE_NAMES = ("uint8", "float32", "float16", "bfloat16")
_ALIASES = {
    "float": "float32",
    "half": "float16",
    "bf16": "bfloat16",
    "fp16": "float16",
    "fp32": "float32",
}


def dtype_name(dtype, output: str, normalize) -> str:
    """One of DTYPE_NAMES; ``None`` means uint8, or float32 when normalising."""
    if dtype is None:
        return "float32" if normalize is not None else "uint8"
    name = str(dtype).removeprefix("torch.")
    if not isinstance(dtype, str):
        try:
            name = np.dtype(dtype).name
        except TypeError:
            pass
    name = _ALIASES.get(name, name)
    if name not in DTYPE_NAMES:
        raise bad_param("dtype", f"one of {DTYPE_NAMES} (or the torch/numpy dtype)", dtype)
    if name == "bfloat16" and output == "numpy":
        raise bad_param(
            "dtype",
            "uint8, float32 or float16 with output='numpy'",
            dtype,
            "NumPy has no bfloat16; use output='torch' or dtype='float32'",
        )
    if name == "uint8" and normalize is not None:
        raise bad_param(
            "dtype",
            "a float dtype when normalize is set",
            dtype,
            "drop dtype (float32 is used) or drop normalize",
        )
    return name


def mean_std(normalize, dataset, channels: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and std on the 0..255 scale of uint8 pixels, or None.

    ``normalize="dataset"`` uses ``dataset.stats`` (computed at pack time on [0, 1] pixels);
    a ``(mean, std)`` pair is also on the [0, 1] scale, as torchvision's Normalize expects
    after ToTensor, e.g. ``((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))``.
    """
    if normalize is None:
        return None
    if isinstance(normalize, str):
        if normalize != "dataset":
            raise bad_param("normalize", "None, 'dataset' or a (mean, std) pair", normalize)
        mean, std = dataset.stats["mean"], dataset.stats["std"]
    else:
        try:
            mean, std = normalize
        except (TypeError, ValueError):
            raise bad_param(
                "normalize", "None, 'dataset' or a (mean, std) pair", normalize
            ) from None
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    if mean.shape != (channels,) or std.shape != (channels,):
        raise bad_param(
            "normalize",
            f"mean and std of {channels} values each",
            normalize if not isinstance(normalize, str) else (mean, std),
        )
    if not np.all(np.isfinite(std)) or np.any(std <= 0):
        raise bad_param(
            "normalize",
            "std values > 0",
            tuple(std),
            "a channel with zero spread cannot be normalised",
        )
    return (mean * 255.0).astype(np.float32), (std * 255.0).astype(np.float32)


def check_choice(name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise bad_param(name, f"one of {choices}", value)


def check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigTypeError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise bad_param(name, f"an integer >= {minimum}", value)
    return int(value)


def default_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


START_METHODS = ("fork", "spawn")


def check_start_method(value) -> str | None:
    """None (choose when the workers start), "fork" or "spawn"."""
    if value == "forkserver":
        raise bad_param(
            "start_method",
            "None, 'fork' or 'spawn'",
            value,
            "'spawn' starts fresh interpreters of augpipe's own worker entry point (the old "
            "'forkserver' re-imported your script in every worker)",
        )
    if value is not None:
        check_choice("start_method", value, START_METHODS)
    return value


def fork_is_safe() -> bool:
    """Whether forking this process now is safe: Linux, and no other Python thread running.

    Forking copies only the calling thread: a lock held by another Python thread at that
    moment stays locked forever in the child (FFCV's hang). Native pools such as torch's
    OpenMP threads are not counted — the workers never use torch.
    """
    return sys.platform.startswith("linux") and threading.active_count() == 1


def distributed_defaults() -> tuple[int, int]:
    """(rank, world_size) from torch.distributed when it is initialised, else (0, 1)."""
    torch = sys.modules.get("torch")  # a NumPy-only user never pays for importing torch
    if torch is not None:
        dist = getattr(torch, "distributed", None)
        if dist is not None and dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    return 0, 1


def resolve_rank(rank, world_size) -> tuple[int, int]:
    d_rank, d_world = distributed_defaults()
    world_size = d_world if world_size is None else check_int("world_size", world_size, 1)
    rank = (d_rank if world_size == d_world else 0) if rank is None else rank
    rank = check_int("rank", rank, 0)
    if rank >= world_size:
        raise ConfigError(f"rank: expected 0 <= rank < world_size={world_size}, got {rank}")
    return rank, world_size
