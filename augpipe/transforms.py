"""The public transforms and ``Compose``, the fused pipeline.

Every geometric op (crop, scale, flip, affine, lens) composes into one sampling map per sample
and every colour op (brightness, contrast, saturation, PCA lighting) into one per-pixel affine
colour transform; one Numba pass samples, colours, rounds and writes each output pixel once.

>>> pipe = Compose([RandomResizedCrop(224), HorizontalFlip()])
>>> pipe(image, index=7, seed=0, epoch=3).shape          # HWC uint8 RGB in and out
(224, 224, 3)
>>> rec = pipe.sample_params([image.shape[:2]], [7], seed=0, epoch=3)
>>> np.array_equal(pipe.apply(image, rec[0]), pipe(image, index=7, seed=0, epoch=3))
True
"""

from __future__ import annotations

import numpy as np

from augpipe.decode import DecodeError, load_region
from augpipe.errors import ConfigError, ConfigTypeError, DatasetError, bad_param
from augpipe.loader.repeat import decode_groups
from augpipe.ops.affine import Affine
from augpipe.ops.base import Op
from augpipe.ops.batch.mixup import Mixup
from augpipe.ops.center_crop import CenterCrop
from augpipe.ops.color_jitter import ColorJitter
from augpipe.ops.detection.hsv import HSVJitter
from augpipe.ops.detection.iou_crop import RandomIoUCrop
from augpipe.ops.detection.letterbox import Letterbox
from augpipe.ops.detection.mosaic import Mosaic
from augpipe.ops.detection.random_scale import RandomScale
from augpipe.ops.flip import HorizontalFlip
from augpipe.ops.fused import fields, render_item, source_boxes
from augpipe.ops.lens import LensDistortion
from augpipe.ops.params import min_scales, sample_params
from augpipe.ops.pca_lighting import PCALighting
from augpipe.ops.perspective import RandomPerspective
from augpipe.ops.pixel.enhance import GaussianBlur, Grayscale, Sharpness
from augpipe.ops.pixel.erasing import RandomErasing
from augpipe.ops.pixel.lut import AutoContrast, Equalize, Invert, Posterize, Solarize, SolarizeAdd
from augpipe.ops.policies.augmix import AugMix
from augpipe.ops.policies.timm import TimmAutoAugment, TimmRandAugment
from augpipe.ops.policies.torchvision import AutoAugment, RandAugment, TrivialAugmentWide
from augpipe.ops.replay import check_image, check_ready, render_record
from augpipe.ops.resized_crop import RandomResizedCrop
from augpipe.ops.scale_jitter import ScaleJitter
from augpipe.ops.ten_crop import MultiScaleTenCrop, TenCrop
from augpipe.spec.user import UserBatchOp, UserOp

__all__ = [
    "Compose",
    "RandomResizedCrop",
    "ScaleJitter",
    "CenterCrop",
    "HorizontalFlip",
    "Affine",
    "RandomPerspective",
    "LensDistortion",
    "ColorJitter",
    "PCALighting",
    "TenCrop",
    "MultiScaleTenCrop",
    "Solarize",
    "SolarizeAdd",
    "Posterize",
    "Invert",
    "Equalize",
    "AutoContrast",
    "Sharpness",
    "GaussianBlur",
    "Grayscale",
    "RandomErasing",
    "Letterbox",
    "RandomScale",
    "HSVJitter",
    "Mosaic",
    "RandomIoUCrop",
    "UserOp",
    "UserBatchOp",
    "RandAugment",
    "TrivialAugmentWide",
    "AutoAugment",
    "TimmRandAugment",
    "TimmAutoAugment",
    "AugMix",
    "Mixup",
    "OPS",
]

OPS = (
    RandomResizedCrop,
    ScaleJitter,
    CenterCrop,
    HorizontalFlip,
    Affine,
    LensDistortion,
    ColorJitter,
    PCALighting,
    TenCrop,
    MultiScaleTenCrop,
    Solarize,
    SolarizeAdd,
    Posterize,
    Invert,
    Equalize,
    AutoContrast,
    Sharpness,
    GaussianBlur,
    Grayscale,
    RandomErasing,
    RandAugment,
    TrivialAugmentWide,
    AutoAugment,
    TimmRandAugment,
    TimmAutoAugment,
    AugMix,
    Letterbox,
    RandomScale,
    HSVJitter,
    RandomPerspective,
)  # Mosaic and RandomIoUCrop (they need the targets) run only in augpipe.targets.batch


_USER_KINDS = ("sample", "batch")  # Python ops that run after the fused pass (augpipe.spec.user)


class Compose:
    """A list of ops fused into one pass. At most one sizing op (RandomResizedCrop, ScaleJitter,
    CenterCrop, TenCrop, MultiScaleTenCrop), listed before the geometric ops; at most one
    LensDistortion. ``fill`` colours areas that map outside the source (rotations, lens).
    User ops (``UserOp`` per sample, ``UserBatchOp`` per batch) come last: they run in Python
    after the fused pass.
    """

    def __init__(self, ops, fill: int | None = None, fast_decode: bool = True,
                 dct_slack: float = 1.0):  # fmt: skip
        if isinstance(ops, Op):
            ops = [ops]
        if not isinstance(ops, (list, tuple)):
            raise ConfigTypeError(
                f"Compose: expected a list of transforms, got {type(ops).__name__}"
            )
        for i, op in enumerate(ops):
            if not isinstance(op, Op):
                raise ConfigTypeError(
                    f"Compose[{i}]: expected an augpipe transform (e.g. HorizontalFlip()), got "
                    f"{op!r}; note that classes must be instantiated"
                )
        kinds = [op.kind for op in ops]
        if kinds.count("size") > 1:
            raise bad_param("Compose", "at most one sizing op", [type(o).__name__ for o in ops])
        if sum(isinstance(op, AugMix) for op in ops) > 1:
            raise bad_param("Compose", "at most one AugMix", kinds.count("policy"))
        if any(isinstance(op, AugMix) for op in ops):
            first = next(i for i, op in enumerate(ops) if isinstance(op, AugMix))
            if any(k in ("pixel", "policy", "erase") for k in kinds[:first]):
                raise bad_param("Compose", "AugMix before the pixel ops and policies",
                                [type(o).__name__ for o in ops], "move AugMix up")  # fmt: skip
        if kinds.count("erase") > 1:
            raise bad_param("Compose", "at most one RandomErasing", kinds.count("erase"))
        if kinds.count("lens") > 1:
            raise bad_param("Compose", "at most one LensDistortion", kinds.count("lens"))
        if "size" in kinds:
            first_geo = next((i for i, k in enumerate(kinds) if k in ("geometry", "lens")), None)
            if first_geo is not None and first_geo < kinds.index("size"):
                raise bad_param(
                    "Compose",
                    "the sizing op before flips, affine and lens",
                    [type(o).__name__ for o in ops],
                    f"move {type(ops[kinds.index('size')]).__name__} to the front",
                )
        first_user = next((i for i, k in enumerate(kinds) if k in _USER_KINDS), len(kinds))
        if any(k not in _USER_KINDS for k in kinds[first_user:]):
            raise bad_param(
                "Compose",
                "user ops (UserOp, UserBatchOp) after every fused op",
                [type(o).__name__ for o in ops],
                "move them to the end: they run after the fused pass",
            )
        self._sample_ops = [(p, op) for p, op in enumerate(ops) if op.kind == "sample"]
        self.batch_ops = [(p, op) for p, op in enumerate(ops) if op.kind == "batch"]
        self.ops = list(ops)
        self.fast_decode = bool(fast_decode)
        # DCT-scaled decode while the crop keeps >= dct_slack decoded pixels per output pixel
        # (augpipe.decode.dct_factor; docs/transforms.md: the rule and its measured PSNR)
        if isinstance(dct_slack, bool) or not isinstance(dct_slack, (int, float)) or not (
                0.5 <= dct_slack <= 1.0):  # fmt: skip
            raise bad_param("dct_slack", "a number in 0.5..1 (1: the exact rule)", dct_slack)
        self.dct_slack = float(dct_slack)
        self._size_op = next((op for op in ops if op.kind == "size"), None)
        # default fill: the sizing op's own (Letterbox, Mosaic: 114), else RandomPerspective's
        # own when given, else 0
        if fill is None:
            fill = getattr(self._size_op, "fill", None)
            own = [op.fill for op in ops
                   if isinstance(op, RandomPerspective) and op.fill is not None]  # fmt: skip
            if own and fill is not None and any(f != fill for f in own):
                raise bad_param("RandomPerspective.fill",
                                f"the sizing op's fill ({fill}): a pipeline has one fill",
                                own[0], "set Compose(fill=...)")  # fmt: skip
            fill = own[0] if own and fill is None else fill
        self.fill = int(fill if fill is not None else 0)

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(map(repr, self.ops)) + "])"

    def to_dict(self) -> dict:
        """The pipeline as plain JSON data (``augpipe.spec.codec``); ``from_dict`` inverts it
        exactly: the same (seed, epoch, index) gives the same output bits."""
        from augpipe.spec.codec import pipeline_to_dict

        return pipeline_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "pipeline dict") -> Compose:
        """The pipeline ``to_dict`` wrote; ConfigError naming the field for anything else."""
        from augpipe.spec.files import from_dict

        return from_dict(d, where)

    def save(self, path) -> str:
        """Write the pipeline as JSON (``augpipe.load_pipeline(path)`` reads it back)."""
        from augpipe.spec.files import save_pipeline

        return save_pipeline(self, path)

    @property
    def n_crops(self) -> int:
        return self._size_op.n_crops if self._size_op is not None else 1

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per-sample output shape: (H, W, 3), or (K, H, W, 3) for the test-time crops."""
        if self._size_op is None:
            raise ConfigError(
                "Compose.output_shape: the pipeline has no sizing op; add e.g. "
                "CenterCrop(224) or RandomResizedCrop(224) so batches have one shape"
            )
        H, W = self._size_op.out_hw
        return (self.n_crops, H, W, 3) if self.n_crops > 1 else (H, W, 3)

    def bind(self, dataset) -> Compose:
        """A copy with dataset statistics resolved (PCALighting) and the config checked."""
        ops = [op.bind(dataset) if hasattr(op, "bind") else op for op in self.ops]
        bound = Compose(ops, fill=self.fill, fast_decode=self.fast_decode,
                        dct_slack=self.dct_slack)  # fmt: skip
        if bound._size_op is None:
            sizes = np.asarray(dataset.sizes)
            if len(sizes) and np.any(sizes != sizes[0]):
                raise ConfigError(
                    "Compose.bind: the dataset's images differ in size and the "
                    "pipeline has no sizing op; add e.g. CenterCrop(224)"
                )
        return bound

    def _check_ready(self) -> None:
        check_ready(self.ops)

    def sample_params(self, sizes, indices, seed: int = 0, epoch: int = 0) -> np.ndarray:
        """The drawn parameters, one structured record per index (see ``augpipe.ops.params``)."""
        self._check_ready()
        return sample_params(self.ops, sizes, indices, int(seed), int(epoch))

    def _out_hw(self, image_hw) -> tuple[int, int]:
        return self._size_op.out_hw if self._size_op is not None else tuple(image_hw)

    def apply(self, image: np.ndarray, params, seed: int | None = None, epoch: int | None = None):
        """Replay one record from ``sample_params`` on ``image`` (no randomness involved; user
        ops, which draw as they run, also need the ``seed`` and ``epoch`` of the record)."""
        image = check_image(image)
        rec = np.asarray(params).reshape(-1)[0]
        out = render_record(self.ops, image, rec, self.fill)
        if self._sample_ops:
            if seed is None or epoch is None:
                raise ConfigError(
                    f"Compose.apply: {self._sample_ops[0][1].path!r} is a user op that draws "
                    "from (seed, epoch, index) as it runs; pass seed= and epoch="
                )
            self._run_sample_ops(out, int(rec["index"]), int(seed), int(epoch))
        return out if self.n_crops > 1 else out[0]

    def __call__(self, image: np.ndarray, index: int = 0, seed: int = 0, epoch: int = 0):
        image = check_image(image)
        rec = self.sample_params([image.shape[:2]], [index], seed, epoch)
        return self.apply(image, rec[0], seed, epoch)

    def _run_sample_ops(self, crops: np.ndarray, index: int, seed: int, epoch: int) -> None:
        """The user ops on one sample's (K, H, W, 3) output, in place (Python, per crop)."""
        for pos, op in self._sample_ops:
            for k in range(crops.shape[0]):
                op.run(crops[k], seed, epoch, index, pos, k)

    def run_batch(self, dataset, indices, seed: int, epoch: int, out: np.ndarray) -> None:
        """Decode and augment ``dataset[indices]`` into ``out`` (len(indices), *output_shape)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        shape = (len(indices), *self.output_shape)
        if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != shape:
            raise bad_param(
                "out", f"a uint8 array of shape {shape}", getattr(out, "shape", type(out).__name__)
            )
        if not out.flags.c_contiguous:
            raise bad_param("out", "a C-contiguous array", "a strided view", "pass np.empty(...)")
        view = out.reshape(len(indices), self.n_crops, *out.shape[-3:])
        for j, (img, bgr, sc, off, f) in self._decoded(dataset, indices, seed, epoch):
            render_item(img, bgr, f, j, view[j], self.fill, sc, off)
            if self._sample_ops:
                self._run_sample_ops(view[j], int(indices[j]), int(seed), int(epoch))

    def decode_batch(self, dataset, indices, seed: int, epoch: int) -> int:
        """Only the decode that ``run_batch`` does (the same regions and DCT scales), no
        augmentation: what ``augpipe bench`` times as the decode stage. Returns the count."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        return sum(1 for _ in self._decoded(dataset, indices, seed, epoch))

    def _decoded(self, dataset, indices: np.ndarray, seed: int, epoch: int):
        """Yield (j, (image, bgr, scale, offset, fields)) for each sample, decoded crop-aware."""
        sizes = np.asarray(dataset.sizes)[indices]
        recs = self.sample_params(sizes, indices, seed, epoch)
        f = fields(recs)
        scales = min_scales(recs, self.output_shape[-3:-1])
        # decode only each sample's source bounding box (JPEG records, region decode built);
        # the repeats of a record in this batch (RepeatDataset) share one decode
        boxes = source_boxes(f, self.output_shape[-3:-1])
        records = indices.tolist()
        fast, slack = self.fast_decode, self.dct_slack
        for members, scale, box, step in decode_groups(dataset, indices, scales, boxes, slack):
            i = records[members[0]]
            try:
                img, bgr, sc, off = load_region(
                    dataset, i, float(scale), box, step, fast, reuse=True, slack=slack
                )
            except DecodeError as exc:
                raise DatasetError(
                    f"record {i}: {exc}; re-pack the dataset "
                    "(augpipe inspect --verify finds damaged records)"
                ) from None
            if not img.flags.c_contiguous:
                img = np.ascontiguousarray(img)
            for j in members:
                yield j, (img, bgr, sc, off, f)
