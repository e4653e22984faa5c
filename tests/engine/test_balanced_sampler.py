"""BalancedEpochSampler (``balance_ranks``): every step's per-process batches of similar cost, shares disjoint per
epoch, the order deterministic from the seed, resumable mid-epoch; off, the sampler is EpochSampler as before."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

import torch

from pointcept_distill.data.builder import DATASETS
from pointcept_distill.engine import Trainer, default_config_parser, default_setup
from pointcept_distill.engine.dataloader import BalancedEpochSampler, EpochSampler, build_train_sampler
from pointcept_distill.utils.config import OptionError, parse_options
from toy_components import ToyPointDataset, toy_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def skewed_costs(n: int, seed: int = 0) -> np.ndarray:
    """Point counts spread as real scans' are not: log-normal, a few times apart."""
    return np.random.default_rng(seed).lognormal(10, 0.8, n).astype(np.int64)


def shares(sampler_of_rank, world_size: int) -> list[list[tuple[int, int, int]]]:
    """Every rank's items, each from a sampler built for that rank."""
    return [list(sampler_of_rank(rank)) for rank in range(world_size)]


def balanced(costs, batch_size: int, bins: int, world_size: int, seed: int = 0, epoch: int = 0):
    def make(rank: int) -> BalancedEpochSampler:
        sampler = BalancedEpochSampler(costs, batch_size, bins, seed, rank=rank, world_size=world_size)
        sampler.set_epoch(epoch)
        return sampler
    return shares(make, world_size)


def unbalanced(costs, world_size: int, seed: int = 0):
    return shares(lambda rank: EpochSampler(len(costs), True, seed, rank=rank, world_size=world_size), world_size)


def mean_step_spread(ranks: list[list[tuple[int, int, int]]], costs: np.ndarray, batch_size: int) -> float:
    """Mean over the whole steps of (largest - smallest) total cost of the ranks' batches."""
    steps = len(ranks[0]) // batch_size
    totals = np.array([[sum(costs[i] for i, _, _ in share[s * batch_size:(s + 1) * batch_size]) for share in ranks]
                       for s in range(steps)])  # (steps, world_size)
    return float((totals.max(1) - totals.min(1)).mean())


@pytest.mark.parametrize("world_size,batch_size,bins", [(4, 3, 4), (3, 2, 1), (1, 5, 3)])
def test_shares_are_disjoint_and_complete(world_size, batch_size, bins):
    costs = skewed_costs(103)
    ranks = balanced(costs, batch_size, bins, world_size, epoch=2)
    per_rank = -(-103 // world_size)
    assert [len(share) for share in ranks] == [per_rank] * world_size
    counts = Counter(i for share in ranks for i, _, _ in share)
    assert set(counts) == set(range(103))
    assert sum(counts.values()) - 103 == per_rank * world_size - 103  # only the padding repeats a sample
    seeds = [seed for share in ranks for _, seed, _ in share]
    assert len(set(seeds)) == len(seeds)  # every position of the epoch has its own seed


def test_order_repeats_with_the_seed_and_changes_with_the_epoch_and_seed():
    costs = skewed_costs(60)
    first = balanced(costs, 2, 3, 2, seed=4, epoch=1)
    assert balanced(costs, 2, 3, 2, seed=4, epoch=1) == first
    assert [i for i, _, _ in balanced(costs, 2, 3, 2, seed=4, epoch=2)[0]] != [i for i, _, _ in first[0]]
    assert [i for i, _, _ in balanced(costs, 2, 3, 2, seed=5, epoch=1)[0]] != [i for i, _, _ in first[0]]


@pytest.mark.parametrize("bins,factor", [(1, 1.4), (8, 4), (32, 8)])
def test_steps_are_far_better_balanced_than_without(bins, factor):
    costs, batch_size, world_size = skewed_costs(400, seed=1), 2, 4
    spread = mean_step_spread(balanced(costs, batch_size, bins, world_size), costs, batch_size)
    plain = mean_step_spread(unbalanced(costs, world_size), costs, batch_size)
    assert spread * factor < plain, (spread, plain)


def test_similar_costs_share_a_step():
    costs, batch_size, world_size = skewed_costs(400, seed=2), 2, 4
    ranks = balanced(costs, batch_size, 8, world_size)
    step_costs = [[costs[i] for share in ranks for i, _, _ in share[s * batch_size:(s + 1) * batch_size]]
                  for s in range(len(ranks[0]) // batch_size)]
    within = np.mean([np.std(c) for c in step_costs])
    assert within < np.std(costs) / 4  # a step holds samples of one size bin, not a sample of every size


def test_resume_yields_the_tail_of_the_epoch_with_the_same_seeds():
    costs, batch_size = skewed_costs(50), 3
    sampler = BalancedEpochSampler(costs, batch_size, 2, seed=8, rank=1, world_size=2)
    sampler.set_epoch(3)
    full = list(sampler)
    for steps in (1, 4, len(full) // batch_size):
        sampler.set_epoch(3, steps * batch_size)
        assert list(sampler) == full[steps * batch_size:]


def test_one_process_with_the_whole_batch_gets_the_same_steps_and_seeds():
    costs, batch_size, world_size = skewed_costs(48), 3, 4  # 48: whole steps, no padding
    ranks = balanced(costs, batch_size, 2, world_size, epoch=1)
    (single,) = balanced(costs, batch_size * world_size, 2, 1, epoch=1)
    steps = len(single) // (batch_size * world_size)
    for s in range(steps):
        together = [item for share in ranks for item in share[s * batch_size:(s + 1) * batch_size]]
        assert sorted(together) == sorted(single[s * batch_size * world_size:(s + 1) * batch_size * world_size])


class _Sized:
    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes

    def __len__(self) -> int:
        return len(self.sizes)

    def get_data_sizes(self) -> list[int]:
        return self.sizes


def test_switched_off_the_sampler_is_todays_epoch_sampler():
    sampler = build_train_sampler(_Sized([5, 1, 9, 3, 7, 2, 8]), seed=11, batch_size=1, balance_ranks=0)
    assert type(sampler) is EpochSampler
    sampler.set_epoch(2)
    reference = EpochSampler(7, shuffle=True, seed=11)
    reference.set_epoch(2)
    assert list(sampler) == list(reference)
    # EpochSampler's order and seeds as they were before the balanced sampler existed
    before = EpochSampler(7, shuffle=True, seed=11, rank=1, world_size=3)
    before.set_epoch(2)
    assert list(before) == [(3, 2549836301, 2), (6, 4063126396, 2), (4, 3171471543, 2)]


def test_switched_on_the_sampler_uses_the_dataset_sizes():
    sizes = skewed_costs(30).tolist()
    sampler = build_train_sampler(_Sized(sizes), seed=3, batch_size=2, balance_ranks=4)
    assert isinstance(sampler, BalancedEpochSampler) and sampler.costs.tolist() == sizes
    assert list(sampler) == list(BalancedEpochSampler(sizes, 2, 4, seed=3))


@pytest.mark.parametrize("value", [-1, 1.5, True, "2"])
def test_bad_balance_ranks_is_refused(value):
    with pytest.raises(ValueError, match="balance_ranks"):
        build_train_sampler(_Sized([1, 2]), seed=0, batch_size=1, balance_ranks=value)


def test_balance_ranks_needs_a_dataset_with_sizes():
    with pytest.raises(TypeError, match="get_data_sizes"):
        build_train_sampler(list(range(4)), seed=0, batch_size=1, balance_ranks=2)


def _parse(tmp_path, *options: str):
    config = os.path.join(ROOT, "configs", "nuscenes", "semseg-pt-v3m1-0-base.py")
    return default_config_parser(config, parse_options([f"save_path={tmp_path / 'exp'}", *options]), dump=False)


def test_config_key_is_declared_off_and_checked_like_the_others(tmp_path):
    assert _parse(tmp_path).balance_ranks == 0
    assert _parse(tmp_path, "balance_ranks=8").balance_ranks == 8
    with pytest.raises(OptionError, match=r"balance_ranks=abc: expected an integer \(the config has 0\)"):
        _parse(tmp_path, "balance_ranks=abc")
    with pytest.raises(OptionError, match="unknown config key 'balance_rank'.*'balance_ranks'"):
        _parse(tmp_path, "balance_rank=8")


class SizedToyPointDataset(ToyPointDataset):
    """The toy dataset with made-up, uneven sizes (its clouds are all alike)."""

    def get_data_sizes(self) -> list[int]:
        return [(i * 37) % 11 + 1 for i in range(len(self))]


DATASETS.register_module(module=SizedToyPointDataset, force=True)


def _train(path, **overrides) -> Trainer:
    hooks = [dict(type="CheckpointLoader"), dict(type="InformationWriter"), dict(type="SemSegEvaluator"),
             dict(type="CheckpointSaver", save_freq_iter=1)]
    crash_at = overrides.pop("crash_at", None)
    hooks += [dict(type="CrashAt", global_iter=crash_at)] if crash_at else []
    cfg = toy_cfg(path, hooks=hooks, balance_ranks=2, **overrides)
    cfg.data.train.type = "SizedToyPointDataset"
    trainer = Trainer(default_setup(cfg))
    if crash_at:
        with pytest.raises(RuntimeError, match="planned crash"):
            trainer.train()
    else:
        trainer.train()
    return trainer


def test_training_with_balanced_ranks_resumes_exactly(tmp_path):
    reference = _train(tmp_path / "ref")
    assert isinstance(reference.train_loader.sampler, BalancedEpochSampler)
    _train(tmp_path / "run", crash_at=6)
    resumed = _train(tmp_path / "run", resume=True, weight=str(tmp_path / "run" / "model" / "model_last.pth"))
    for key, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


_GLOO_RANKS = """
import os
import sys
from collections import Counter

import numpy as np

from pointcept_distill.data import build_dataset
from pointcept_distill.engine.dataloader import EpochSampler, build_train_sampler
from pointcept_distill.engine.launch import launch
from pointcept_distill.utils import comm

ROOT, BATCH, BINS, SEED = sys.argv[1], 2, 8, 21


def step_spread(shares, costs):
    steps = len(shares[0]) // BATCH
    totals = np.array([[costs[[i for i, _, _ in s[k * BATCH:(k + 1) * BATCH]]].sum() for s in shares]
                       for k in range(steps)])
    return (totals.max(1) - totals.min(1)).mean()


def main():
    dataset = build_dataset(dict(type="DefaultDataset", data_root=ROOT, split="train"))
    sampler = build_train_sampler(dataset, SEED, BATCH, BINS)
    epochs = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        epochs.append(comm.all_gather(list(sampler)))
    sampler.set_epoch(1, 3 * BATCH)
    resumed = comm.all_gather(list(sampler))
    again = build_train_sampler(dataset, SEED, BATCH, BINS)
    again.set_epoch(1)
    repeated = comm.all_gather(list(again))
    plain = comm.all_gather(list(EpochSampler(len(dataset), True, SEED, comm.get_rank(), comm.get_world_size())))
    if comm.get_rank():
        return
    costs, world = np.array(dataset.get_data_sizes()), comm.get_world_size()
    for shares in epochs:
        counts = Counter(i for s in shares for i, _, _ in s)
        assert set(counts) == set(range(len(dataset))), counts
        assert sum(counts.values()) == -(-len(dataset) // world) * world
    assert [i for i, _, _ in epochs[0][0]] != [i for i, _, _ in epochs[1][0]]
    assert repeated == epochs[1]
    assert resumed == [s[3 * BATCH:] for s in epochs[1]]
    balanced, unbalanced = step_spread(epochs[0], costs), step_spread(plain, costs)
    assert balanced * 3 < unbalanced, (balanced, unbalanced)
    print(f"balanced over {world} ranks: step spread {balanced:.0f} vs {unbalanced:.0f} points")


if __name__ == "__main__":
    launch(main, num_gpus_per_machine=int(sys.argv[2]))
"""


def _write_scenes(root, num_scenes: int) -> None:
    """The generic layout, ``train/<scene>/coord.npy``, scenes of very different point counts."""
    sizes = np.random.default_rng(3).lognormal(6, 0.8, num_scenes).astype(int) + 1
    for i, n in enumerate(sizes):
        os.makedirs(root / "train" / f"scene{i:03d}")
        np.save(root / "train" / f"scene{i:03d}" / "coord.npy", np.zeros((n, 3), np.float32))


def test_gloo_ranks_get_disjoint_balanced_deterministic_resumable_shares(tmp_path):
    _write_scenes(tmp_path / "data", 200)  # 200: padded to 201 over 3 ranks, a last short step
    script = tmp_path / "ranks.py"
    script.write_text(_GLOO_RANKS)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "data"), "3"], capture_output=True,
                          text=True, timeout=240, env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "balanced over 3 ranks" in done.stdout
