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


def train_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    scheduler,
    criterion: nn.Module,
    ctx: StepContext,
    max_steps: int | None = None,
    on_step: Callable[[int, float, float], None] | None = None,
) -> dict:
    """Returns sums: ``images``, ``loss_sum``, ``correct``, ``wait_s``, ``seconds``, ``steps``.

    ``on_step(step, loss, wait_fraction_so_far)`` is called every 10 steps and at the end
    (it costs a device sync to read the loss).
    """
    loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
    correct = torch.zeros((), dtype=torch.int64, device=ctx.device)
    n_images = 0
    wait = 0.0
    steps = 0
    it = iter(loader)
    t_start = time.perf_counter()
    while max_steps is None or steps < max_steps:
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
        loss_sum += loss.detach().double() * b
        correct += (logits.detach().argmax(1) == labels).sum()
        n_images += b
        steps += 1
        ctx.sync()
        if on_step is not None and steps % 10 == 0:
            on_step(steps, loss_sum.item() / n_images, wait / (time.perf_counter() - t_start))
    seconds = time.perf_counter() - t_start
    del it  # an unfinished iteration (max_steps) is abandoned here
    out = {
        "images": n_images,
        "loss_sum": loss_sum.item(),
        "correct": int(correct.item()),
        "wait_s": wait,
        "seconds": seconds,
        "steps": steps,
    }
    if on_step is not None and steps:
        on_step(steps, out["loss_sum"] / n_images, wait / max(seconds, 1e-9))
    return out


@torch.inference_mode()
def evaluate(model: nn.Module, loader, mode: str, ctx: StepContext) -> dict:
    """Sums over the loader: ``n``, ``top1``, ``top5`` (correct counts) and ``loss_sum``.

    The loss is the negative log of the averaged probability of the true class.
    """
    model.eval()
    n = top1 = top5 = 0
    loss_sum = 0.0
    for images, labels in loader:
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
    return {"n": n, "top1": top1, "top5": top5, "loss_sum": loss_sum}
