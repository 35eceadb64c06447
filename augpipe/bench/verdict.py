"""The bottleneck verdict: a pure function of the stage figures (no timing, no I/O).

Every capacity is in images per second for the whole machine at the chosen worker count:

- ``disk``: shard read rate — cold (page cache dropped) when the shards do not fit in memory,
  warm otherwise (after the first epoch they are served from the page cache);
- ``decode``: decode-only rate per core × the worker processes that can run at once;
- ``augment``: decode + augment per core × those workers (the CPU work of one sample);
- ``loader``: the Loader's measured rate at the best worker count (CPU work + hand-over);
- ``transfer``: host→device copy with pinned memory (CUDA only);
- ``model``: forward + backward on synthetic data already on the device.

The data side delivers min(loader, disk, transfer). If that is at least the model's rate, the
model is the limit; otherwise the slowest data stage is, and inside the loader the stage that
takes most of a worker's time per image (decode vs augment) or, when the loader falls well short
of its workers' CPU capacity, the loader's own hand-over (``loader``).

    >>> f = StageFigures(decode_per_core=2000, decode_augment_per_core=1500,
    ...                  loader={1: 1400, 2: 2700}, model=300, cores=2)
    >>> decide(f).bottleneck
    'model'
"""

from __future__ import annotations

from dataclasses import dataclass, field

BOTTLENECKS = ("disk", "decode", "augment", "loader", "transfer", "model")

# The loader is "the limit itself" when it reaches less than this share of its workers' CPU
# capacity (decode + augment per core x workers): the rest is lost to hand-over and idling.
LOADER_EFFICIENCY_FLOOR = 0.7
MEMORY_HIGH = 0.9  # peak device memory above this share of the device: advise a smaller batch


@dataclass
class StageFigures:
    """Measured stage capacities (images/s) and the context the verdict needs."""

    decode_per_core: float
    decode_augment_per_core: float
    loader: dict[int, float]  # workers -> images/s
    model: float
    cores: int
    disk_cold: float | None = None
    disk_warm: float | None = None
    fits_in_cache: bool = True
    transfer_pinned: float | None = None
    transfer_pageable: float | None = None
    device: str = "cpu"
    amp: str = "none"
    channels_last: bool = False
    batch_size: int = 0
    encoding: str = "jpeg"
    peak_memory: int | None = None  # bytes, CUDA only
    device_memory: int | None = None  # bytes, CUDA only
    end_to_end: float | None = None
    data_wait_fraction: float | None = None


@dataclass
class Verdict:
    bottleneck: str
    rate: float  # images/s the limiting stage allows
    headroom: float  # how many times faster the rest could go if this stage were removed
    capacities: dict[str, float]
    reasons: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "bottleneck": self.bottleneck,
            "rate": self.rate,
            "headroom": self.headroom,
            "capacities": self.capacities,
            "reasons": self.reasons,
            "advice": self.advice,
        }


def best_workers(loader: dict[int, float]) -> int:
    """The worker count with the highest measured rate (the fewest workers on ties)."""
    return max(sorted(loader), key=lambda w: loader[w])


def scaling_gain(loader: dict[int, float], cores: int) -> tuple[int, float] | None:
    """(suggested workers, expected images/s) from extrapolating the scaling curve up to
    ``cores`` workers, or None when the curve is flat or there are no more cores to use."""
    ws = sorted(loader)
    top = ws[-1]
    if top >= cores or len(ws) < 2:
        if len(ws) == 1 and top < cores:
            # One point: assume linear scaling per worker (an upper bound).
            return cores, loader[top] * cores / top
        return None
    prev = ws[-2]
    per_worker = (loader[top] - loader[prev]) / (top - prev)
    if per_worker <= 0.05 * loader[top] / top:  # the curve has flattened: more workers won't help
        return None
    return cores, loader[top] + per_worker * (cores - top)


def capacities(f: StageFigures) -> dict[str, float]:
    w = best_workers(f.loader)
    workers_at_once = max(1, min(w, f.cores))
    caps = {
        "decode": f.decode_per_core * workers_at_once,
        "augment": f.decode_augment_per_core * workers_at_once,
        "loader": f.loader[w],
        "model": f.model,
    }
    disk = f.disk_warm if f.fits_in_cache else f.disk_cold
    if disk is None:
        disk = f.disk_cold if f.disk_cold is not None else f.disk_warm
    if disk is not None:
        caps["disk"] = disk
    if f.device == "cuda" and f.transfer_pinned is not None:
        caps["transfer"] = f.transfer_pinned
    return caps


def _data_stage(f: StageFigures, caps: dict[str, float]) -> str:
    """Which data-side stage limits the delivered rate."""
    delivered = {k: caps[k] for k in ("loader", "disk", "transfer") if k in caps}
    slowest = min(delivered, key=lambda k: delivered[k])
    if slowest != "loader":
        return slowest
    if caps["loader"] < LOADER_EFFICIENCY_FLOOR * caps["augment"]:
        return "loader"
    # The workers are busy with CPU work: blame the larger share of a sample's time.
    t_decode = 1.0 / f.decode_per_core
    t_augment = max(0.0, 1.0 / f.decode_augment_per_core - t_decode)
    return "decode" if t_decode >= t_augment else "augment"


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def decide(f: StageFigures) -> Verdict:
    """The limiting stage, its headroom, the numbers behind it and what to change."""
    if not f.loader:
        raise ValueError("decide: the loader scaling curve is empty")
    caps = capacities(f)
    data_rate = min(caps[k] for k in ("loader", "disk", "transfer") if k in caps)
    reasons = [
        "capacities (images/s): " + ", ".join(f"{k} {_fmt(v)}" for k, v in caps.items()),
    ]
    if f.model <= data_rate:
        kind, rate = "model", f.model
        headroom = data_rate / f.model if f.model > 0 else float("inf")
        reasons.append(
            f"the data side delivers {_fmt(data_rate)} images/s, {headroom:.1f}x what the model "
            f"consumes ({_fmt(f.model)} images/s at batch {f.batch_size}, {f.device}, amp {f.amp})"
        )
    else:
        kind = _data_stage(f, caps)
        rate = caps["loader"] if kind in ("decode", "augment") else caps[kind]
        headroom = f.model / rate if rate > 0 else float("inf")
        reasons.append(
            f"the model could consume {_fmt(f.model)} images/s, {headroom:.1f}x what the data "
            f"side delivers ({_fmt(data_rate)} images/s); limiting stage: {kind}"
        )
    if f.data_wait_fraction is not None and f.end_to_end is not None:
        reasons.append(
            f"end to end: {_fmt(f.end_to_end)} images/s, {f.data_wait_fraction:.0%} of the step "
            f"time waiting for data"
        )
    if f.device == "cpu":
        reasons.append(
            f"device cpu: the model and the loader's workers share the same {f.cores} cores, "
            "so end to end is slower than either stage alone"
        )
    advice = _advice(kind, f, caps, headroom)
    return Verdict(kind, rate, headroom, caps, reasons, advice)


def _advice(kind: str, f: StageFigures, caps: dict[str, float], headroom: float) -> list[str]:
    out: list[str] = []
    w = best_workers(f.loader)
    if kind == "model":
        if f.device == "cuda" and f.amp == "none":
            out.append("use mixed precision (--amp bf16, or fp16) on the GPU: tensor cores")
        if not f.channels_last:
            out.append("use channels_last memory format (Loader(..., channels_last=True))")
        if f.device == "cpu":
            out.append("train on a GPU: on the CPU the model is far slower than the data side")
        if headroom > 1.5 and len(f.loader) > 1:
            need = min((n for n in sorted(f.loader) if f.loader[n] >= f.model), default=w)
            out.append(
                f"the data side has {headroom:.1f}x headroom: {need} worker(s) suffice "
                f"({_fmt(f.loader[need])} images/s); spare cores can go to the model"
            )
    elif kind in ("decode", "augment", "loader"):
        gain = scaling_gain(f.loader, f.cores)
        if gain is not None:
            n, expected = gain
            out.append(
                f"use {n} workers (now {w}): the scaling curve predicts about {_fmt(expected)} "
                f"images/s (+{expected / caps['loader'] - 1:.0%})"
            )
        else:
            out.append(
                f"more workers won't help: {w} worker(s) already use the {f.cores} cores "
                "(or the scaling curve is flat)"
            )
        if kind == "decode":
            if f.encoding == "jpeg":
                out.append(
                    "decoding dominates: pack with --format raw (no decode, more disk) or store "
                    "smaller images (--short-side 256..320) so each decode does less work"
                )
            else:
                out.append("store smaller images (--short-side) to cut the bytes each read copies")
        elif kind == "augment":
            out.append(
                "augmentation dominates: drop or simplify the costliest ops (affine/lens warps, "
                "colour jitter), or crop to a smaller output resolution"
            )
        else:
            out.append(
                f"the loader reaches {caps['loader'] / caps['augment']:.0%} of its workers' CPU "
                "capacity: raise prefetch, use a larger batch per worker, or check that the "
                "consumer is not holding batches"
            )
    elif kind == "disk":
        out.append(
            "the shards do not stay in the page cache: put them on faster storage (local NVMe), "
            "add memory, or store smaller images (--short-side / JPEG instead of raw)"
        )
    elif kind == "transfer":
        pinned, pageable = f.transfer_pinned or 0.0, f.transfer_pageable or 0.0
        out.append(
            f"host->device copy limits: keep batches uint8 on the host and normalise on the "
            f"device; use pinned memory (pinned {_fmt(pinned)} vs pageable {_fmt(pageable)} "
            "images/s) and a lower resolution if possible"
        )
    if f.peak_memory and f.device_memory and f.peak_memory > MEMORY_HIGH * f.device_memory:
        out.append(
            f"peak device memory {f.peak_memory / 2**30:.1f} GiB is "
            f"{f.peak_memory / f.device_memory:.0%} of the device: use a smaller batch "
            "(or --amp to halve activations)"
        )
    return out
