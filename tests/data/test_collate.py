import numpy as np
import torch

from pointcept_distill.data import collate_fn, point_collate_fn


def sample(n: int, fill: float) -> dict:
    return {"coord": torch.full((n, 3), fill), "segment": torch.zeros(n).long(),
            "offset": torch.tensor([n]), "name": f"s{n}"}


def test_collate_concatenates_and_builds_cumulative_offset():
    batch = collate_fn([sample(3, 0), sample(5, 1), sample(2, 2)])
    assert batch["coord"].shape == (10, 3)
    assert batch["offset"].tolist() == [3, 8, 10] and batch["offset"].dtype == torch.int64
    assert batch["name"] == ["s3", "s5", "s2"]


def test_collate_shifts_inverse_per_sample():
    a = {**sample(2, 0), "inverse": torch.tensor([0, 1, 1])}
    b = {**sample(3, 1), "inverse": torch.tensor([2, 0])}
    batch = collate_fn([a, b])
    assert batch["inverse"].tolist() == [0, 1, 1, 4, 2]
    assert torch.equal(batch["coord"][batch["inverse"]][3:, 0], torch.ones(2))


def test_collate_lists_positionally():
    out = collate_fn([[torch.zeros(2), "a"], [torch.ones(3), "b"]])
    assert out[0].shape == (5,) and out[1] == ["a", "b"]


def test_mix_prob_one_merges_pairs():
    batch = [sample(3, 0), sample(5, 1), sample(2, 2), sample(4, 3), sample(1, 4)]
    mixed = point_collate_fn(batch, mix_prob=1.0)
    assert mixed["offset"].tolist() == [8, 14, 15]
    assert mixed["coord"].shape == (15, 3)


def test_mix_prob_zero_keeps_offsets():
    assert point_collate_fn([sample(3, 0), sample(5, 1)], mix_prob=0)["offset"].tolist() == [3, 8]


def test_mix_draw_is_reproducible_and_rate_follows_mix_prob():
    def decision(i: int) -> bool:
        batch = [sample(3 + i, 0), sample(5, float(i))]
        return len(point_collate_fn(batch, mix_prob=0.5)["offset"]) == 1

    first = [decision(i) for i in range(200)]
    assert first == [decision(i) for i in range(200)]
    assert 60 < sum(first) < 140
    explicit = point_collate_fn([sample(3, 0), sample(5, 1)], 0.5, np.random.default_rng(0))
    assert len(explicit["offset"]) == (1 if np.random.default_rng(0).random() < 0.5 else 2)
