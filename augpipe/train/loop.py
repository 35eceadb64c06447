"""One training epoch and one evaluation pass, with honest data-wait timing.

Data wait = time blocked in ``next(loader)``; step time = the whole step including that wait.
On CUDA the step ends with ``torch.cuda.synchronize()``: otherwise kernels still queued on the
GPU would make the next ``next(loader)`` look slow (or fast) for the wrong reason, and the
fraction would not be the GPU's idle share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from augpipe.train.tta import predict


@dataclass
class StepContext:
    device: torch.device
    amp_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    channels_last: bool = False

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def prepare(self, images: torch.Tensor, labels: torch.Tensor):
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        if not images.is_floating_point():  # a loader that hands over uint8: scale only
            images = images.float().div_(255.0)
        if self.channels_last and images.ndim == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


@dataclass
class EpochSums:
    """Running sums of one epoch's training. A checkpoint keeps them (``to_state``), so an epoch
    resumed mid-way reports the same loss and accuracy as the uninterrupted one."""

    loss_sum: torch.Tensor  # float64, on the device
    correct: torch.Tensor  # int64, on the device
    images: int = 0
    steps: int = 0
    wait_s: float = 0.0
    seconds: float = 0.0

    @classmethod
    def zeros(cls, device: torch.device) -> EpochSums:
        return cls(
            torch.zeros((), dtype=torch.float64, device=device),
            torch.zeros((), dtype=torch.int64, device=device),
        )

    def to_state(self) -> dict[str, torch.Tensor]:
        return {
            "sum_loss": self.loss_sum.detach().cpu().reshape(1),
            "sum_counts": torch.tensor([int(self.correct), self.images, self.steps]),
            "sum_times": torch.tensor([self.wait_s, self.seconds], dtype=torch.float64),
        }

    @classmethod
    def from_state(cls, state: dict, device: torch.device) -> EpochSums:
        correct, images, steps = (int(v) for v in state["sum_counts"].tolist())
        wait_s, seconds = state["sum_times"].tolist()
        return cls(
            state["sum_loss"].to(device, torch.float64).reshape(()),
            torch.tensor(correct, dtype=torch.int64, device=device),
            images,
            steps,
            wait_s,
            seconds,
        )


def train_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    scheduler,
    criterion: nn.Module,
    ctx: StepContext,
    max_steps: int | None = None,
    on_step: Callable[[int, float, float], None] | None = None,
    sums: EpochSums | None = None,
    stop: Callable[[], bool] | None = None,
    after_step: Callable[[EpochSums], None] | None = None,
) -> dict:
    """Returns sums: ``images``, ``loss_sum``, ``correct``, ``wait_s``, ``seconds``, ``steps``,
    and ``interrupted`` (``stop()`` said so before the epoch's last step).

    ``sums`` continues an epoch resumed mid-way (``steps`` of its ``max_steps`` already done; the
    loader is positioned after them). ``stop()`` is asked before every step, ``after_step(sums)``
    runs after every step (periodic checkpoints). ``on_step(step, loss, wait_fraction_so_far)``
    is called every 10 steps and at the end (it costs a device sync to read the loss).
    """
    sums = EpochSums.zeros(ctx.device) if sums is None else sums
    wait = 0.0
    steps = sums.steps
    interrupted = False
    it = iter(loader)
    t_start = time.perf_counter()
    while max_steps is None or steps < max_steps:
        if stop is not None and stop():
            interrupted = True
            break
        t0 = time.perf_counter()
        try:
            images, labels = next(it)
        except StopIteration:
            break
        wait += time.perf_counter() - t0
        images, labels = ctx.prepare(images, labels)
        with ctx.autocast():
            logits = model(images)
            loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        if ctx.scaler is not None:
            ctx.scaler.scale(loss).backward()
            ctx.scaler.step(optimizer)
            ctx.scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        b = labels.shape[0]
        sums.loss_sum += loss.detach().double() * b
        hard = labels.argmax(1) if labels.ndim == 2 else labels  # Mixup/CutMix: soft targets
        sums.correct += (logits.detach().argmax(1) == hard).sum()
        sums.images += b
        steps += 1
        sums.steps = steps
        ctx.sync()
        if after_step is not None:  # the sums must be current: it may save them
            now = time.perf_counter()
            sums.wait_s += wait
            sums.seconds += now - t_start
            wait, t_start = 0.0, now
            after_step(sums)  # its time (a checkpoint) counts as training time
        if on_step is not None and steps % 10 == 0:
            on_step(steps, sums.loss_sum.item() / sums.images, _fraction(sums, wait, t_start))
    sums.wait_s += wait
    sums.seconds += time.perf_counter() - t_start
    del it  # an unfinished iteration (max_steps) is abandoned here
    out = {
        "images": sums.images,
        "loss_sum": sums.loss_sum.item(),
        "correct": int(sums.correct.item()),
        "wait_s": sums.wait_s,
        "seconds": sums.seconds,
        "steps": steps,
        "interrupted": interrupted,
    }
    if on_step is not None and steps:
        on_step(steps, out["loss_sum"] / max(sums.images, 1), sums.wait_s / max(sums.seconds, 1e-9))
    return out


def _fraction(sums: EpochSums, wait: float, t_start: float) -> float:
    seconds = sums.seconds + time.perf_counter() - t_start
    return (sums.wait_s + wait) / max(seconds, 1e-9)


@torch.inference_mode()
def evaluate(
    model: nn.Module, loader, mode: str, ctx: StepContext, stop: Callable[[], bool] | None = None
) -> dict:
    """Sums over the loader: ``n``, ``top1``, ``top5`` (correct counts) and ``loss_sum``;
    ``interrupted`` when ``stop()`` (asked before every batch) broke the pass off.

    The loss is the negative log of the averaged probability of the true class.
    """
    model.eval()
    n = top1 = top5 = 0
    loss_sum = 0.0
    for images, labels in loader:
        if stop is not None and stop():
            return {"n": n, "top1": top1, "top5": top5, "loss_sum": loss_sum, "interrupted": True}
        images, labels = ctx.prepare(images, labels)
        with ctx.autocast():
            probs = predict(model, images, mode, ctx.channels_last)
        k = min(5, probs.shape[1])
        best = probs.topk(k, dim=1).indices
        hit = best == labels[:, None]
        top1 += int(hit[:, 0].sum())
        top5 += int(hit.any(dim=1).sum())
        true_p = probs.gather(1, labels[:, None]).clamp_min(1e-12)
        loss_sum += float(-true_p.log().sum())
        n += labels.shape[0]
    return {"n": n, "top1": top1, "top5": top5, "loss_sum": loss_sum, "interrupted": False}
