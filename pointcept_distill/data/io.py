"""Checked readers for the raw LiDAR files: errors name the file and what is wrong with it."""
from __future__ import annotations

import os
import pickle

import numpy as np

__all__ = ["read_records", "read_labels", "read_pickle", "build_lookup", "apply_learning_map",
           "check_count"]


def _require_file(path: str) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")


def read_records(path: str, dtype: np.dtype | type, width: int) -> np.ndarray:
    """Read a flat binary file of ``width`` values of ``dtype`` per record as an (N, width) array."""
    _require_file(path)
    record = np.dtype(dtype).itemsize * width
    size = os.path.getsize(path)
    if size % record:
        raise ValueError(f"{path}: size {size} B is not a whole number of {record} B records "
                         f"({width} x {np.dtype(dtype).name})")
    return np.fromfile(path, dtype=dtype).reshape(-1, width)


def read_labels(path: str, dtype: np.dtype | type) -> np.ndarray:
    """Read a flat per-point label file as a 1-D array."""
    return read_records(path, dtype, 1).reshape(-1)


def read_pickle(path: str) -> object:
    """Load a pickle, naming the file when it is missing or unreadable."""
    _require_file(path)
    with open(path, "rb") as f:
        try:
            return pickle.load(f)
        except Exception as err:
            raise ValueError(f"{path}: not a readable pickle ({err})") from err


def check_count(points: int, labels: int, points_path: str, labels_path: str) -> None:
    """Raise when a label file does not hold exactly one label per point."""
    if points != labels:
        raise ValueError(f"{labels_path}: {labels} labels but {points_path} has {points} points")


def build_lookup(learning_map: dict[int, int | None], ignore_index: int) -> np.ndarray:
    """Turn ``{raw_id: train_id or None}`` into an int64 table; None becomes ``ignore_index``."""
    unknown = np.iinfo(np.int64).min
    table = np.full(max(learning_map) + 1, unknown, dtype=np.int64)
    for raw, train in learning_map.items():
        table[raw] = ignore_index if train is None else train
    return table


def apply_learning_map(raw: np.ndarray, table: np.ndarray, path: str) -> np.ndarray:
    """Map raw label ids through ``table``; ids outside the map raise naming the file and the ids."""
    raw = raw.astype(np.int64, copy=False)
    bad = (raw < 0) | (raw >= len(table))
    bad[~bad] = table[raw[~bad]] == np.iinfo(np.int64).min
    if bad.any():
        ids = np.unique(raw[bad])[:10].tolist()
        raise ValueError(f"{path}: label ids {ids} are not in the learning map "
                         f"({int(bad.sum())} points)")
    return table[raw]
