"""``SphereCrop``: keep the ``point_max`` points nearest a centre when a cloud is larger."""
from __future__ import annotations

import numpy as np

from ..builder import TRANSFORMS
from .base import Transform, index_operator

__all__ = ["SphereCrop"]


@TRANSFORMS.register_module()
class SphereCrop(Transform):
    """Crop to the ``point_max`` (or ``sample_rate * N``) points nearest a centre.

    ``mode="random"`` centres on a random point, ``"center"`` on the middle point of the array.
    """

    def __init__(self, point_max: int = 80000, sample_rate: float | None = None,
                 mode: str = "random") -> None:
        if mode not in ("random", "center"):
            raise ValueError(f"SphereCrop: mode must be 'random' or 'center', got {mode!r}")
        self.point_max, self.sample_rate, self.mode = point_max, sample_rate, mode

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict:
        self.require(data, "coord")
        coord = data["coord"]
        n = coord.shape[0]
        limit = int(self.sample_rate * n) if self.sample_rate is not None else self.point_max
        if n <= limit:
            return dict(data)
        if self.mode == "random":
            center = coord[self.need_rng(rng).integers(n)]
        else:
            center = coord[n // 2]
        keep = np.argsort(np.sum(np.square(coord - center), axis=1), kind="stable")[:limit]
        return index_operator(data, keep, extra_keys=("grid_coord", "index", "displacement"))
