"""Deterministic data loading: per-epoch shuffling, per-sample seeds, resumable positions.

Datasets with per-sample generators (``set_seed``/``set_epoch``, see ``data/rng.py``) get the run's seed
and, inside whichever process loads the sample, the sample's epoch. Anything that still draws from the
global random states (python, numpy, torch) runs with them seeded from ``(seed, epoch, position in the
epoch's global order)`` and restored afterwards; the collate function is seeded from its first sample.
So the augmentation of a sample does not depend on the worker that loads it, on the number of workers
or processes, or on whether the run was resumed in the middle of the epoch. A resumed epoch skips the
samples already trained on.

``BalancedEpochSampler`` rearranges each epoch's global order so that at every step the processes get
batches of similar cost (point count), for runs whose step time is the slowest process's.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..models.plan import plan_batch
from ..utils import comm
from ..utils.misc import derive_seed, fork_rng_seeded

__all__ = ["EpochSampler", "BalancedEpochSampler", "build_train_sampler", "SeededSamples", "SeededCollate",
           "worker_init_fn", "unpack_collate"]

_FIXED_ORDER_STREAM = 7919  # seeds of validation / test samples, which do not change with the epoch
_CHUNK_ORDER_STREAM = 104729  # the order of the balanced sampler's chunks inside each window


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

    def _epoch_order(self) -> tuple[list[int], Sequence[int]]:
        """The epoch's global order and, for each of its positions, the position its sample's seed comes from."""
        order = self._global_order()
        return order, range(len(order))

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        stream = self.epoch if self.shuffle else _FIXED_ORDER_STREAM
        epoch = self.epoch if self.shuffle else 0
        order, seed_positions = self._epoch_order()
        positions = range(self.rank, len(order), self.world_size)
        for position in list(positions)[self.start:]:
            yield order[position], derive_seed(self.seed, stream, seed_positions[position]), epoch

    def __len__(self) -> int:
        total = self.num_samples
        if self.pad:
            return -(-total // self.world_size)
        return len(range(self.rank, total, self.world_size))


def deal_to_ranks(costs: np.ndarray, world_size: int) -> np.ndarray:
    """A layout of one chunk (``costs``: (n,), n a multiple of ``world_size``): the chunk positions such that
    layout position ``j * world_size + r`` holds rank ``r``'s ``j``-th item, every rank getting
    ``n // world_size`` items. Largest cost first, each item goes to the rank with the smallest total cost so
    far among those not yet full (ties: the lower rank)."""
    per_rank = len(costs) // world_size
    shares: list[list[int]] = [[] for _ in range(world_size)]
    totals = [0] * world_size
    for position in np.argsort(-costs, kind="stable").tolist():
        rank = min((r for r in range(world_size) if len(shares[r]) < per_rank), key=totals.__getitem__)
        shares[rank].append(position)
        totals[rank] += int(costs[position])
    return np.array([shares[r][j] for j in range(per_rank) for r in range(world_size)], dtype=np.int64)


def balance_order(order: np.ndarray, costs: np.ndarray, batch_size: int, world_size: int, bins: int,
                  gen: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The global ``order`` (sample indices, a multiple of ``world_size`` long) rearranged for balanced steps,
    and for each of its positions the seed position of the sample there.

    Chunks of ``batch_size * world_size`` items (one step of every rank) are cut from windows of ``bins``
    chunks, each window sorted by cost, so that a step's samples are of similar cost; the chunks of a window
    are put in an order drawn from ``gen``. The items after the last whole chunk (the epoch's last, shorter
    step) stay in their order as one more chunk. A sample's seed position is its position in this sequence
    of chunks, which does not depend on ``world_size`` (as long as the padding does not change the number of
    whole chunks); every chunk is then dealt to the ranks (``deal_to_ranks``).
    """
    chunk = batch_size * world_size
    whole = len(order) - len(order) % chunk
    chunks = []
    for start in range(0, whole, chunk * bins):
        window = order[start:min(start + chunk * bins, whole)]
        window = window[np.argsort(costs[window], kind="stable")]
        cut = [window[i:i + chunk] for i in range(0, len(window), chunk)]
        chunks += [cut[c] for c in torch.randperm(len(cut), generator=gen).tolist()]
    chunks.append(order[whole:])
    arranged, seed_positions, start = [], [], 0
    for items in chunks:
        layout = deal_to_ranks(costs[items], world_size)
        arranged.append(items[layout])
        seed_positions.append(start + layout)
        start += len(items)
    return np.concatenate(arranged), np.concatenate(seed_positions)


class BalancedEpochSampler(EpochSampler):
    """``EpochSampler`` (padded) whose global order is rearranged by ``balance_order`` for balanced steps.

    With ``batch_size`` items per process and step, step ``s`` of every process comes from the same chunk
    of similar-cost samples, dealt so that the processes' total costs are close. Everything else is as in
    ``EpochSampler``: the shares are disjoint, a sample's seed does not depend on the process that loads it
    (it comes from the sample's position in the chunk sequence, before dealing), the order depends only on
    ``(seed, epoch)`` and the costs, and ``set_epoch(epoch, start)`` skips this process's first ``start``
    items. One process with ``batch_size * world_size`` gets the same samples per step with the same seeds.

    Args:
        costs: a cost per sample index (e.g. ``get_data_sizes()``: point counts); every process must pass
            the same.
        batch_size: items per process and step (the loader's batch size).
        bins: chunks per window; 1 only deals each step's samples to the processes.
    """

    def __init__(self, costs: Sequence[int], batch_size: int, bins: int, seed: int, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True) -> None:
        if batch_size < 1 or bins < 1:
            raise ValueError(f"BalancedEpochSampler: batch_size={batch_size} and bins={bins} must be positive")
        super().__init__(len(costs), shuffle, seed, rank, world_size, pad=True)
        self.costs = np.asarray(costs, dtype=np.int64)  # (num_samples,)
        self.batch_size, self.bins = batch_size, bins

    def _epoch_order(self) -> tuple[list[int], Sequence[int]]:
        order = np.array(self._global_order(), dtype=np.int64)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, _CHUNK_ORDER_STREAM))
        arranged, seed_positions = balance_order(order, self.costs, self.batch_size, self.world_size,
                                                 self.bins, gen)
        return arranged.tolist(), seed_positions.tolist()


def build_train_sampler(dataset: Dataset, seed: int, batch_size: int, balance_ranks: int = 0) -> EpochSampler:
    """This process's training sampler: ``EpochSampler``, or with ``balance_ranks`` (config key: chunks per
    window, 0 = off) a ``BalancedEpochSampler`` over the dataset's ``get_data_sizes()`` (rank 0's, so that
    every process arranges the same order)."""
    if isinstance(balance_ranks, bool) or not isinstance(balance_ranks, int) or balance_ranks < 0:
        raise ValueError(f"balance_ranks={balance_ranks!r}: expected a number of chunks per window >= 0 "
                         f"(0: off)")
    rank, world_size = comm.get_rank(), comm.get_world_size()
    if not balance_ranks:
        return EpochSampler(len(dataset), shuffle=True, seed=seed, rank=rank, world_size=world_size)
    if not hasattr(dataset, "get_data_sizes"):
        raise TypeError(f"balance_ranks={balance_ranks} needs the sizes of the samples, which "
                        f"{type(dataset).__name__} does not give (no get_data_sizes())")
    costs = np.asarray(dataset.get_data_sizes(), dtype=np.int64)
    if len(costs) != len(dataset):
        raise ValueError(f"{type(dataset).__name__}.get_data_sizes() gave {len(costs)} sizes for "
                         f"{len(dataset)} samples")
    costs = comm.all_gather(costs)[0]
    return BalancedEpochSampler(costs, batch_size, balance_ranks, seed, rank=rank, world_size=world_size)


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


def planned_collate(collate: Callable[[list], dict], strides: tuple[int, ...], samples: list) -> dict:
    """``collate(samples)`` with its host-side ``plan`` for a backbone pooling with ``strides``
    (``models.plan.plan_batch``: made in the loader's workers, so the forward reads no size from the device)."""
    batch = collate(samples)
    return dict(batch, plan=plan_batch(batch, strides))


def unpack_collate(items: list[tuple[int, int, Any]]) -> list[tuple[int, Any]]:
    """Test-time collate: ``[(index, sample)]``, one scan at a time (the tester batches fragments)."""
    return [(index, sample) for index, _, sample in items]


def worker_init_fn(worker_id: int, num_workers: int, rank: int, seed: int) -> None:
    """Seed a loader worker from ``seed``, rank and worker id (a backstop: samples are seeded anyway)."""
    worker_seed = derive_seed(seed, rank * max(num_workers, 1) + worker_id)
    np.random.seed(worker_seed)
    torch.manual_seed(worker_seed)
    random.seed(worker_seed)
