"""Batches for target-carrying datasets: images as for classification, targets packed flat.

For a batch of B images the targets are (NumPy, or torch tensors with ``output="torch"``):

- ``boxes`` (M, 4) float32 xyxy absolute output pixels; ``labels`` (M,) int64;
  ``batch_idx`` (M,) int64, the image each box belongs to; ``offsets`` (B + 1,) int64, image b's
  boxes are ``offsets[b]:offsets[b + 1]``; ``iscrowd`` (M,) bool;
- ``keypoints`` (M, K, 3) float32 when the dataset has keypoints;
- ``masks`` (B, H, W) uint8 semantic masks (255 = ignore) when it has them;
- ``instance_map`` (B, H, W) int16 when its instances have polygons or RLE masks: pixel value
  j + 1 means instance ``offsets[b] + j``, 0 none; instances are painted largest box first, so
  where two overlap the smaller one is kept (ultralytics' overlap rule). ``instance_masks(batch)``
  expands it to (M, H, W).

``TargetPipeline`` wraps a bound ``Compose``: the loader's workers call ``run_batch`` with the
slot's target area (``extra``), fixed in size from the manifest's ``max_instances``.
"""

from __future__ import annotations

import numpy as np

from augpipe.errors import ConfigError
from augpipe.targets.masks import fill_polygon
from augpipe.targets.transform import TargetOptions, check_one_map, transform


def _al(n: int) -> int:
    return -(-n // 8) * 8


class TargetPipeline:
    """``Compose`` + targets for one target-carrying dataset (built by ``Loader``).

    >>> tp = TargetPipeline(pipe.bind(ds), ds, TargetOptions(min_wh=2))
    >>> images, targets = tp.sample(ds, [0, 1], seed=0, epoch=0)
    """

    # masks sampled in the image's kernel call (augpipe.targets.render) when True (default:
    # measured faster for one semantic mask and for 12 instance masks, bench/mask_pass.py);
    # False: the image pass, then a nearest pass of its own per mask (targets_for); None: per
    # sample, the image's pass for two or more masks, a pass of its own for a lone mask
    same_pass: bool | None = True

    def __init__(self, pipeline, dataset, options: TargetOptions | None = None,
                 batch_size: int | None = None):  # fmt: skip
        if pipeline.n_crops != 1:
            raise ConfigError("pipeline: test-time multi-crop ops (TenCrop, MultiScaleTenCrop) "
                              "cannot carry targets; use one crop per image")  # fmt: skip
        user = [type(op).__name__ for op in getattr(pipeline, "ops", ())
                if op.kind in ("sample", "batch")]  # fmt: skip
        if user:
            raise ConfigError(
                f"pipeline: {', '.join(user)} run after the fused pass and cannot move the targets "
                "with the pixels (Mixup/CutMix mix two images' boxes); drop them for a dataset "
                "with targets"
            )
        self.pipeline = pipeline
        self.options = options if options is not None else TargetOptions()
        if not isinstance(self.options, TargetOptions):
            raise ConfigError(f"targets: expected a TargetOptions, got {self.options!r}")
        info = dataset.target_info if dataset is not None else {}
        # what the workers need of the dataset's target description (to_dict carries it)
        self.info = {k: info.get(k) for k in ("keypoints", "flip_idx", "max_instances",
                                              "semantic", "counts")}  # fmt: skip
        self.K = int(info.get("keypoints") or 0)
        self.flip_idx = np.asarray(info.get("flip_idx") or list(range(self.K)), np.int64)
        self.max_instances = max(1, int(info.get("max_instances") or 0))
        counts = info.get("counts") or {}
        self.semantic = bool(info.get("semantic")) and self.options.masks
        self.instances = self.options.masks and sum(counts.get("masks", [])) > 0
        from augpipe.ops.detection.mosaic import Mosaic

        self.mosaic = isinstance(getattr(pipeline, "_size_op", None), Mosaic)
        if self.mosaic:
            kinds = {op.kind for op in pipeline.ops}
            if not kinds <= {"size", "geometry", "color"}:
                raise ConfigError(
                    f"pipeline: Mosaic combines only with geometric and colour ops, got kinds "
                    f"{sorted(kinds)}; put lens and pixel ops in a pipeline without Mosaic"
                )
            self.max_instances *= 4  # four images' instances in one sample
        self.output_shape = pipeline.output_shape
        self.out_hw = tuple(self.output_shape[:2])
        self.n_crops = 1
        self.batch_size = batch_size  # the loader's: sizes the slot's target area
        self.batch_ops = getattr(pipeline, "batch_ops", ())  # user batch ops (see Loader)

    def __repr__(self) -> str:
        return f"TargetPipeline({self.pipeline!r}, {self.options!r})"

    def to_dict(self) -> dict:
        """Plain JSON data (fresh loader workers rebuild the object from it)."""
        o = self.options
        return {
            "pipeline": self.pipeline.to_dict(),
            "info": self.info,
            "options": {"min_area": o.min_area, "min_visibility": o.min_visibility,
                        "min_wh": o.min_wh, "max_aspect": None if o.max_aspect == float("inf")
                        else o.max_aspect, "box_rule": o.box_rule, "masks": o.masks},
            "batch_size": self.batch_size,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> TargetPipeline:
        from augpipe.transforms import Compose

        o = dict(d["options"])
        o["max_aspect"] = float("inf") if o["max_aspect"] is None else o["max_aspect"]

        class _Info:
            target_info = d["info"]

        return cls(Compose.from_dict(d["pipeline"]), _Info(), TargetOptions(**o), d["batch_size"])

    def bind(self, dataset) -> TargetPipeline:
        return self

    # --------------------------------------------------------------- the slot's target area

    def _parts(self, batch_size: int):
        cap = batch_size * self.max_instances
        H, W = self.out_hw
        parts = [("counts", "<i4", (batch_size,)), ("boxes", "<f4", (cap, 4)),
                 ("labels", "<i4", (cap,)), ("iscrowd", "u1", (cap,))]  # fmt: skip
        if self.K:
            parts.append(("keypoints", "<f4", (cap, self.K, 3)))
        if self.semantic:
            parts.append(("masks", "u1", (batch_size, H, W)))
        if self.instances:
            parts.append(("instance_map", "<i2", (batch_size, H, W)))
        return parts

    def extra_bytes(self, batch_size: int) -> int:
        return sum(_al(int(np.prod(s)) * np.dtype(d).itemsize) for _, d, s in self._parts(
            batch_size))  # fmt: skip

    def _views(self, extra: np.ndarray, batch_size: int) -> dict:
        out, off = {}, 0
        buf = np.frombuffer(extra, np.uint8)
        for name, dt, shape in self._parts(batch_size):
            n = int(np.prod(shape)) * np.dtype(dt).itemsize
            out[name] = buf[off : off + n].view(dt).reshape(shape)
            off += _al(n)
        return out

    # --------------------------------------------------------------- running

    def _run(self, dataset, indices, seed: int, epoch: int, out, sem_out=None) -> list:
        """Images into ``out``, and the output-frame ``Targets`` of each sample (semantic
        masks warped into ``sem_out`` (B, H, W) when given)."""
        if getattr(getattr(self.pipeline, "_size_op", None), "needs_boxes", False):
            from augpipe.targets.context import sample_boxes

            boxes = {}
            for i in np.asarray(indices, np.int64).reshape(-1):
                t = read_targets(dataset, int(i))
                boxes[int(i)] = t.boxes[~t.iscrowd]
            with sample_boxes(boxes):  # RandomIoUCrop draws its crop from them
                return self._run_plain(dataset, indices, seed, epoch, out, sem_out)
        return self._run_plain(dataset, indices, seed, epoch, out, sem_out)

    def _run_plain(self, dataset, indices, seed: int, epoch: int, out, sem_out) -> list:
        if self.mosaic:
            from augpipe.targets.mosaic import run_mosaic

            return run_mosaic(self, dataset, indices, seed, epoch, out, sem_out)
        if self.same_pass is not False:
            from augpipe.targets.render import run_same_pass

            return run_same_pass(self, dataset, indices, seed, epoch, out, sem_out)
        self.pipeline.run_batch(dataset, indices, seed, epoch, out)
        return self.targets_for(dataset, indices, seed, epoch, sem_out)

    def targets_for(self, dataset, indices, seed: int, epoch: int, sem_out=None) -> list:
        """The output-frame ``Targets`` of each sample (the same records ``run_batch`` uses);
        semantic masks into ``sem_out`` (B, H, W) uint8 when given."""
        if self.mosaic:
            raise ConfigError("Mosaic: targets come with the images (run_batch or sample)")
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        recs = self.pipeline.sample_params(np.asarray(dataset.sizes)[indices], indices, seed,
                                           epoch)  # fmt: skip
        check_one_map(recs)
        return [transform(read_targets(dataset, int(i)), recs[j], self.out_hw, self.options,
                          self.flip_idx if self.K else None, masks=self.instances,
                          semantic_out=None if sem_out is None else sem_out[j])
                for j, i in enumerate(indices)]  # fmt: skip

    def run_batch(self, dataset, indices, seed: int, epoch: int, out, extra=None) -> None:
        """Images into ``out`` (as ``Compose.run_batch``), targets into ``extra``."""
        if extra is None:
            self._run(dataset, indices, seed, epoch, out)
            return
        bs = self.batch_size or len(np.asarray(indices).reshape(-1))
        sem_out = self._views(extra, bs)["masks"] if self.semantic else None
        self.write(extra, self._run(dataset, indices, seed, epoch, out, sem_out), bs)

    def sample(self, dataset, indices, seed: int = 0, epoch: int = 0):
        """(images (B, H, W, 3) uint8, targets dict) without a loader (tests, preview)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        images = np.empty((len(indices), *self.output_shape), np.uint8)
        extra = np.zeros(self.extra_bytes(len(indices)), np.uint8)
        self.write(extra, self._run(dataset, indices, seed, epoch, images), len(indices))
        return images, self.read(extra, len(indices), len(indices))

    def write(self, extra: np.ndarray, ts: list, batch_size: int) -> None:
        v = self._views(extra, batch_size)
        off = 0
        for b, t in enumerate(ts):
            m = len(t)
            if m > self.max_instances:  # only an op that adds instances could do this
                raise ConfigError(f"sample {b}: {m} instances, more than the dataset's "
                                  f"max_instances {self.max_instances}")  # fmt: skip
            v["counts"][b] = m
            sl = slice(off, off + m)
            v["boxes"][sl] = t.boxes
            v["labels"][sl] = t.labels
            v["iscrowd"][sl] = t.iscrowd
            if self.K:
                v["keypoints"][sl] = t.keypoints
            if self.semantic and not _same(t.semantic, v["masks"][b]):  # (warped in place)
                v["masks"][b] = t.semantic
            if self.instances:
                paint_instances(t, v["instance_map"][b])
            off += m

    def read(self, extra: np.ndarray, n: int, batch_size: int, torch: bool = False) -> dict:
        """The batch's ``n`` samples' targets as new arrays (the slot may be reused at once)."""
        v = self._views(extra, batch_size)
        counts = v["counts"][:n].astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        M = int(offsets[-1])
        out = {
            "boxes": v["boxes"][:M].copy(),
            "labels": v["labels"][:M].astype(np.int64),
            "batch_idx": np.repeat(np.arange(n, dtype=np.int64), counts),
            "offsets": offsets,
            "iscrowd": v["iscrowd"][:M].astype(bool),
        }
        if self.K:
            out["keypoints"] = v["keypoints"][:M].copy()
        if self.semantic:
            out["masks"] = v["masks"][:n].copy()
        if self.instances:
            out["instance_map"] = v["instance_map"][:n].copy()
        if torch:
            import torch as _torch

            out = {k: _torch.from_numpy(a) for k, a in out.items()}
        return out


def _same(a, b: np.ndarray) -> bool:
    return isinstance(a, np.ndarray) and a.ctypes.data == b.ctypes.data and a.shape == b.shape


def read_targets(dataset, i: int):
    """Record ``i``'s targets for the pipeline: a packed dataset's row-run semantic mask
    stays encoded (the mask warp expands only the rows and columns it reads)."""
    from augpipe.format.dataset import ShardDataset

    if isinstance(dataset, ShardDataset):
        return dataset.targets(i, mask_runs=True)
    return dataset.targets(i)


def paint_instances(t, out: np.ndarray) -> None:
    """Draw instance j as j + 1 into ``out`` (H, W) int16, largest box first."""
    out[...] = 0
    if not len(t):
        return
    area = (t.boxes[:, 2] - t.boxes[:, 0]) * (t.boxes[:, 3] - t.boxes[:, 1])
    masks = t.masks or [None] * len(t)
    for j in np.argsort(-area, kind="stable"):
        rings = t.rings(int(j))
        if rings:
            fill_polygon(rings, out, j + 1)
        elif masks[j] is not None:
            out[masks[j] > 0] = j + 1


def image_labels(targets: dict, n: int):
    """One class per image (its first box's, 0 when it has none): a stand-in label so that a
    classifier can train on detection batches (``augpipe bench`` times data, not accuracy)."""
    offsets = [int(v) for v in targets["offsets"]]
    labels = targets["labels"]
    first = [int(labels[offsets[b]]) if offsets[b + 1] > offsets[b] else 0 for b in range(n)]
    if type(labels).__module__.startswith("torch"):
        import torch

        return torch.tensor(first, dtype=torch.int64, device=labels.device)
    return np.asarray(first, np.int64)
