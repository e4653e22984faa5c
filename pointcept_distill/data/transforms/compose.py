"""``Compose``: build a transform list from configs and apply it in order with one generator."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..builder import TRANSFORMS
from .base import Transform

__all__ = ["Compose"]


class Compose(Transform):
    """Apply ``TRANSFORMS.build(cfg)`` for each cfg in ``cfgs`` (None or empty: identity)."""

    def __init__(self, cfgs: Sequence[dict | Transform] | None = None) -> None:
        self.transforms = [c if callable(c) else TRANSFORMS.build(c) for c in (cfgs or [])]

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict | list[dict]:
        rng = self.need_rng(rng)
        for transform in self.transforms:
            data = transform(data, rng)
        return data

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"
