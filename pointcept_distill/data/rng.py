"""Per-sample random generators derived from (seed, epoch, index, stream).

Every random transform draws from the ``np.random.Generator`` it is given, never from the global state.
A dataset hands each sample ``sample_rng(seed, epoch, index, stream)``, so a sample's augmentation is a
pure function of those four values: with a fixed seed a run is reproducible and a resumed run repeats
exactly (no RNG state needs checkpointing; the trainer only calls ``dataset.set_epoch(epoch)`` and uses
non-persistent workers, or rebuilds its loader per epoch). With ``seed=None`` fresh OS entropy is used.
"""
from __future__ import annotations

import zlib

import numpy as np

__all__ = ["sample_rng", "stream_id"]


def stream_id(name: str) -> int:
    """A stable 32-bit id for a stream name (e.g. the dataset name), so datasets do not share draws."""
    return zlib.crc32(name.encode("utf-8"))


def sample_rng(seed: int | None, epoch: int, index: int, stream: str = "") -> np.random.Generator:
    """Return the generator of sample ``index`` in ``epoch``; ``seed=None`` gives a non-reproducible one."""
    if seed is None:
        return np.random.default_rng()
    if seed < 0 or epoch < 0 or index < 0:
        raise ValueError(f"sample_rng: seed, epoch and index must be >= 0, got {seed}, {epoch}, {index}")
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, index, stream_id(stream)]))
