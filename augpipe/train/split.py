"""A deterministic train/validation split of one packed dataset, for runs without ``--val``.

``SubsetDataset`` presents records ``indices`` of a ``ShardDataset`` under the same interface
(``len``, ``labels``, ``classes``, ``encoding``, ``sizes``, ``stats``, ``raw``, ``image``), so the
Loader and the transforms treat it as a dataset. Stratified: each class gives the same fraction
of its records to validation; which ones is a function of the seed only.
"""

from __future__ import annotations

import numpy as np

from augpipe import rng

_SPLIT_STREAM = 0x5B117


class SubsetDataset:
    def __init__(self, base, indices: np.ndarray):
        self.base = base
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(base.labels)[self.indices]
        self.sizes = np.asarray(base.sizes)[self.indices]
        self.classes = base.classes
        self.encoding = base.encoding
        self.manifest = base.manifest
        self.stats = base.stats  # training-set statistics (pack time), as for a real val set
        self.path = getattr(base, "path", None)

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        return f"SubsetDataset({len(self)} of {self.base!r})"

    def raw(self, i: int) -> np.ndarray:
        return self.base.raw(int(self.indices[i]))

    def image(self, i: int) -> np.ndarray:
        return self.base.image(int(self.indices[i]))

    def __getitem__(self, i: int):
        return self.image(i), int(self.labels[i])

    def close(self) -> None:
        self.base.close()

    def validate(self) -> None:
        validate = getattr(self.base, "validate", None)
        if validate is not None:
            validate()

    def to_dict(self) -> dict:
        """The base dataset's description and the indices: how fresh loader workers get it."""
        from augpipe.loader.handover import describe

        return {"base": describe(self.base, "data"), "indices": self.indices.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> SubsetDataset:
        from augpipe.loader.handover import rebuild

        return cls(rebuild(d["base"]), np.asarray(d["indices"], dtype=np.int64))


def random_subset(dataset, n: int, seed: int):
    """A deterministic random ``n`` of the dataset's records (kept in index order), or itself."""
    if n >= len(dataset):
        return dataset
    keys = rng.bits(seed, 0, np.arange(len(dataset), dtype=np.uint64), stream=_SPLIT_STREAM + 1)
    return SubsetDataset(dataset, np.sort(np.argsort(keys, kind="stable")[:n]))


def split_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) index arrays, sorted; at least one val record per class with ≥ 2 records."""
    labels = np.asarray(labels)
    keys = rng.bits(seed, 0, np.arange(len(labels), dtype=np.uint64), stream=_SPLIT_STREAM)
    val = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            continue
        n_val = min(len(members) - 1, max(1, int(round(len(members) * fraction))))
        val.append(members[np.argsort(keys[members], kind="stable")[:n_val]])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx.astype(np.int64), val_idx.astype(np.int64)
