"""Training on fixed-capacity padded batches: the mask-aware batch norm (models/masked_norm.py) gives the batch
norm of the valid rows, and the padded training forward and losses (models/padded_training.py) give the eager
step's loss, gradients and statistics."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from host_reads import HostReads
from torch import nn

from pointcept_distill.models import build_model
from pointcept_distill.models.capacity import pad_to_capacity
from pointcept_distill.models.losses import build_criteria
from pointcept_distill.models.masked_norm import masked_batch_norm, point_batch_norm
from pointcept_distill.models.padded_training import draw_order_permutations, ignore_index, padded_training_loss
from pointcept_distill.models.plan import plan_batch

CRITERIA = [dict(type="CrossEntropyLoss", loss_weight=1.0, ignore_index=-1),        # the LiDAR configs' criteria
            dict(type="LovaszLoss", mode="multiclass", loss_weight=1.0, ignore_index=-1)]


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


def _segmentor(tiny_config, **backbone):
    torch.manual_seed(0)
    model = build_model(dict(type="DefaultSegmentorV2", num_classes=5, backbone_out_channels=8,
                             backbone=tiny_config(**backbone), criteria=CRITERIA))
    for module in model.modules():                       # non-trivial running statistics to update
        if isinstance(module, nn.BatchNorm1d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    return model.train()


def _scene(make_scene, counts, seed=0):
    scene = make_scene(counts, extent=40, seed=seed, num_classes=5)
    scene["segment"][::7] = -1                           # ignored real points too
    return scene


def _step(model, run):
    """``run(model)``'s loss and its backward: (loss, {parameter: gradient})."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(3)                                 # the same order shuffles in both steps
    loss = run(model)["loss"]
    loss.backward()
    return loss.detach(), {name: p.grad for name, p in model.named_parameters()}


def _max_difference(got: dict, want: dict) -> float:
    """The largest gradient difference relative to the largest gradient (a bias before a batch norm has a
    gradient of rounding noise only: each parameter's own scale would compare noise with noise)."""
    scale = max(float(g.abs().max()) for g in want.values())
    return max(float((got[k] - want[k]).abs().max()) for k in want) / scale


CASES = [((900,), None), ((900,), (1024,) * 3), ((900, 500), None), ((900, 500), (2048,) * 3)]


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("counts, capacities", CASES)
def test_padded_step_has_the_eager_loss_gradients_and_statistics(make_scene, tiny_config, counts, capacities,
                                                                 dtype, tol):
    """Train mode, drop path off (padded rows shift the random draws, see models/padded_training.py): the loss,
    every parameter's gradient and every batch norm's running statistics after the step equal eager's on the
    unpadded batch, 1 and 2 scans, at the buckets (12.5 % padding at most) and at generous fixed capacities.
    Float64 shows the step is the same computation (only summation order differs: ~1e-15 apart); float32 then
    differs by rounding (measured: loss 1e-7, gradients 2e-6 of the largest gradient, statistics 1e-7)."""
    eager = _segmentor(tiny_config, drop_path=0.0).to(dtype)
    padded = copy.deepcopy(eager)
    scene = _scene(make_scene, counts)
    scene.update(feat=scene["feat"].to(dtype), coord=scene["coord"].to(dtype))
    loss, grads = _step(eager, lambda m: m(dict(scene)))
    padded_loss, padded_grads = _step(padded, lambda m: padded_training_loss(m, scene, capacities))
    torch.testing.assert_close(padded_loss, loss, rtol=tol, atol=0)
    assert all(g is not None for g in grads.values()) and grads.keys() == padded_grads.keys()
    scale = max(float(g.abs().max()) for g in grads.values())
    for name, grad in grads.items():
        torch.testing.assert_close(padded_grads[name], grad, rtol=tol, atol=tol * scale, msg=name)
    assert _max_difference(padded_grads, grads) < tol
    buffers = dict(eager.named_buffers())
    assert sum("running_var" in name for name in buffers) == 7       # stem, 2 poolings, 2 unpoolings x 2
    for name, value in padded.named_buffers():
        torch.testing.assert_close(value, buffers[name], rtol=tol, atol=tol * 1e-2, msg=name)


def test_without_the_masked_norm_the_padding_changes_the_step(make_scene, tiny_config):
    """The control: a padded batch whose plan does not mark its padding sample normalises over the padding rows
    too, and its gradients and running statistics are no longer eager's."""
    eager = _segmentor(tiny_config, drop_path=0.0)
    unmasked, initial = copy.deepcopy(eager), copy.deepcopy(eager.state_dict())
    scene = _scene(make_scene, (900, 500))
    plan = dataclasses.replace(plan_batch(scene, eager.backbone.strides).padded((2048,) * 3), padding_sample=False)
    _, grads = _step(eager, lambda m: m(dict(scene)))
    _, unmasked_grads = _step(unmasked, lambda m: m(pad_to_capacity(scene, plan, {"segment": -1})))
    assert _max_difference(unmasked_grads, grads) > 1e-3
    # the batch statistics behind each running statistic's update (momentum 0.01), 1e-7 apart on the masked path:
    # here 2 % to 100 % apart
    batch_stats = [{name: (m.state_dict()[name] - initial[name]) / 0.01 + initial[name]
                    for name in initial if "running" in name} for m in (eager, unmasked)]
    assert len(batch_stats[0]) == 14
    for name, stat in batch_stats[0].items():
        assert (batch_stats[1][name] - stat).abs().max() > 0.01 * stat.abs().max(), name


def test_padded_training_forward_reads_nothing_from_the_device(make_scene, tiny_config):
    """Forward, losses and backward of a planned padded batch are shape-static: no host read of a device value
    (the orders' shuffles read a CPU ``randperm``, not the device)."""
    model = _segmentor(tiny_config)
    scene = _scene(make_scene, (900, 500))
    planned = dict(scene, plan=plan_batch(scene, model.backbone.strides))
    with HostReads() as reads:
        padded_training_loss(model, planned)["loss"].backward()
    assert {site[2] for site in reads.hits} == {"shuffle_rows"}, dict(reads.hits)


def _drawn(scene):
    """A padded step whose order permutations are drawn before the forward (as a captured step draws them)."""
    return lambda m: padded_training_loss(m, dict(scene, order_permutations=draw_order_permutations(m.backbone)))


def test_drawn_order_permutations_give_the_eager_step(make_scene, tiny_config):
    """Shuffles on: the permutations drawn before the forward (the CPU draws the eager forward makes, in its
    order) and applied on the device give eager's loss and gradients from the same seed; other permutations
    (the control: each reversed) do not."""
    eager = _segmentor(tiny_config, drop_path=0.0)
    assert eager.backbone.shuffled_stages() == [True] * 3
    drawn, reversed_ = copy.deepcopy(eager), copy.deepcopy(eager)
    scene = _scene(make_scene, (900, 500))
    loss, grads = _step(eager, lambda m: m(dict(scene)))
    drawn_loss, drawn_grads = _step(drawn, _drawn(scene))
    torch.testing.assert_close(drawn_loss, loss, rtol=1e-5, atol=0)
    assert _max_difference(drawn_grads, grads) < 1e-5
    flip = lambda m: padded_training_loss(m, dict(scene, order_permutations=draw_order_permutations(  # noqa: E731
        m.backbone).flip(1)))
    _, reversed_grads = _step(reversed_, flip)
    assert _max_difference(reversed_grads, grads) > 1e-3


def test_order_permutations_need_a_plan_and_one_row_per_stage(make_scene, tiny_config):
    model = _segmentor(tiny_config)
    scene = _scene(make_scene, (300,))
    assert draw_order_permutations(model.eval().backbone) is None
    assert draw_order_permutations(_segmentor(tiny_config, shuffle_orders=False).backbone).shape == (3, 4)
    model.train()
    with pytest.raises(ValueError, match=r"order_permutations must be a \(3, 4\) tensor.*without a plan"):
        model(dict(scene, order_permutations=draw_order_permutations(model.backbone)))
    with pytest.raises(ValueError, match=r"got shape \(2, 4\)"):
        padded_training_loss(model, dict(scene, order_permutations=draw_order_permutations(model.backbone)[:2]))


def test_padded_step_with_drawn_permutations_reads_nothing_from_the_device(make_scene, tiny_config):
    """With its permutations drawn beforehand, forward, losses and backward read no device value and nothing on
    the host's generator either: all a captured graph needs at replay is in its inputs."""
    model = _segmentor(tiny_config)
    scene = _scene(make_scene, (900, 500))
    planned = dict(scene, plan=plan_batch(scene, model.backbone.strides),
                   order_permutations=draw_order_permutations(model.backbone))
    with HostReads() as reads:
        padded_training_loss(model, planned)["loss"].backward()
    assert not reads.hits, dict(reads.hits)


def test_padded_training_step_with_shuffles_traces_whole(make_scene, tiny_config):
    """Shuffles on, permutations drawn beforehand: the padded step compiles without a graph break and equals
    eager's from the same seed."""
    eager = _segmentor(tiny_config, drop_path=0.0)
    compiled = copy.deepcopy(eager)
    scene = _scene(make_scene, (900, 500))
    plan = plan_batch(scene, eager.backbone.strides).bucketed()
    torch._dynamo.reset()
    loss_of = torch.compile(lambda model, batch: model(batch)["loss"], backend="aot_eager", fullgraph=True,
                            dynamic=False)
    loss, grads = _step(eager, lambda m: m(dict(scene)))
    compiled_loss, compiled_grads = _step(compiled, lambda m: {"loss": loss_of(m, pad_to_capacity(
        dict(scene, order_permutations=draw_order_permutations(m.backbone)), plan, {"segment": -1}))})
    torch._dynamo.reset()
    torch.testing.assert_close(compiled_loss, loss, rtol=1e-5, atol=0)
    assert _max_difference(compiled_grads, grads) < 1e-5


def test_padded_training_step_traces_whole(make_scene, tiny_config):
    """The CPU twin of capturing the step: forward and losses of a padded batch compile without a graph break
    (``fullgraph=True``), backward through AOT autograd, with the batch norms' running statistics updated in the
    graph, and keep eager's loss, gradients and statistics. Order shuffles off: ``shuffle_rows`` reads its CPU
    permutation on the host (a graph break; a captured graph would replay one permutation)."""
    eager = _segmentor(tiny_config, drop_path=0.0, shuffle_orders=False)
    compiled = copy.deepcopy(eager)
    scene = _scene(make_scene, (900, 500))
    padded = pad_to_capacity(scene, plan_batch(scene, eager.backbone.strides).bucketed(), {"segment": -1})
    torch._dynamo.reset()
    loss_of = torch.compile(lambda model, batch: model(batch)["loss"], backend="aot_eager", fullgraph=True,
                            dynamic=False)
    loss, grads = _step(eager, lambda m: m(dict(scene)))
    compiled_loss, compiled_grads = _step(compiled, lambda m: {"loss": loss_of(m, padded)})
    torch._dynamo.reset()
    torch.testing.assert_close(compiled_loss, loss, rtol=1e-5, atol=0)
    assert _max_difference(compiled_grads, grads) < 1e-5
    buffers = dict(eager.named_buffers())
    for name, value in compiled.named_buffers():
        torch.testing.assert_close(value, buffers[name], rtol=1e-5, atol=1e-7, msg=name)


def test_padded_training_needs_training_mode_and_one_ignore_index(make_scene, tiny_config):
    model = _segmentor(tiny_config)
    scene = _scene(make_scene, (300,))
    assert ignore_index(model.criteria) == -1
    with pytest.raises(ValueError, match="eval mode"):
        padded_training_loss(model.eval(), scene)
    model.train()
    for criteria in ([CRITERIA[0], dict(CRITERIA[1], ignore_index=None)],       # Lovasz would count padding
                     [CRITERIA[0], dict(CRITERIA[0], ignore_index=0)], []):
        model.criteria = build_criteria(criteria)
        with pytest.raises(ValueError, match="one ignore index"):
            padded_training_loss(model, scene)
