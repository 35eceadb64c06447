"""Run-directory outputs: ``config.json``, ``metrics.jsonl``, ``model.pt``, TensorBoard.

Only the main rank writes. ``peak_memory_mb`` reports the device's peak allocation on CUDA and
the process's peak resident set size on the CPU (the main process only, not loader workers).
"""

from __future__ import annotations

import json
import math
import resource
import sys
from pathlib import Path

import torch
from torch import nn

from augpipe.errors import ConfigError


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """(megabytes, what was measured)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes
    return rss / (2**20 if sys.platform == "darwin" else 2**10), "cpu_peak_rss"


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model under DDP and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


class RunLog:
    """Writes a run's files; every method is a no-op when ``enabled`` is False (ranks > 0)."""

    def __init__(
        self,
        run_dir: str | Path,
        enabled: bool = True,
        tensorboard: bool = False,
        records: list[dict] | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        # a resumed run: exactly the epochs its checkpoint had logged (a line written after
        # that checkpoint belongs to an epoch the resumed run repeats)
        tmp = self.metrics_path.with_name("metrics.jsonl.tmp")
        tmp.write_text("".join(json.dumps(_clean(r)) + "\n" for r in records or []))
        tmp.replace(self.metrics_path)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "--tensorboard: expected the tensorboard package, which is not installed; "
                    "pip install 'augpipe[tensorboard]' or drop --tensorboard"
                ) from None
            # purge_step: TensorBoard hides what an interrupted run logged after its checkpoint
            purge = len(records) + 1 if records else None
            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge)

    def write_config(self, config: dict) -> None:
        if self.enabled:
            _write_json(self.run_dir / "config.json", config)

    def log_epoch(self, record: dict, model: nn.Module | None = None) -> None:
        if not self.enabled:
            return
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(_clean(record)) + "\n")
        if self._tb is not None:
            step = record["epoch"]
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self._tb.add_scalar(key, value, step)
            if model is not None:
                for name, p in unwrap(model).named_parameters():
                    self._tb.add_histogram(name, p.detach().float().cpu(), step)
            self._tb.flush()

    def save_model(self, model: nn.Module) -> Path | None:
        if not self.enabled:
            return None
        path = self.run_dir / "model.pt"
        state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
        torch.save(state, path)
        return path

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def write_summary(path: str | Path, summary: dict) -> None:
    _write_json(Path(path), summary)


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_clean(obj), indent=2) + "\n")
    tmp.replace(path)


def _clean(obj):
    """JSON-safe: NaN/inf become null (json.dumps would write invalid 'NaN')."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj
