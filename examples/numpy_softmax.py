"""Train softmax regression on pooled pixels with NumPy only: augpipe's Loader without torch.

    python examples/numpy_softmax.py PACKED_DATASET [--steps 200] [--workers 2]
    python examples/numpy_softmax.py            # makes and packs a small synthetic dataset first

Each batch arrives as an NHWC float32 array (normalised with the dataset's own mean/std);
the model average-pools it to 4x4x3 = 48 features and takes one SGD step on the
cross-entropy.  Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import numpy as np

from augpipe import Compose, HorizontalFlip, Loader, RandomResizedCrop

SIZE, POOL = 32, 8  # 32x32 crops pooled in 8x8 blocks -> 4x4x3 features


def features(images: np.ndarray) -> np.ndarray:
    n, h, w, c = images.shape
    pooled = images.reshape(n, h // POOL, POOL, w // POOL, POOL, c).mean(axis=(2, 4))
    return pooled.reshape(n, -1)


def train(data, steps: int, workers: int, batch: int = 64, lr: float = 0.5, seed: int = 0):
    """Returns the list of per-step losses."""
    pipe = Compose([RandomResizedCrop(SIZE, scale=(0.35, 1.0)), HorizontalFlip()])
    loader = Loader(data, batch, pipe, seed=seed, workers=workers, output="numpy",
                    normalize="dataset")  # fmt: skip
    n_classes = len(loader.dataset.classes)
    n_feat = (SIZE // POOL) ** 2 * 3
    weights = np.zeros((n_feat, n_classes), np.float32)
    bias = np.zeros(n_classes, np.float32)
    losses: list[float] = []
    with loader:
        while len(losses) < steps:  # as many epochs as the steps need
            for images, labels in loader:
                x = features(images)
                logits = x @ weights + bias
                logits -= logits.max(axis=1, keepdims=True)
                p = np.exp(logits)
                p /= p.sum(axis=1, keepdims=True)
                losses.append(float(-np.log(p[np.arange(len(labels)), labels] + 1e-12).mean()))
                p[np.arange(len(labels)), labels] -= 1.0  # d loss / d logits
                weights -= lr * (x.T @ p) / len(labels)
                bias -= lr * p.mean(axis=0)
                if len(losses) % 20 == 0 or len(losses) == steps:
                    print(f"step {len(losses):4d}  epoch {loader.epoch}  loss {losses[-1]:.3f}")
                if len(losses) == steps:
                    break
    return losses


def _demo_dataset(tmp: str) -> str:
    from augpipe import pack
    from augpipe.synth import make_image_folder

    folder = make_image_folder(f"{tmp}/images", n_classes=4, per_class=48, seed=0)
    pack(folder, f"{tmp}/packed", progress=False)
    return f"{tmp}/packed"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", help="a packed dataset (default: make a synthetic one)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or _demo_dataset(tmp)
        losses = train(data, args.steps, args.workers)
    k = max(1, len(losses) // 10)
    print(f"mean loss: first {k} steps {np.mean(losses[:k]):.3f}, last {k} steps "
          f"{np.mean(losses[-k:]):.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
