"""Key bookkeeping transforms: Copy, Update, ToTensor, Collect."""
from __future__ import annotations

import copy
from typing import Mapping, Sequence

import numpy as np
import torch

from ..builder import TRANSFORMS
from .base import Transform

__all__ = ["Copy", "Update", "ToTensor", "Collect"]


@TRANSFORMS.register_module()
class Copy(Transform):
    """Copy ``data[src]`` to ``data[dst]`` for each ``src: dst`` of ``keys_dict`` (a deep copy)."""

    def __init__(self, keys_dict: Mapping[str, str] | None = None) -> None:
        self.keys_dict = dict(keys_dict) if keys_dict is not None else {
            "coord": "origin_coord", "segment": "origin_segment"}

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict:
        self.require(data, *self.keys_dict)
        out = dict(data)
        for src, dst in self.keys_dict.items():
            value = data[src]
            out[dst] = value.copy() if isinstance(value, np.ndarray) else copy.deepcopy(value)
        return out


@TRANSFORMS.register_module()
class Update(Transform):
    """Set constant keys, e.g. ``Update(keys_dict={"grid_size": 0.05})``."""

    def __init__(self, keys_dict: Mapping[str, object] | None = None) -> None:
        self.keys_dict = dict(keys_dict or {})

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict:
        out = dict(data)
        out.update(copy.deepcopy(self.keys_dict))
        return out


def _to_tensor(value: object) -> object:
    if isinstance(value, torch.Tensor) or isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        if not value.flags.writeable:  # cache hits are read-only views; torch wants writable memory
            value = value.copy()
        if np.issubdtype(value.dtype, np.bool_):
            return torch.from_numpy(value)
        if np.issubdtype(value.dtype, np.integer):
            return torch.from_numpy(value).long()
        if np.issubdtype(value.dtype, np.floating):
            return torch.from_numpy(value).float()
        raise TypeError(f"ToTensor: cannot convert an array of dtype {value.dtype}")
    if isinstance(value, (bool, np.bool_)):
        return torch.tensor([bool(value)])
    if isinstance(value, (int, np.integer)):
        return torch.LongTensor([int(value)])
    if isinstance(value, (float, np.floating)):
        return torch.FloatTensor([float(value)])
    if isinstance(value, Mapping):
        return {k: _to_tensor(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [_to_tensor(v) for v in value]
    raise TypeError(f"ToTensor: cannot convert {type(value).__name__}")


@TRANSFORMS.register_module()
class ToTensor(Transform):
    """numpy -> torch: integers become int64, floats float32, bools bool; recurses into dicts/lists."""

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict:
        return _to_tensor(data)


@TRANSFORMS.register_module()
class Collect(Transform):
    """Keep only ``keys``, add ``offset`` (point counts) and concatenated feature groups.

    Args:
        keys: keys copied as they are.
        offset_keys_dict: ``{out_key: key}``; ``out_key`` becomes ``tensor([len(data[key])])``.
        **kwargs: ``<name>_keys=(k1, k2, ...)`` adds ``<name>`` = the keys concatenated along dim 1
            as float (``feat_keys=("coord", "strength")`` gives an (N, 4) ``feat``).
    """

    def __init__(self, keys: str | Sequence[str], offset_keys_dict: Mapping[str, str] | None = None,
                 **kwargs: Sequence[str]) -> None:
        self.keys = (keys,) if isinstance(keys, str) else tuple(keys)
        self.offset_keys_dict = dict(offset_keys_dict) if offset_keys_dict is not None else {
            "offset": "coord"}
        self.groups = {}
        for name, group in kwargs.items():
            if not name.endswith("_keys"):
                raise TypeError(f"Collect: unexpected argument '{name}' (feature groups end in _keys)")
            self.groups[name[: -len("_keys")]] = (group,) if isinstance(group, str) else tuple(group)

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict:
        needed = list(self.keys) + list(self.offset_keys_dict.values())
        self.require(data, *needed, *(k for g in self.groups.values() for k in g))
        out = {key: data[key] for key in self.keys}
        for out_key, key in self.offset_keys_dict.items():
            out[out_key] = torch.tensor([data[key].shape[0]])
        for name, group in self.groups.items():
            parts = [torch.as_tensor(data[k]).float() for k in group]
            out[name] = torch.cat([p.reshape(p.shape[0], -1) for p in parts], dim=1)
        return out
