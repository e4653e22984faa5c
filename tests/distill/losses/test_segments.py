import pytest
import torch
import torch.nn.functional as F

from pointcept_distill.distill.losses.segments import (masked_loss, segment_count, segment_log_softmax,
                                                       segment_logsumexp, segment_max, segment_mean, segment_min,
                                                       segment_sum)
from pointcept_distill.models.point import offset_to_batch


def test_segment_reductions_match_per_sample_loops():
    x = torch.tensor([1.0, 4.0, -2.0, 3.0, 5.0, 0.5])
    offset = torch.tensor([3, 3, 6])  # the middle sample is empty
    batch = offset_to_batch(offset)
    assert batch.tolist() == [0, 0, 0, 2, 2, 2]
    assert segment_count(batch, 3).tolist() == [3.0, 0.0, 3.0]
    assert segment_mean(x, batch, 3).tolist() == [1.0, 0.0, pytest.approx(8.5 / 3)]
    assert segment_min(x, batch, 3)[[0, 2]].tolist() == [-2.0, 0.5]
    assert segment_max(x, batch, 3)[[0, 2]].tolist() == [4.0, 5.0]
    assert segment_mean(torch.stack([x, 2 * x], 1), batch, 3)[2].tolist() == pytest.approx([8.5 / 3, 17 / 3])


def test_segment_reductions_of_rows_match_per_sample_loops():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 3, generator=g) * 50
    offset = torch.tensor([4, 4, 9])  # the middle sample is empty
    batch = offset_to_batch(offset)
    parts = [x[:4], x[4:]]
    assert torch.equal(segment_sum(x, batch, 3), torch.stack([parts[0].sum(0), torch.zeros(3), parts[1].sum(0)]))
    assert torch.equal(segment_max(x, batch, 3)[[0, 2]], torch.stack([p.amax(0) for p in parts]))
    assert torch.equal(segment_min(x, batch, 3)[[0, 2]], torch.stack([p.amin(0) for p in parts]))
    lse = segment_logsumexp(x, batch, 3)
    torch.testing.assert_close(lse[[0, 2]], torch.stack([p.logsumexp(0) for p in parts]))
    assert torch.isneginf(lse[1]).all()
    torch.testing.assert_close(segment_log_softmax(x, batch, 3), torch.cat([p.log_softmax(0) for p in parts]))


def test_segment_log_softmax_gradient_matches_torch():
    x = torch.randn(7, 2, dtype=torch.float64, requires_grad=True)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    weight = torch.randn(7, 2, dtype=torch.float64)
    (grad,) = torch.autograd.grad((segment_log_softmax(x, batch, 2) * weight).sum(), x)
    (want,) = torch.autograd.grad((torch.cat([x[:3].log_softmax(0), x[3:].log_softmax(0)]) * weight).sum(), x)
    torch.testing.assert_close(grad, want)


@pytest.mark.parametrize("loss", [F.mse_loss, F.smooth_l1_loss])
def test_masked_loss_averages_the_valid_rows_only(loss):
    """Over the valid rows the loss equals the unmasked loss of those rows alone, whatever the other rows hold, and
    its gradient reaches no other row; without ``valid`` it is the loss itself, bit for bit."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(9, 4, generator=gen), torch.randn(9, 4, generator=gen)
    x[6:] = 1e6                                                  # the padding rows: anything
    x.requires_grad_(True)
    valid = torch.tensor([True] * 6 + [False] * 3)
    assert torch.equal(masked_loss(loss, x, y, None), loss(x, y))
    masked = masked_loss(loss, x, y, valid)
    torch.testing.assert_close(masked, loss(x[:6], y[:6]))
    masked.backward()
    assert x.grad[6:].abs().sum() == 0 and x.grad[:6].abs().sum() > 0
    assert masked_loss(loss, x, y, torch.zeros(9, dtype=torch.bool)) == 0
