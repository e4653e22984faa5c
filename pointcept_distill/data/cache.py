"""A machine-wide cache of decoded samples in shared memory (SharedArray), shared by all processes.

Entry names derive from the absolute data root and the sample name, so two datasets never collide and
every training process of one machine maps the same pages. A writer creates the arrays of a sample and
then a ``ready`` marker holding the key list; readers attach only to entries whose marker exists, so a
half-written entry is never read. Entries live until ``clear_cache`` (or a reboot) removes them.
"""
from __future__ import annotations

import hashlib
import os
import re
from typing import Callable

import numpy as np

__all__ = ["cache_prefix", "cached_sample", "clear_cache"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def cache_prefix(data_root: str) -> str:
    """The name prefix of every cache entry of ``data_root``."""
    digest = hashlib.sha1(os.path.abspath(data_root).encode("utf-8")).hexdigest()[:16]
    return f"pdistill-{digest}-"


def _entry(data_root: str, name: str) -> str:
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return f"{cache_prefix(data_root)}{_UNSAFE.sub('_', name)[:80]}-{digest}"


def _shared_array():
    """SharedArray, imported only when a dataset has ``cache=True`` (a plain install may lack it)."""
    try:
        import SharedArray
    except ImportError as err:
        raise ImportError("dataset option cache=True needs the SharedArray package (pip install SharedArray)") from err
    return SharedArray


def _attach(entry: str) -> dict[str, np.ndarray] | None:
    SharedArray = _shared_array()
    try:
        marker = SharedArray.attach(f"shm://{entry}.ready", ro=True)
    except (FileNotFoundError, OSError):
        return None
    keys = bytes(marker).decode("utf-8").split(",") if marker.size else []
    return {key: SharedArray.attach(f"shm://{entry}.{key}", ro=True) for key in keys}


def _publish(entry: str, arrays: dict[str, np.ndarray]) -> bool:
    """Write the arrays then the marker; False if another process got there first."""
    SharedArray = _shared_array()
    try:
        for key, value in arrays.items():
            shared = SharedArray.create(f"shm://{entry}.{key}", value.shape, value.dtype)
            shared[...] = value
        keys = np.frombuffer(",".join(arrays).encode("utf-8"), dtype=np.uint8)
        marker = SharedArray.create(f"shm://{entry}.ready", keys.shape, np.uint8)
        marker[...] = keys
    except FileExistsError:
        return False
    return True


def cached_sample(data_root: str, name: str,
                  load: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Return the decoded arrays of sample ``name``: from shared memory, or ``load()`` and publish them.

    The returned arrays of a cache hit are read-only views of the shared copy.
    """
    entry = _entry(data_root, name)
    hit = _attach(entry)
    if hit is not None:
        return hit
    arrays = load()
    if _publish(entry, {k: np.ascontiguousarray(v) for k, v in arrays.items()}):
        return _attach(entry)
    return arrays


def clear_cache(data_root: str) -> int:
    """Delete every cache entry of ``data_root``; returns how many shared arrays were removed."""
    SharedArray = _shared_array()
    prefix = cache_prefix(data_root)
    names = [item.name.decode() if isinstance(item.name, bytes) else item.name
             for item in SharedArray.list()]
    removed = 0
    for name in names:
        if name.startswith(prefix):
            SharedArray.delete(f"shm://{name}")
            removed += 1
    return removed
