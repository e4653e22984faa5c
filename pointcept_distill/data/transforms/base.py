"""The transform base class and the point-subset helper shared by index-selecting transforms."""
from __future__ import annotations

from typing import Iterable

import numpy as np

__all__ = ["Transform", "DEFAULT_INDEX_KEYS", "index_operator"]

DEFAULT_INDEX_KEYS = ("coord", "color", "normal", "superpoint", "strength", "segment", "instance")


class Transform:
    """A callable ``(data, rng) -> new dict``; it never edits its input dict in place.

    Random transforms draw only from ``rng`` (a ``np.random.Generator``); deterministic ones ignore it.
    """

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict | list[dict]:
        raise NotImplementedError

    def require(self, data: dict, *keys: str) -> None:
        """Raise ``KeyError`` naming the first missing key and this transform."""
        for key in keys:
            if key not in data:
                raise KeyError(f"{type(self).__name__}: sample has no '{key}' key "
                               f"(keys: {sorted(data)})")

    @staticmethod
    def need_rng(rng: np.random.Generator | None) -> np.random.Generator:
        """The given generator, or a fresh unseeded one (not reproducible) when none is passed."""
        return rng if rng is not None else np.random.default_rng()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def index_operator(data: dict, index: np.ndarray, extra_keys: Iterable[str] = ()) -> dict:
    """Return a new dict whose per-point keys (``data['index_valid_keys']``) are subset by ``index``."""
    out = dict(data)
    keys = dict.fromkeys(list(data.get("index_valid_keys", DEFAULT_INDEX_KEYS)) + list(extra_keys))
    for key in keys:
        if key in data:
            out[key] = data[key][index]
    return out
