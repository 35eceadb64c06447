"""Repeated augmentation (DeiT / timm ``--aug-repeats``): each sample drawn r times per epoch
with independent augmentation, spread across ranks as timm's ``RepeatAugSampler`` does.

``RepeatDataset(base, r)`` has ``r * len(base)`` virtual records: virtual index ``k N + i`` is
repeat k of record i (augmentation parameters are drawn from the virtual index, so the repeats
differ). Its ``rank_order`` (the Loader uses it instead of its own order) is timm's sampler:
a permutation of the N records from (seed, epoch), each repeated r times in a row, padded to a
multiple of the world size, rank k taking every world-size-th from k (so the r repeats of a
record land on r different ranks, or in one batch on a single rank), then the first
``N // 256 * 256 / world`` (timm's ``selected_round``; ``ceil(N / world)`` below 256 records):
an epoch keeps about N samples in total. Pure function of (seed, epoch): resumable.

Where the r repeats of a record land in one batch (one rank), the batch decodes the record once
for them (``decode_groups``, used by ``Compose.run_batch``): the region that holds every
repeat's crop, at their common DCT scale, then one render per repeat from it. A region decode
gives the same pixels inside a sub-region as a decode of that sub-region alone, so the output
is identical to decoding each repeat by itself; repeats whose crops need different DCT scales
are decoded once per scale.

>>> Loader(RepeatDataset(ShardDataset("train.packed"), 3), 256, pipe)
"""

from __future__ import annotations

import math

import numpy as np

from augpipe import rng
from augpipe.decode import dct_factor
from augpipe.errors import bad_param
from augpipe.train.split import SubsetDataset


class RepeatDataset(SubsetDataset):
    """``base`` with every record present ``repeats`` times (see the module docstring)."""

    def __init__(self, base, repeats: int):
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise bad_param("aug_repeats", "an integer >= 1", repeats, "e.g. 3")
        n = len(base)
        super().__init__(base, np.tile(np.arange(n, dtype=np.int64), repeats))
        self.repeats = repeats
        self.n_base = n

    def __repr__(self) -> str:
        return f"RepeatDataset({self.base!r}, repeats={self.repeats})"

    def to_dict(self) -> dict:  # fresh loader workers rebuild it from this
        from augpipe.loader.handover import describe

        return {"base": describe(self.base, "data"), "repeats": self.repeats}

    @classmethod
    def from_dict(cls, d: dict) -> RepeatDataset:
        from augpipe.loader.handover import rebuild

        return cls(rebuild(d["base"]), d["repeats"])

    def rank_order(self, seed: int, epoch: int, shuffle: bool, rank: int, world: int):
        """This rank's virtual indices for ``epoch`` (timm's RepeatAugSampler)."""
        return repeat_order(self.n_base, self.repeats, seed, epoch, shuffle, rank, world)


def repeat_order(n: int, r: int, seed: int, epoch: int, shuffle: bool, rank: int, world: int):
    base = rng.permutation(n, seed, epoch) if shuffle else np.arange(n, dtype=np.int64)
    virt = (np.arange(r, dtype=np.int64)[None, :] * n + base[:, None]).reshape(-1)
    per_rank = int(math.ceil(n * r / world))
    total = per_rank * world
    if total > len(virt):
        virt = np.concatenate([virt, virt[: total - len(virt)]])
    mine = virt[rank:total:world]
    selected = (n // 256 * 256) // world if n >= 256 else int(math.ceil(n / world))
    return mine[: max(selected, 1)]


def decode_groups(dataset, indices: np.ndarray, scales: np.ndarray, boxes: np.ndarray,
                  slack: float = 1.0):  # fmt: skip
    """[(members, scale, box, step)]: which samples of a batch share one decode. ``scales``
    (``min_scales``) and ``boxes`` (``source_boxes``: y0, y1, x0, x1, step) are per sample;
    a group's box is the union of its members' and its step the largest. One group per sample
    unless ``dataset`` repeats records (``RepeatDataset``); members in batch order."""
    n = len(indices)
    if getattr(dataset, "repeats", 1) <= 1 or n < 2:
        # Python floats (the same values): load_region reads them per sample
        sl, bl = np.asarray(scales).tolist(), np.asarray(boxes).tolist()
        return [([j], sl[j], bl[j][:4], bl[j][4]) for j in range(n)]
    records = np.asarray(dataset.indices)[indices]
    groups: dict[tuple[int, int], list[int]] = {}
    for j in range(n):
        groups.setdefault((int(records[j]), dct_factor(float(scales[j]), slack)), []).append(j)
    out = []
    for members in groups.values():
        b = boxes[members]
        real = b[(b[:, 1] > b[:, 0]) & (b[:, 3] > b[:, 2])]  # empty: a map outside the image
        b = real if len(real) else b
        box = np.array([b[:, 0].min(), b[:, 1].max(), b[:, 2].min(), b[:, 3].max()])
        out.append((members, scales[members].min(), box, boxes[members, 4].max()))
    return out
