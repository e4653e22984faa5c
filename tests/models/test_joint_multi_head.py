"""``MultiHeadSegmentor``: per-dataset heads over a shared backbone, routed per point."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pointcept_distill.models import build_model
from pointcept_distill.models.builder import MODELS
from pointcept_distill.models.multi_head import MASK_LOGIT, MultiHeadSegmentor
from pointcept_distill.models.point import Point

SIZES, NAMES = [3, 4, 5], ["a", "b", "c"]


class _LinearBackbone(nn.Module):
    """Point -> Point with ``feat`` replaced by a linear map of it (keeps every other key)."""

    def __init__(self, in_channels: int = 4, out_channels: int = 6) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, out_channels)

    def forward(self, point: Point) -> Point:
        point.feat = self.proj(point.feat)
        return point


MODELS.register_module("JointTestLinearBackbone", module=_LinearBackbone, force=True)


def _model() -> MultiHeadSegmentor:
    torch.manual_seed(0)
    return build_model(dict(type="MultiHeadSegmentor", num_classes=SIZES, head_names=NAMES, backbone_out_channels=6,
                            backbone=dict(type="JointTestLinearBackbone"),
                            criteria=[dict(type="CrossEntropyLoss", ignore_index=-1)]))


def _batch(n: int = 30) -> dict:
    gen = torch.Generator().manual_seed(1)
    which = torch.arange(n) % 3
    offsets = torch.tensor([0, 3, 7])
    segment = torch.stack([torch.randint(0, SIZES[int(d)], (1,), generator=gen)[0] for d in which]) + offsets[which]
    segment[::7] = -1
    return dict(coord=torch.randn(n, 3, generator=gen), grid_coord=torch.zeros(n, 3, dtype=torch.long),
                feat=torch.randn(n, 4, generator=gen), offset=torch.tensor([n // 2, n]), segment=segment,
                dataset_index=which)


def test_logits_are_each_points_own_head():
    model = _model().eval()
    batch = _batch()
    logits = model(dict(batch))["seg_logits"]
    assert logits.shape == (30, sum(SIZES))
    feat = model.backbone(Point(dict(batch))).feat
    for d, name in enumerate(NAMES):
        rows = batch["dataset_index"] == d
        own = model.head_slice(name)
        assert torch.allclose(logits[rows][:, own], model.seg_head.heads[name](feat[rows]), atol=1e-6)
        others = torch.ones(sum(SIZES), dtype=torch.bool)
        others[own] = False
        assert (logits[rows][:, others] == MASK_LOGIT).all()
        pred = logits[rows].argmax(1)
        assert ((pred >= own.start) & (pred < own.stop)).all()


def test_loss_is_the_per_head_cross_entropy():
    model = _model().train()
    batch = _batch()
    loss = model(dict(batch))["loss"]
    feat = model.backbone(Point(dict(batch))).feat
    total, count = 0.0, 0
    for d, name in enumerate(NAMES):
        rows = (batch["dataset_index"] == d) & (batch["segment"] != -1)
        target = batch["segment"][rows] - model.head_slice(name).start
        total = total + F.cross_entropy(model.seg_head.heads[name](feat[rows]), target, reduction="sum")
        count += int(rows.sum())
    assert torch.allclose(loss, total / count, atol=1e-5)


def test_gradient_reaches_only_the_heads_of_the_batch():
    model = _model().train()
    batch = _batch()
    keep = batch["dataset_index"] != 2
    sub = {k: (v[keep] if k not in ("offset",) else torch.tensor([int(keep.sum())])) for k, v in batch.items()}
    model(sub)["loss"].backward()
    assert model.seg_head.heads["a"].weight.grad.abs().sum() > 0
    assert model.seg_head.heads["c"].weight.grad is None or model.seg_head.heads["c"].weight.grad.abs().sum() == 0


def test_point_keeps_dataset_index_and_errors_name_the_class():
    model = _model().train()
    out = model(dict(_batch()), return_point=True)
    assert "dataset_index" in out["point"]
    batch = _batch()
    batch.pop("dataset_index")
    with pytest.raises(KeyError, match="MultiHeadSegmentor: the input has no 'dataset_index'"):
        model(batch)
    with pytest.raises(KeyError, match="no head 'd'"):
        model.head_slice("d")
    with pytest.raises(ValueError, match="DatasetHeads"):
        build_model(dict(type="MultiHeadSegmentor", num_classes=[3], head_names=["a", "b"], backbone_out_channels=6,
                         backbone=dict(type="JointTestLinearBackbone")))


def test_state_dict_has_one_head_per_dataset():
    keys = set(_model().state_dict())
    assert {f"seg_head.heads.{n}.weight" for n in NAMES} <= keys
    assert _model().seg_head.heads["b"].weight.shape == (4, 6)
