"""``GridSample``: voxel-grid subsampling with Pointcept's FNV / ravel hashes, train and test modes."""
from __future__ import annotations

import numpy as np

from ..builder import TRANSFORMS
from .base import DEFAULT_INDEX_KEYS, Transform, index_operator

__all__ = ["GridSample", "fnv_hash_vec", "ravel_hash_vec"]

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)


def fnv_hash_vec(arr: np.ndarray) -> np.ndarray:
    """64-bit FNV hash of each row (multiply, then xor: FNV-1 order, as Pointcept's code does)."""
    arr = arr.astype(np.uint64)
    hashed = np.full(arr.shape[0], _FNV_OFFSET, dtype=np.uint64)
    for j in range(arr.shape[1]):
        hashed = hashed * _FNV_PRIME
        hashed = np.bitwise_xor(hashed, arr[:, j])
    return hashed


def ravel_hash_vec(arr: np.ndarray) -> np.ndarray:
    """Row-major linear index of each row after shifting the columns to start at 0."""
    arr = arr - arr.min(0)
    arr = arr.astype(np.uint64)
    extent = arr.max(0).astype(np.uint64) + np.uint64(1)
    keys = np.zeros(arr.shape[0], dtype=np.uint64)
    for j in range(arr.shape[1] - 1):
        keys = (keys + arr[:, j]) * extent[j + 1]
    return keys + arr[:, -1]


@TRANSFORMS.register_module()
class GridSample(Transform):
    """Keep one point per ``grid_size`` voxel (train mode) or split the cloud into parts (test mode).

    Train mode returns one dict holding, per voxel, one randomly chosen point. Test mode returns a list
    of ``max points per voxel`` dicts; part ``i`` holds point ``i % count`` of every voxel, so every
    voxel is in every part and every point in at least one, and carries ``index`` into the input.
    ``grid_coord`` (int64) = ``floor(coord / grid_size)`` minus its per-sample minimum.
    """

    def __init__(self, grid_size: float = 0.05, hash_type: str = "fnv", mode: str = "train",
                 return_inverse: bool = False, return_grid_coord: bool = False,
                 return_min_coord: bool = False, return_displacement: bool = False,
                 project_displacement: bool = False) -> None:
        if mode not in ("train", "test"):
            raise ValueError(f"GridSample: mode must be 'train' or 'test', got {mode!r}")
        if grid_size <= 0:
            raise ValueError(f"GridSample: grid_size must be > 0, got {grid_size}")
        self.grid_size, self.mode = grid_size, mode
        self.hash = fnv_hash_vec if hash_type == "fnv" else ravel_hash_vec
        self.hash_type = hash_type
        self.return_inverse, self.return_grid_coord = return_inverse, return_grid_coord
        self.return_min_coord, self.return_displacement = return_min_coord, return_displacement
        self.project_displacement = project_displacement

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict | list[dict]:
        self.require(data, "coord")
        if self.return_displacement and self.project_displacement:
            self.require(data, "normal")
        scaled = data["coord"] / np.array(self.grid_size)
        grid_coord = np.floor(scaled).astype(np.int64)
        min_coord = grid_coord.min(0)
        grid_coord -= min_coord
        scaled = scaled - min_coord
        key = self.hash(grid_coord)
        idx_sort = np.argsort(key, kind="stable")
        _, inverse, count = np.unique(key[idx_sort], return_inverse=True, return_counts=True)
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        extras = {"grid_coord": grid_coord, "scaled": scaled, "min": min_coord,
                  "idx_sort": idx_sort, "inverse": inverse}
        if self.mode == "train":
            pick = start + self.need_rng(rng).integers(0, count.max(), count.size) % count
            return self._part(data, idx_sort[pick], extras)
        parts = []
        for i in range(int(count.max())):
            idx_part = idx_sort[start + i % count]
            part = self._part(data, idx_part, extras)
            part["index"] = idx_part
            part["index_valid_keys"] = list(part["index_valid_keys"]) + ["index"]
            parts.append(part)
        return parts

    def _part(self, data: dict, idx: np.ndarray, extras: dict) -> dict:
        out = index_operator(data, idx)
        valid = list(data.get("index_valid_keys", DEFAULT_INDEX_KEYS))
        if self.return_inverse:
            inverse = np.zeros_like(extras["inverse"])
            inverse[extras["idx_sort"]] = extras["inverse"]
            out["inverse"] = inverse
        if self.return_grid_coord:
            out["grid_coord"] = extras["grid_coord"][idx]
            valid.append("grid_coord")
        if self.return_min_coord:
            out["min_coord"] = (extras["min"] * self.grid_size).reshape(1, 3)
        if self.return_displacement:
            disp = extras["scaled"] - extras["grid_coord"] - 0.5
            if self.project_displacement:
                disp = np.sum(disp * data["normal"], axis=-1, keepdims=True)
            out["displacement"] = disp[idx].astype(np.float32)
            valid.append("displacement")
        out["index_valid_keys"] = list(dict.fromkeys(valid))
        return out
