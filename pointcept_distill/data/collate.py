"""Batch collation: concatenated points with cumulative ``offset``s, and Mix3D scene mixing.

One deliberate difference from Pointcept: ``inverse`` (from ``GridSample(return_inverse=True)``) is
shifted by the number of points of the preceding samples, so ``pred[inverse]`` is right for batches
of more than one sample (upstream is only right with one; engine-data-notes T9).
"""
from __future__ import annotations

import zlib
from typing import Mapping, Sequence

import numpy as np
import torch

__all__ = ["collate_fn", "point_collate_fn"]


def _offset_counts(offset: torch.Tensor) -> torch.Tensor:
    return torch.diff(offset, prepend=offset.new_zeros(1))


def _collate_dicts(batch: Sequence[Mapping]) -> dict:
    out = {}
    for key in batch[0]:
        missing = [i for i, sample in enumerate(batch) if key not in sample]
        if missing:
            raise KeyError(f"collate_fn: key '{key}' missing from samples {missing} of the batch")
        values = [sample[key] for sample in batch]
        if "offset" in key:
            counts = torch.cat([_offset_counts(torch.as_tensor(v)) for v in values])
            out[key] = torch.cumsum(counts, dim=0)
        elif key == "inverse" and "offset" in batch[0]:
            starts = [0] + [int(sample["offset"][-1]) for sample in batch[:-1]]
            shift = np.cumsum(starts).tolist()
            out[key] = torch.cat([torch.as_tensor(v) + s for v, s in zip(values, shift)])
        else:
            out[key] = collate_fn(values)
    return out


def collate_fn(batch: Sequence) -> object:
    """Collate a list of samples: tensors/arrays are concatenated along dim 0, strings listed,
    numbers stacked, dicts and sequences collated per key / position; ``*offset*`` keys become
    cumulative over the batch."""
    if not isinstance(batch, Sequence) or len(batch) == 0:
        raise TypeError(f"collate_fn: expected a non-empty list of samples, got {type(batch).__name__}")
    first = batch[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(list(batch), dim=0)
    if isinstance(first, np.ndarray):
        return torch.cat([torch.from_numpy(np.ascontiguousarray(b)) for b in batch], dim=0)
    if isinstance(first, str):
        return list(batch)
    if isinstance(first, (bool, int, float, np.number)):
        return torch.tensor(batch)
    if isinstance(first, Mapping):
        return _collate_dicts(batch)
    if isinstance(first, Sequence):
        return [collate_fn(list(items)) for items in zip(*batch)]
    raise TypeError(f"collate_fn: cannot collate {type(first).__name__}")


def _batch_rng(batch: dict) -> np.random.Generator:
    """A generator seeded by the batch's own bytes: the mixing decision is a pure function of the
    batch, so it repeats exactly whenever the batch does (reproducible runs, exact resume)."""
    seed = 0
    for key in ("offset", "coord"):
        if key in batch and isinstance(batch[key], torch.Tensor):
            seed = zlib.crc32(batch[key].contiguous().numpy().tobytes(), seed)
    return np.random.default_rng(seed)


def point_collate_fn(batch: Sequence[Mapping], mix_prob: float = 0.0,
                     rng: np.random.Generator | None = None) -> dict:
    """``collate_fn``, then with probability ``mix_prob`` Mix3D: consecutive pairs of samples become one
    scene (every ``*offset*`` key drops its odd entries but keeps the last), points unmoved.

    Args:
        batch: list of sample dicts (after ``Collect``).
        mix_prob: probability of mixing this batch.
        rng: generator for the mixing draw; by default one seeded from the batch contents.
    """
    if not isinstance(batch[0], Mapping):
        raise TypeError(f"point_collate_fn: samples must be dicts, got {type(batch[0]).__name__}")
    out = collate_fn(batch)
    if mix_prob > 0 and "offset" in out:
        rng = rng if rng is not None else _batch_rng(out)
        if rng.random() < mix_prob:
            for key in [k for k in out if "offset" in k]:
                out[key] = torch.cat([out[key][1:-1:2], out[key][-1:]])
    return out
