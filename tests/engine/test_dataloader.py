"""EpochSampler and seeded loading: shuffling per epoch, sharding, resume positions, seeds."""
from __future__ import annotations

import random

import numpy as np
import torch

from pointcept_distill.engine.dataloader import EpochSampler, SeededCollate, SeededSamples


def test_epochs_shuffle_differently_and_repeat_with_the_seed():
    a, b = EpochSampler(10, shuffle=True, seed=1), EpochSampler(10, shuffle=True, seed=1)
    first = list(a)
    assert first == list(b) and sorted(i for i, _, _ in first) == list(range(10))
    a.set_epoch(1)
    assert [i for i, _, _ in a] != [i for i, _, _ in first]


def test_shards_of_two_processes_interleave_to_the_single_process_order():
    single = list(EpochSampler(7, shuffle=True, seed=5))
    ranks = [list(EpochSampler(7, shuffle=True, seed=5, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 4  # padded to 8
    merged = [item for pair in zip(*ranks) for item in pair]
    assert merged[:7] == single
    assert merged[7][0] == single[0][0]  # padding repeats the start of the order


def test_validation_shards_are_not_padded():
    shards = [list(EpochSampler(5, shuffle=False, seed=0, rank=r, world_size=2, pad=False)) for r in range(2)]
    assert sorted(i for shard in shards for i, _, _ in shard) == list(range(5))


def test_start_skips_items_of_the_epoch():
    sampler = EpochSampler(8, shuffle=True, seed=2)
    sampler.set_epoch(3)
    full = list(sampler)
    sampler.set_epoch(3, start=5)
    assert list(sampler) == full[5:]
    assert len(sampler) == 8


class _GlobalRandomDataset(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, idx: int) -> float:
        return np.random.rand() + random.random() + torch.rand(1).item()


def test_samples_are_seeded_and_leave_the_caller_random_state_alone():
    wrapped = SeededSamples(_GlobalRandomDataset())
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = wrapped[(1, 123, 0)]
    assert torch.equal(torch.get_rng_state(), before)
    assert wrapped[(1, 123, 0)] == first and wrapped[(1, 124, 0)] != first
    collate = SeededCollate(lambda samples: sum(samples) + random.random())
    assert collate([first, first]) == collate([first, first])


class _EpochAware(torch.utils.data.Dataset):
    seed = None

    def __init__(self) -> None:
        self.epoch = None

    def set_seed(self, seed: int) -> None:
        self.seed = seed

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 1

    def __getitem__(self, idx: int) -> tuple:
        return self.seed, self.epoch


def test_dataset_gets_run_seed_and_sample_epoch():
    wrapped = SeededSamples(_EpochAware(), seed=9)
    assert wrapped[(0, 1, 4)][2] == (9, 4)
