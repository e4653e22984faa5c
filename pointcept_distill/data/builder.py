"""Dataset and transform registries (Pointcept's names)."""
from __future__ import annotations

from ..utils.registry import Registry

__all__ = ["DATASETS", "TRANSFORMS", "build_dataset"]

DATASETS = Registry("datasets")
TRANSFORMS = Registry("transforms")


def build_dataset(cfg: dict):
    """Build a dataset from ``dict(type=..., **kwargs)`` (not deep-copied, as Pointcept)."""
    return DATASETS.build(cfg)
