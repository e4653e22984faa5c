"""The execution plan (models/plan.py): the planner agrees with the poolings, a plan fits one backbone and batch."""
from __future__ import annotations

import dataclasses
import tempfile

import pytest
import torch

from pointcept_distill.data import build_dataset, point_collate_fn
from pointcept_distill.data.pipelines import data_config
from pointcept_distill.data.simulator import generate
from pointcept_distill.models import build_model
from pointcept_distill.models.capacity import pad_to_capacity
from pointcept_distill.models.plan import BatchPlan, capacity_for, plan_batch


def _backbone(tiny_config, **overrides):
    torch.manual_seed(0)
    return build_model(tiny_config(**overrides)).eval()


def _eager_stage_rows(backbone, batch) -> tuple[int, ...]:
    """Rows of every encoder stage as the poolings count them on the device (no plan)."""
    with torch.no_grad():
        point = backbone.encode(dict(batch))
    rows = [point.feat.shape[0]]
    while "pooling_parent" in point:
        point = point.pooling_parent
        rows.append(point.feat.shape[0])
    return tuple(rows[::-1])


@pytest.fixture(scope="module")
def lidar_batches() -> list[dict]:
    """Collated val-pipeline batches of simulated nuScenes sweeps (one and two scans)."""
    with tempfile.TemporaryDirectory(prefix="plan-sim-") as root:
        generate("nuscenes", root, train=0, val=3, seed=0, scale=0.05)
        dataset = build_dataset(data_config("nuscenes", root)["val"])
        samples = [dataset[i] for i in range(3)]
    return [point_collate_fn(samples[:1]), point_collate_fn(samples[1:])]


@pytest.mark.parametrize("stride", [(2, 2), (4, 2), (8, 8)])
def test_planner_counts_what_the_poolings_count(lidar_batches, tiny_config, stride):
    """On LiDAR batches (and on a shallow grid, where a stride-8 pooling is too deep to merge and is skipped)."""
    backbone = _backbone(tiny_config, stride=stride)
    shallow = dict(lidar_batches[0], grid_coord=lidar_batches[0]["grid_coord"] % 8)
    for batch in [*lidar_batches, shallow]:
        plan = plan_batch(batch, backbone.strides)
        assert plan.sizes == _eager_stage_rows(backbone, batch)
        assert plan.samples == batch["offset"].shape[0] and plan.strides == backbone.strides


def test_planned_forward_equals_the_unplanned_one(lidar_batches, tiny_config):
    backbone = _backbone(tiny_config)
    batch = lidar_batches[1]
    with torch.no_grad():
        ref = backbone(dict(batch)).feat
        out = backbone(dict(batch, plan=plan_batch(batch, backbone.strides))).feat
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_a_plan_for_other_strides_is_rejected(make_scene, tiny_config):
    backbone = _backbone(tiny_config)
    scene = make_scene((300, 200))
    with pytest.raises(ValueError, match=r"plan was made for strides \(4, 2\), this backbone pools with \(2, 2\)"):
        backbone(dict(scene, plan=plan_batch(scene, (4, 2))))


def test_a_plan_for_another_batch_is_rejected(make_scene, tiny_config):
    backbone = _backbone(tiny_config)
    scene = make_scene((300, 200))
    plan = plan_batch(make_scene((300, 201)), backbone.strides)
    with pytest.raises(ValueError, match="plan is for 2 samples of 501 points, the batch has 2 samples of 500"):
        backbone(dict(scene, plan=plan))


def test_padded_plan_adds_the_padding_sample_and_checks_capacities(make_scene):
    plan = plan_batch(make_scene((300, 200)), (2, 2))
    padded = plan.bucketed(4)
    assert padded == BatchPlan(plan.strides, plan.depth, 3, tuple(capacity_for(n, 4) for n in plan.sizes),
                               padding_sample=True)
    assert padded == plan.padded(padded.sizes) and hash(padded) == hash(plan.bucketed(4))   # a graph key
    assert not plan.padding_sample and padded != dataclasses.replace(padded, padding_sample=False)
    with pytest.raises(ValueError, match="padded already"):
        padded.bucketed()
    with pytest.raises(ValueError, match="capacity 10 must exceed the .* points of stage 2"):
        plan.padded((1024, 1024, 10))
    with pytest.raises(ValueError, match="3 stage sizes for 1 strides"):
        BatchPlan((2,), 5, 1, (10, 5, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.depth = 3


def test_padded_batch_carries_its_plan_to_every_stage(make_scene, tiny_config):
    backbone = _backbone(tiny_config)
    scene = make_scene((300, 200))
    padded_plan = plan_batch(scene, backbone.strides).bucketed()
    with torch.no_grad():
        point = backbone.encode(pad_to_capacity(scene, padded_plan))
    assert point.plan is padded_plan and point.level == 2
    assert _eager_stage_rows(backbone, pad_to_capacity(scene, padded_plan)) == padded_plan.sizes
