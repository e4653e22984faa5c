import pytest
import torch

from pointcept_distill.distill.losses.subsample import farthest_point_sample, stride_sample


def _cloud(counts=(50, 8, 30), channels=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(sum(counts), channels, generator=g), torch.tensor(counts).cumsum(0)


@pytest.mark.parametrize("sampler", [farthest_point_sample, stride_sample])
def test_deterministic_and_inside_each_sample(sampler):
    feat, offset = _cloud()
    index, valid = sampler(feat, offset, 16)
    again, valid2 = sampler(feat.clone(), offset.clone(), 16)
    assert torch.equal(index, again) and torch.equal(valid, valid2)
    assert valid.sum(1).tolist() == [16, 8, 16]
    starts = [0, 50, 58]
    for b, (lo, hi) in enumerate(zip(starts, offset.tolist())):
        chosen = index[b][valid[b]]
        assert ((chosen >= lo) & (chosen < hi)).all()
        assert len(set(chosen.tolist())) == len(chosen)


def test_fps_is_farthest_point_order():
    feat, offset = _cloud(counts=(40,), channels=3, seed=2)
    index, _ = farthest_point_sample(feat, offset, 6)
    picked = [0]
    for _ in range(5):
        near = torch.cdist(feat, feat[picked]).min(1).values
        picked.append(int(near.argmax()))
    assert index[0].tolist() == picked


def test_stride_spreads_evenly():
    feat, offset = _cloud(counts=(10, 3))
    index, valid = stride_sample(feat, offset, 5)
    assert index[0].tolist() == [0, 2, 4, 6, 8]
    assert index[1][valid[1]].tolist() == [10, 11, 12]


def test_empty_sample_rejected():
    with pytest.raises(ValueError, match="subsample"):
        stride_sample(torch.zeros(4, 2), torch.tensor([4, 4]), 3)
