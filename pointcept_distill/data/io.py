"""Checked readers for the raw LiDAR files: errors name the file and what is wrong with it."""
from __future__ import annotations

import os
import pickle

import numpy as np

__all__ = ["read_records", "read_labels", "read_pickle", "build_lookup", "apply_learning_map",
           "check_count", "UnsafePickleError"]


class UnsafePickleError(ValueError, pickle.UnpicklingError):
    """A data pickle names a global outside the allowed plain types: it is not loaded (it could run code)."""


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The globals a pickle of numpy arrays, dtypes and scalars needs, under numpy 2's and numpy 1's module
    names (``numpy._core`` / ``numpy.core``)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


class _DataUnpickler(pickle.Unpickler):
    """Builds only what an info file holds: dicts, lists, tuples, strings, bytes, numbers, booleans, None
    (no global needed) and numpy arrays, dtypes and scalars; any other global is refused before it is
    looked up, so nothing in the file is imported or called."""

    allowed = _numpy_globals()

    def __init__(self, file, path: str) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.path}: refused to unpickle global '{module}.{name}': data pickles may hold only dicts, "
                f"lists, strings, numbers and numpy arrays, and loading anything else could run code") from None


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
    """Load a data pickle (e.g. an info file) with ``_DataUnpickler``: plain types and numpy arrays only,
    nothing executed; errors name the file (``UnsafePickleError``, a ``ValueError``, for a refused global)."""
    _require_file(path)
    with open(path, "rb") as f:
        try:
            return _DataUnpickler(f, path).load()
        except UnsafePickleError:
            raise
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
