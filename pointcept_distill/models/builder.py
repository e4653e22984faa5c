"""Model, module and loss registries (Pointcept's names)."""
from __future__ import annotations

import copy

from ..utils.registry import Registry

__all__ = ["MODELS", "MODULES", "LOSSES", "build_model"]

MODELS = Registry("models")
MODULES = Registry("modules")
LOSSES = Registry("losses")


def build_model(cfg: dict):
    """Build a model from ``dict(type=..., **kwargs)``; the config is deep-copied first, as Pointcept does."""
    return MODELS.build(copy.deepcopy(dict(cfg)))
