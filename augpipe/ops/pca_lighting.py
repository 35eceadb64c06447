"""PCALighting: AlexNet's lighting noise along the principal components of the RGB pixels."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.errors import ConfigError, bad_param
from augpipe.ops.base import Op, number


@dataclass(frozen=True, eq=False)
class PCALighting(Op):
    """Add ``255 * sum_i alpha_i lambda_i v_i`` to every pixel, alpha_i ~ N(0, std).
    ``eigval`` (3,) and ``eigvec`` (3, 3) (column k = k-th unit eigenvector, RGB) are the RGB
    covariance's eigen-decomposition on [0, 1]-scaled pixels; left as None they come from the
    dataset's manifest when the pipeline is bound (``pipe.bind(dataset)``).

    >>> Compose([RandomResizedCrop(224), PCALighting(0.1)]).bind(ShardDataset("packed/"))
    """

    std: float = 0.1
    eigval: tuple | None = None
    eigvec: tuple | None = None
    kind: ClassVar[str] = "color"

    def __post_init__(self):
        number("PCALighting.std", self.std, 0.0, 10.0)
        if (self.eigval is None) != (self.eigvec is None):
            raise bad_param(
                "PCALighting.eigval/eigvec",
                "both or neither",
                (self.eigval is not None, self.eigvec is not None),
                "pass both, or neither to use the dataset's statistics",
            )
        if self.eigval is not None:
            v = np.asarray(self.eigval, dtype=np.float64)
            e = np.asarray(self.eigvec, dtype=np.float64)
            if v.shape != (3,) or not np.all(np.isfinite(v)):
                raise bad_param("PCALighting.eigval", "3 finite numbers", self.eigval)
            if e.shape != (3, 3) or not np.all(np.isfinite(e)):
                raise bad_param(
                    "PCALighting.eigvec",
                    "a 3x3 matrix (columns = eigenvectors)",
                    np.shape(self.eigvec),
                )
            # hashable, picklable, immutable copies
            object.__setattr__(self, "eigval", tuple(float(x) for x in v))
            object.__setattr__(self, "eigvec", tuple(tuple(float(x) for x in r) for r in e))

    def __eq__(self, other) -> bool:
        return isinstance(other, PCALighting) and (self.std, self.eigval, self.eigvec) == (
            other.std,
            other.eigval,
            other.eigvec,
        )

    def __hash__(self) -> int:
        return hash((self.std, self.eigval, self.eigvec))

    @property
    def needs_stats(self) -> bool:
        return self.eigval is None

    def bind(self, dataset) -> PCALighting:
        if not self.needs_stats:
            return self
        stats = getattr(dataset, "stats", None) or {}
        if "eigval" not in stats or "eigvec" not in stats:
            raise ConfigError(
                f"PCALighting: the dataset {getattr(dataset, 'path', dataset)!s} has "
                "no RGB eigen statistics; pass eigval= and eigvec= explicitly"
            )
        return replace(self, eigval=stats["eigval"], eigvec=stats["eigvec"])

    def color(self, indices, seed: int, epoch: int, pos: int):
        if self.needs_stats:
            raise ConfigError(
                "PCALighting: eigval/eigvec are not set; pass eigval= and eigvec=, or bind the "
                "pipeline to a packed dataset with pipe.bind(dataset) to use its statistics"
            )
        n = len(indices)
        alpha = np.stack(
            [
                rng.normal(seed, epoch, indices, rng.stream_id(pos, i), 0.0, self.std)
                for i in range(3)
            ],
            axis=1,
        )
        lam = np.asarray(self.eigval)
        vec = np.asarray(self.eigvec)
        t = 255.0 * (alpha * lam[None, :]) @ vec.T  # sum_i alpha_i lambda_i v_i, v_i = vec[:, i]
        return np.tile(np.eye(3), (n, 1, 1)), t, np.zeros((n, 3, 3))
