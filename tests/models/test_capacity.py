"""Fixed-capacity batches (models/capacity.py) and their pooling: static shapes, same logits, no host reads."""
from __future__ import annotations

import pytest
import torch
from host_reads import HostReads

from pointcept_distill.models import build_model
from pointcept_distill.models.capacity import pad_to_capacity
from pointcept_distill.models.plan import BatchPlan, capacity_for, plan_batch
from pointcept_distill.models.ptv3m1.pooling import clusters

SCENES = [((900, 500), 40), ((1100, 700, 300), 90), ((800,), 25)]      # (points per sample, extent)


def _model(tiny_config):
    torch.manual_seed(0)
    return build_model(dict(type="DefaultSegmentorV2", num_classes=5, backbone_out_channels=8,
                            backbone=tiny_config())).eval()


def _stage_rows(model, scene) -> list[int]:
    """Voxels per stage of the eager forward, walking the deepest stage's pooling parents."""
    with torch.no_grad():
        point = model.backbone.encode(dict(scene))
    rows = []
    while True:
        rows.append(point.feat.shape[0])
        if "pooling_parent" not in point:
            return rows[::-1]
        point = point.pooling_parent


@pytest.mark.parametrize("n", [0, 1, 7, 15, 16, 17, 1000, 24534, 198380])
def test_capacity_for_leaves_room_and_bounded_padding(n):
    for steps in (1, 4, 8):
        cap = capacity_for(n, steps)
        assert n < cap <= max(n + 1, (n + 1) * (1 + 1 / steps) + 1)
        assert capacity_for(cap - 1, steps) == cap               # a bucket's own members map to it


def test_capacity_for_has_steps_per_octave_buckets():
    assert len({capacity_for(n, 8) for n in range(16384, 32768)}) == 8
    with pytest.raises(ValueError, match="steps_per_octave"):
        capacity_for(10, 0)


def test_stage_sizes_match_the_eager_stages(make_scene, tiny_config):
    model = _model(tiny_config)
    for counts, extent in SCENES:
        scene = make_scene(counts, extent=extent)
        assert list(plan_batch(scene, (2, 2)).sizes) == _stage_rows(model, scene)


def test_fixed_capacity_clusters_extend_clusters_with_empty_rows():
    code = torch.tensor([5, 3, 5, 9, 3, 3, 12, 12])              # last point: the "padding sample"
    order = torch.argsort(code, stable=True)
    cluster, counts, head = clusters(code, order)
    assert torch.equal(cluster, torch.tensor([1, 0, 1, 2, 0, 0, 3, 3]))
    assert torch.equal(counts, torch.tensor([3, 2, 1, 2])) and torch.equal(head, torch.tensor([1, 0, 3, 6]))
    f_cluster, f_counts, f_head = clusters(code, order, 6)
    assert torch.equal(f_cluster, cluster)
    assert torch.equal(f_counts[:4], counts) and torch.equal(f_counts[4:], torch.zeros(2, dtype=torch.long))
    assert torch.equal(f_head[:4], head) and torch.equal(f_head[4:], torch.full((2,), 7))


def _pooled_points(point):
    while "pooling_parent" in point:
        yield point
        point = point.pooling_parent


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_pooled_orders_are_the_sorted_pooled_codes(make_scene, tiny_config, padded, training):
    """Pooling derives each pooled order from the parent's instead of sorting: it must be the stable argsort of
    the pooled codes, for every curve (z, z-trans, hilbert, hilbert-trans), with a fixed capacity's spare rows
    and with the rows shuffled in training."""
    model = _model(tiny_config).train(training)
    assert len(model.backbone.order) == 4
    for counts, extent in SCENES:
        scene = make_scene(counts, extent=extent)
        if padded:
            scene = pad_to_capacity(scene, plan_batch(scene, (2, 2)).bucketed())
        with torch.no_grad():
            point = model.backbone.encode(dict(scene))
        pooled = list(_pooled_points(point))
        assert len(pooled) == 2
        for stage in pooled:
            code = stage.serialized_code
            assert torch.equal(stage.serialized_order, torch.argsort(code, dim=1, stable=True))
            assert torch.equal(torch.gather(stage.serialized_order, 1, stage.serialized_inverse),
                               torch.arange(code.shape[1]).expand_as(code))


@pytest.mark.parametrize("per_stage", [False, True])
def test_padded_forward_keeps_the_logits_and_reads_nothing(make_scene, tiny_config, per_stage):
    model = _model(tiny_config)
    for counts, extent in SCENES:
        scene = make_scene(counts, extent=extent)
        n = scene["coord"].shape[0]
        plan = plan_batch(scene, (2, 2))
        capacity = plan.bucketed().sizes if per_stage else capacity_for(n)
        padded = pad_to_capacity(scene, plan.padded(capacity if per_stage else (capacity,) * 3))
        with torch.no_grad(), HostReads() as reads:
            out = model(padded, return_point=True)
        with torch.no_grad():
            ref = model(dict(scene))["seg_logits"]
        assert not reads.hits, dict(reads.hits)
        assert out["seg_logits"].shape[0] == (capacity[0] if per_stage else capacity)
        torch.testing.assert_close(out["seg_logits"][:n], ref, rtol=0, atol=0)
        bottleneck_rows = out["point"].bottleneck.feat.shape[0]
        assert bottleneck_rows == (capacity[-1] if per_stage else capacity)


def test_padding_has_the_same_shapes_for_any_batch_of_a_capacity(make_scene, tiny_config):
    model = _model(tiny_config)
    scenes = [make_scene(counts, extent=extent) for counts, extent in [((900, 500), 40), ((1000, 380), 60),
                                                                        ((700, 700), 30)]]
    plans = [plan_batch(s, (2, 2), depth=7) for s in scenes]      # one depth for all (7 bits hold 60)
    capacities = [capacity_for(max(column)) for column in zip(*(p.sizes for p in plans))]
    shapes = set()
    for scene, plan in zip(scenes, plans):
        padded = pad_to_capacity(scene, plan.padded(capacities))
        with torch.no_grad():
            point = model(padded, return_point=True)["point"]
        shapes.add((point.feat.shape, point.bottleneck.feat.shape, point.bottleneck.serialized_order.shape))
    assert len(shapes) == 1


def test_padded_forward_traces_whole(make_scene, tiny_config):
    """The CPU twin of a CUDA graph capture: with fixed capacities the forward compiles without a graph break
    (``fullgraph=True`` raises at any host read or data-dependent shape) and keeps eager's logits."""
    model = _model(tiny_config)
    scene = make_scene((900, 500))
    padded = pad_to_capacity(scene, plan_batch(scene, (2, 2)).bucketed())
    torch._dynamo.reset()
    compiled = torch.compile(lambda d: model(d)["seg_logits"], backend="aot_eager", fullgraph=True, dynamic=False)
    with torch.no_grad():
        out = compiled(padded)
        ref = model(dict(scene))["seg_logits"]
    torch._dynamo.reset()
    torch.testing.assert_close(out[:1400], ref, rtol=1e-6, atol=1e-6)


def test_pad_to_capacity_errors_name_the_problem(make_scene):
    scene = make_scene((100,))
    plan = plan_batch(scene, (2, 2))
    with pytest.raises(ValueError, match="capacity 100 must exceed the 100 points"):
        pad_to_capacity(scene, plan.padded((100,) * 3))
    with pytest.raises(ValueError, match="capacity 100 must exceed the 100 points"):
        pad_to_capacity(scene, BatchPlan((2, 2), plan.depth, 2, (100,) * 3))
    with pytest.raises(KeyError, match="feat"):
        pad_to_capacity({k: v for k, v in scene.items() if k != "feat"}, plan.padded((128,) * 3))
    with pytest.raises(ValueError, match="the plan has 1 samples"):
        pad_to_capacity(scene, BatchPlan((2, 2), plan.depth, 1, (128,) * 3))


def test_labels_are_padded_with_their_fill_value(make_scene):
    scene = make_scene((100, 50))
    scene["segment"] = torch.randint(0, 4, (150,))
    plan = plan_batch(scene, (2, 2)).padded((160,) * 3)
    padded = pad_to_capacity(scene, plan, labels={"segment": -1})
    assert torch.equal(padded["segment"][:150], scene["segment"]) and (padded["segment"][150:] == -1).all()
    assert (padded["feat"][150:] == 0).all() and padded["offset"].tolist() == [100, 150, 160]
    assert padded["plan"] == plan
    assert "segment" not in pad_to_capacity(scene, plan)             # other keys are dropped
    with pytest.raises(KeyError, match="segment"):
        pad_to_capacity({k: v for k, v in scene.items() if k != "segment"}, plan, labels={"segment": -1})


def test_plan_batch_makes_the_host_plan(make_scene):
    scene = make_scene((300, 200))
    plan = plan_batch(scene, (2, 2))
    assert plan.strides == (2, 2) and plan.samples == 2 and len(plan.sizes) == 3
    assert plan.sizes[0] == 500 and plan.depth > 0 and "plan" not in scene


def test_too_small_stage_capacity_fails_loudly(make_scene, tiny_config):
    model = _model(tiny_config)
    scene = make_scene((900, 500))
    plan = plan_batch(scene, (2, 2))
    too_small = BatchPlan(plan.strides, plan.depth, plan.samples + 1, (2048, plan.sizes[1] // 2, 512))
    with pytest.raises(RuntimeError, match="more clusters than the stage's capacity"), torch.no_grad():
        model(pad_to_capacity(scene, too_small))


@pytest.mark.parametrize("training", [False, True])
def test_planned_batch_runs_unpadded_without_host_reads(make_scene, tiny_config, training):
    """A batch planned for the backbone's strides (as DistillTrainer's loader workers plan) gives every pooling
    its cluster count: the eager forward reads nothing from the device and computes the same features. A plan for
    other strides is an error (tests/models/test_plan.py); without a plan the poolings count their clusters."""
    model = _model(tiny_config).train(training)
    strides = model.backbone.strides
    for counts, extent in SCENES:
        scene = make_scene(counts, extent=extent)
        planned = dict(scene, plan=plan_batch(scene, strides))
        torch.manual_seed(1)                                     # the same order shuffles in training
        with torch.no_grad(), HostReads() as reads:
            out = model.backbone(dict(planned)).feat
        # shuffle_rows reads a CPU randperm in training (the CPU generator, as upstream): not a device read
        assert {site[2] for site in reads.hits} <= {"shuffle_rows"}, dict(reads.hits)
        torch.manual_seed(1)
        with torch.no_grad():
            ref = model.backbone(dict(scene)).feat
        torch.testing.assert_close(out, ref, rtol=0, atol=0)
        with torch.no_grad(), HostReads() as reads:
            model.backbone(dict(scene))
        pooling_reads = sum(n for (name, _, caller), n in reads.hits.items()
                            if name == "__int__" and caller == "clusters")           # beside the depth's read
        assert pooling_reads == len(strides), dict(reads.hits)
