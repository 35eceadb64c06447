"""What bench/gpu_check.py's train step compares ``augpipe train`` with.

``synthetic_rate``: the ceiling, the same model, optimiser, precision and step code on one
batch held on the device (also the cudnn.benchmark on/off step).

``train_peer``: torchvision's ImageFolder + DataLoader, the standard recipe (PIL decode,
RandomResizedCrop, RandomHorizontalFlip, ToTensor, Normalize with the packed dataset's own
mean/std; ``num_workers`` as augpipe's, ``pin_memory``, persistent
workers) feeding the same model, optimiser, precision and step code (``augpipe.train.loop``) as
``augpipe train``; two runs of ``steps`` steps, the first discarded (worker start-up, cuDNN
autotuning). Where torchvision is missing (the CPU dry run here), a stand-in with the same
steps (PIL decode, random-resized crop, flip) keeps this code exercised; the report says which.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np


class _PilFolder:
    """Stand-in for ImageFolder + the v1 transforms, crops drawn by ``augpipe.rng``."""

    def __init__(self, root: str, res: int, mean, std):
        classes = sorted(d.name for d in Path(root).iterdir() if d.is_dir())
        self.items = [(str(p), k) for k, c in enumerate(classes)
                      for p in sorted((Path(root) / c).iterdir())]  # fmt: skip
        self.res = res
        self.mean = np.asarray(mean, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(3, 1, 1)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        import torch
        from PIL import Image

        from augpipe import rng

        path, label = self.items[i]
        img = Image.open(path).convert("RGB")
        w, h = img.size
        u = rng.uniform(0, 0, np.arange(4) + 4 * i, stream=0x9EE7)  # a function of i only
        area = (0.08 + 0.92 * u[0]) * w * h
        cw = int(min(w, max(1, round(np.sqrt(area)))))
        ch = int(min(h, max(1, round(area / cw))))
        x0, y0 = int(u[1] * (w - cw + 1)), int(u[2] * (h - ch + 1))
        img = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((self.res, self.res), Image.BILINEAR)
        x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
        if u[3] < 0.5:
            x = x[:, :, ::-1]
        return torch.from_numpy(np.ascontiguousarray((x - self.mean) / self.std)), label


def peer_dataset(photos: str, res: int, mean, std):
    """(dataset, what it is)."""
    try:
        from torchvision import datasets
        from torchvision import transforms as T
    except ImportError:
        return _PilFolder(photos, res, mean, std), "stand-in (torchvision is not installed here)"
    import torchvision

    tf = T.Compose([T.RandomResizedCrop(res), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize(list(mean), list(std))])  # fmt: skip
    kind = f"torchvision {torchvision.__version__} ImageFolder + DataLoader (PIL, v1 transforms)"
    return datasets.ImageFolder(photos, transform=tf), kind


def train_peer(conf: dict, cfg: dict, photos: str, packed: str, budget) -> dict:
    import torch

    from augpipe.format.dataset import ShardDataset
    from augpipe.models import get_model
    from augpipe.train.loop import StepContext, train_epoch
    from augpipe.train.metrics import peak_memory_mb
    from augpipe.train.optim import build_optimizer, build_scheduler

    ds = ShardDataset(packed)
    mean, std, n_classes = ds.stats["mean"], ds.stats["std"], len(ds.classes)
    ds.close()
    dataset, kind = peer_dataset(photos, conf["res"], mean, std)
    dev = torch.device(cfg["device"])
    workers = cfg["train_workers"]
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=conf["batch"],
        shuffle=True,
        num_workers=workers,
        pin_memory=dev.type == "cuda",
        drop_last=True,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    torch.backends.cudnn.benchmark = True
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    model = get_model(conf["model"], n_classes, zero_init_residual=True).to(dev)
    model.to(memory_format=torch.channels_last)
    opt = build_optimizer(model, lr=0.1 * conf["batch"] / 256)
    sched = build_scheduler(opt, 10**6, 0)
    ctx = StepContext(dev, torch.bfloat16, None, True)
    crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    model.train()
    runs = []
    for _ in range(2):  # the first is the warm-up, as augpipe train's first epoch
        runs.append(train_epoch(model, loader, opt, sched, crit, ctx, conf["steps"]))
        if budget.left() < 30:
            break
    t = runs[-1]
    mem, mem_kind = peak_memory_mb(dev)
    del loader, model, opt
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "dataset": kind,
        "images_per_s": t["images"] / max(t["seconds"], 1e-9),
        "data_wait_fraction": t["wait_s"] / max(t["seconds"], 1e-9),
        "steps": t["steps"],
        "warmup_discarded": len(runs) > 1,
        "peak_memory_mb": mem,
        "memory_kind": mem_kind,
    }


def synthetic_rate(conf: dict, dev: str, steps: int, cudnn_benchmark: bool = True) -> dict:
    """The same model, optimiser and precision stepping on one batch held on the device."""
    import torch

    from augpipe.models import get_model
    from augpipe.train.loop import StepContext, train_epoch
    from augpipe.train.optim import build_optimizer, build_scheduler

    device = torch.device(dev)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    model = get_model(conf["model"], 10, zero_init_residual=True).to(device)
    model.to(memory_format=torch.channels_last)
    opt = build_optimizer(model, lr=0.01)
    sched = build_scheduler(opt, 10**6, 0)
    ctx = StepContext(device, torch.bfloat16, None, True)
    b, res = conf["batch"], conf["res"]
    images = torch.randn(b, 3, res, res, device=device)
    images = images.contiguous(memory_format=torch.channels_last)  # as the loader hands over
    fake = [(images, torch.randint(0, 10, (b,), device=device))]
    crit = torch.nn.CrossEntropyLoss()
    model.train()
    train_epoch(model, fake * 3, opt, sched, crit, ctx)  # warm-up (cuDNN autotuning)
    rates = []
    for _ in range(3):
        t = train_epoch(model, fake * steps, opt, sched, crit, ctx)
        rates.append(t["images"] / t["seconds"])
    del model, opt
    if dev == "cuda":
        torch.cuda.empty_cache()
    rate = statistics.median(rates)
    return {"images_per_s": rate, "rates": rates, "step_ms": 1000.0 * b / rate}
