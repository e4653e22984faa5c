"""Moving batches between devices and tensors to numpy: the one helper of each for the whole package."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["to_device", "to_numpy"]


def to_device(obj: Any, device: torch.device | str) -> Any:
    """``obj`` with every tensor moved to ``device`` (asynchronously where the copy allows it), through dicts
    and lists; other values are returned as they are."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_device(v, device) for v in obj]
    return obj


def to_numpy(value: Any) -> np.ndarray:
    """A tensor (on any device) or an array-like as a numpy array."""
    return value.cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
