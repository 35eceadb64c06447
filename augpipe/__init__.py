"""augpipe: keep the GPU fed.

Pack images once into LMDB shards (``augpipe.pack``), read them with ``ShardDataset``, augment
with fused Numba kernels (``augpipe.transforms``) and feed a model with ``Loader``.

Importing augpipe compiles nothing and imports neither torch nor numba: names are resolved
lazily on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "pack": "augpipe.format.pack",
    "merge": "augpipe.format.merge",
    "ShardDataset": "augpipe.format.dataset",
    "RemoteShardDataset": "augpipe.remote.dataset",
    "Loader": "augpipe.loader.loader",
    "Compose": "augpipe.transforms",
    "RandomResizedCrop": "augpipe.transforms",
    "ScaleJitter": "augpipe.transforms",
    "CenterCrop": "augpipe.transforms",
    "HorizontalFlip": "augpipe.transforms",
    "Affine": "augpipe.transforms",
    "RandomPerspective": "augpipe.transforms",
    "LensDistortion": "augpipe.transforms",
    "ColorJitter": "augpipe.transforms",
    "PCALighting": "augpipe.transforms",
    "TenCrop": "augpipe.transforms",
    "MultiScaleTenCrop": "augpipe.transforms",
    "UserOp": "augpipe.transforms",
    "UserBatchOp": "augpipe.transforms",
    "load_pipeline": "augpipe.spec.files",
    "save_pipeline": "augpipe.spec.files",
    "register_op": "augpipe.spec.registry",
    "Solarize": "augpipe.transforms",
    "SolarizeAdd": "augpipe.transforms",
    "Posterize": "augpipe.transforms",
    "Invert": "augpipe.transforms",
    "Equalize": "augpipe.transforms",
    "AutoContrast": "augpipe.transforms",
    "Sharpness": "augpipe.transforms",
    "GaussianBlur": "augpipe.transforms",
    "Grayscale": "augpipe.transforms",
    "RandomErasing": "augpipe.transforms",
    "RandAugment": "augpipe.transforms",
    "TrivialAugmentWide": "augpipe.transforms",
    "AutoAugment": "augpipe.transforms",
    "TimmRandAugment": "augpipe.transforms",
    "TimmAutoAugment": "augpipe.transforms",
    "AugMix": "augpipe.transforms",
    "Mixup": "augpipe.transforms",
    "policy_from_string": "augpipe.ops.policies.strings",
    "TargetOptions": "augpipe.targets.transform",
    "Targets": "augpipe.targets.core",
    "AugpipeError": "augpipe.errors",
    "UserError": "augpipe.errors",
    "ConfigError": "augpipe.errors",
    "DatasetError": "augpipe.errors",
    "WorkerError": "augpipe.errors",
    "RemoteError": "augpipe.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'augpipe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
