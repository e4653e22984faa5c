"""Training on fixed-capacity padded batches: the mask-aware batch norm (models/masked_norm.py) gives the batch
norm of the valid rows."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pointcept_distill.models.masked_norm import masked_batch_norm, point_batch_norm


def _valid(n: int, kept: int, scattered: bool, seed: int) -> torch.Tensor:
    if not scattered:                                    # a padded batch: the real rows first
        return torch.arange(n) < kept
    g = torch.Generator().manual_seed(seed)
    return torch.zeros(n, dtype=torch.bool).index_fill_(0, torch.randperm(n, generator=g)[:kept], True)


@pytest.mark.parametrize("n, c, kept", [(10, 3, 2), (64, 8, 37), (300, 16, 299), (1000, 5, 513)])
@pytest.mark.parametrize("scattered", [False, True])
def test_masked_batch_norm_is_batch_norm_of_the_valid_rows(n, c, kept, scattered):
    g = torch.Generator().manual_seed(n + kept)
    x = torch.randn(n, c, generator=g) * 3 + 1
    x[~_valid(n, kept, scattered, n)] = 50.0 * torch.randn(n - kept, c, generator=g)   # far-off padding rows
    valid = _valid(n, kept, scattered, n)
    weight, bias = torch.randn(c, generator=g), torch.randn(c, generator=g)
    upstream = torch.randn(kept, c, generator=g)
    outs, grads, stats = [], [], []
    for masked in (True, False):
        xi, wi, bi = (t.clone().requires_grad_() for t in (x, weight, bias))
        mean, var = torch.randn(c, generator=g.manual_seed(1)), torch.rand(c, generator=g) + 0.5
        if masked:
            out = masked_batch_norm(xi, valid, mean, var, wi, bi, True, 0.01, 1e-3)[valid]
        else:
            out = F.batch_norm(xi[valid], mean, var, wi, bi, True, 0.01, 1e-3)
        (out * upstream).sum().backward()
        outs.append(out)
        grads.append((xi.grad, wi.grad, bi.grad))
        stats.append((mean, var))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    for got, want in zip(grads[0] + stats[0], grads[1] + stats[1]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert (grads[0][0][~valid] == 0).all()              # no gradient reaches the rows left out


@pytest.mark.parametrize("mode", ["train", "cumulative", "untracked", "eval", "eval_untracked"])
def test_point_batch_norm_follows_the_module(mode):
    """A module's mode, as ``BatchNorm1d.forward``: momentum or the cumulative average (``momentum=None``),
    no running statistics, eval with running statistics and eval without them (batch statistics)."""
    torch.manual_seed(0)
    kwargs = dict(momentum=None if mode == "cumulative" else 0.1, track_running_stats="untracked" not in mode)
    norm = nn.BatchNorm1d(6, eps=1e-3, **kwargs)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    norm.train(not mode.startswith("eval"))
    twin = copy.deepcopy(norm)
    valid = _valid(40, 23, True, 0)
    for step in range(3):
        x = torch.randn(40, 6) * (step + 1)
        torch.testing.assert_close(point_batch_norm(norm, x, valid)[valid], twin(x[valid]), rtol=1e-5, atol=1e-5)
    for (name, got), want in zip(norm.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)
    if mode in ("train", "cumulative"):
        assert int(norm.num_batches_tracked) == 3 and not torch.equal(norm.running_mean, torch.zeros(6))


def test_sync_batch_norm_on_a_padded_batch_is_refused():
    with pytest.raises(NotImplementedError, match="SyncBatchNorm"):
        point_batch_norm(nn.SyncBatchNorm(4), torch.randn(8, 4), torch.arange(8) < 5)
