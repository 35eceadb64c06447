"""torchrun / DistributedDataParallel setup: gloo on the CPU, nccl on CUDA.

``torchrun --nproc_per_node=N -m augpipe train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK; the
Loader then reads rank and world size from ``torch.distributed`` and gives each rank its own
part of every epoch. Only rank 0 writes files; metrics are summed across ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str) -> DistInfo:
    """Join the process group when launched by torchrun with more than one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if device == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return DistInfo(rank, world_size, local_rank)


def world_size_from_env() -> int:
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def partition_check(indices, device: torch.device | None = None) -> tuple[list[int], int]:
    """(samples per rank, indices seen by more than one rank) for this rank's epoch indices."""
    import numpy as np

    if not _active():
        return [len(indices)], 0
    mine = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    counts = gather_tensors({"n": torch.tensor([len(mine)])}, device)
    longest = max(int(c["n"]) for c in counts)
    padded = torch.full((longest,), -1, dtype=torch.int64)
    padded[: len(mine)] = mine
    parts = [r["i"][: int(c["n"])] for r, c in zip(gather_tensors({"i": padded}, device), counts)]
    flat = torch.cat(parts)
    return [len(p) for p in parts], int(len(flat) - len(torch.unique(flat)))


def gather_tensors(
    state: dict[str, torch.Tensor], device: torch.device | None = None
) -> list[dict[str, torch.Tensor]]:
    """Every rank's ``state`` (same keys and shapes on all ranks), on the CPU, by rank.

    Plain tensor collectives (no pickled objects); ``device`` is where the collective runs
    (a CUDA device for nccl). Without a process group: ``[state]``.
    """
    if not _active():
        return [{k: v.cpu() for k, v in state.items()}]
    out: list[dict[str, torch.Tensor]] = [{} for _ in range(dist.get_world_size())]
    for key in sorted(state):
        t = state[key].to(device or "cpu").contiguous()
        parts = [torch.empty_like(t) for _ in out]
        dist.all_gather(parts, t)
        for rank, part in enumerate(parts):
            out[rank][key] = part.cpu()
    return out


def barrier() -> None:
    if _active():
        dist.barrier()


def all_reduce(values: list[float], device: torch.device, op: str = "sum") -> list[float]:
    """Sum (or max) a few scalars across ranks; the identity without a process group."""
    if not _active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t.tolist()
