"""Deterministic data loading: per-epoch shuffling, per-sample seeds, resumable positions.

Datasets with per-sample generators (``set_seed``/``set_epoch``, see ``data/rng.py``) get the run's seed
and, inside whichever process loads the sample, the sample's epoch. Anything that still draws from the
global random states (python, numpy, torch) runs with them seeded from ``(seed, epoch, position in the
epoch's global order)`` and restored afterwards; the collate function is seeded from its first sample.
So the augmentation of a sample does not depend on the worker that loads it, on the number of workers
or processes, or on whether the run was resumed in the middle of the epoch. A resumed epoch skips the
samples already trained on.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..utils.misc import derive_seed, fork_rng_seeded

__all__ = ["EpochSampler", "SeededSamples", "SeededCollate", "worker_init_fn",
           "unpack_collate"]

_FIXED_ORDER_STREAM = 7919  # seeds of validation / test samples, which do not change with the epoch


class EpochSampler(Sampler):
    """Yields ``(index, sample_seed, epoch)``; this process's share of one epoch's global order.

    The global order is a permutation seeded by ``(seed, epoch)`` (or ``range(n)`` without shuffle).
    With ``pad``, it is padded by repetition to a multiple of ``world_size`` and rank ``r`` takes items
    ``r, r + world_size, ...`` (as ``DistributedSampler``): a batch of ``b`` per process over ``w``
    processes then holds the same samples, with the same seeds, as a batch of ``b * w`` in one process.
    Without ``pad`` (validation, test) the shares are uneven and no sample is repeated.
    """

    def __init__(self, num_samples: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1,
                 pad: bool = True) -> None:
        self.num_samples, self.shuffle, self.seed = num_samples, shuffle, seed
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch; the next iteration skips this process's first ``start`` items."""
        self.epoch, self.start = epoch, start

    def _global_order(self) -> list[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
            order = torch.randperm(self.num_samples, generator=gen).tolist()
        else:
            order = list(range(self.num_samples))
        if self.pad and self.num_samples and len(order) % self.world_size:
            extra = self.world_size - len(order) % self.world_size
            order += (order * (extra // len(order) + 1))[:extra]
        return order

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        stream = self.epoch if self.shuffle else _FIXED_ORDER_STREAM
        epoch = self.epoch if self.shuffle else 0
        order = self._global_order()
        positions = range(self.rank, len(order), self.world_size)
        for position in list(positions)[self.start:]:
            yield order[position], derive_seed(self.seed, stream, position), epoch

    def __len__(self) -> int:
        total = self.num_samples
        if self.pad:
            return -(-total // self.world_size)
        return len(range(self.rank, total, self.world_size))


class SeededSamples(Dataset):
    """Wraps a map-style dataset: item ``(index, seed, epoch)`` -> ``(index, seed, dataset[index])``.

    The sample is loaded under ``seed`` (global random states) after ``dataset.set_epoch(epoch)`` (if the
    dataset has it); a dataset whose ``seed`` is None gets ``seed`` from ``set_seed`` (if it has it).
    """

    def __init__(self, dataset: Dataset, seed: int | None = None) -> None:
        self.dataset = dataset
        self._epoch: int | None = None
        if seed is not None and getattr(dataset, "seed", 0) is None and hasattr(dataset, "set_seed"):
            dataset.set_seed(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int, int]) -> tuple[int, int, Any]:
        index, seed, epoch = item
        if epoch != self._epoch and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
            self._epoch = epoch
        return index, seed, fork_rng_seeded(seed, lambda: self.dataset[index])


class SeededCollate:
    """Collates the samples of ``SeededSamples`` items under a seed derived from the first one."""

    def __init__(self, collate_fn: Callable[[list], Any]) -> None:
        self.collate_fn = collate_fn

    def __call__(self, items: list[tuple[int, int, Any]]) -> Any:
        samples = [sample for _, _, sample in items]
        return fork_rng_seeded(derive_seed(items[0][1], 1), lambda: self.collate_fn(samples))


def unpack_collate(items: list[tuple[int, int, Any]]) -> list[tuple[int, Any]]:
    """Test-time collate: ``[(index, sample)]``, one scan at a time (the tester batches fragments)."""
    return [(index, sample) for index, _, sample in items]


def worker_init_fn(worker_id: int, num_workers: int, rank: int, seed: int) -> None:
    """Seed a loader worker from ``seed``, rank and worker id (a backstop: samples are seeded anyway)."""
    worker_seed = derive_seed(seed, rank * max(num_workers, 1) + worker_id)
    np.random.seed(worker_seed)
    torch.manual_seed(worker_seed)
    random.seed(worker_seed)
