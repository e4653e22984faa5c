"""``DefaultSegmentorV2``: a backbone returning a Point, a linear head and the training criteria."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .builder import MODELS, build_model
from .losses import build_criteria
from .point import Point

__all__ = ["DefaultSegmentorV2"]


@MODELS.register_module("DefaultSegmentorV2")
class DefaultSegmentorV2(nn.Module):
    """Per-point semantic segmentation: ``seg_head(backbone(input).feat)``.

    ``seg_head`` is created before ``backbone`` so that its keys come first in the state dict (upstream's
    order). Outputs: training ``{"loss"}``; evaluation with ``segment`` in the input ``{"loss", "seg_logits"}``;
    otherwise ``{"seg_logits"}``. ``return_point=True`` adds the backbone's output Point as ``"point"``.

    Args:
        num_classes: classes of the head; 0 or less gives an identity head (no ``seg_head`` keys).
        backbone_out_channels: feature width of the backbone's output Point.
        backbone: MODELS config of the backbone.
        criteria: list of LOSSES configs, summed.
        freeze_backbone: set ``requires_grad=False`` on every backbone parameter.
    """

    def __init__(self, num_classes: int, backbone_out_channels: int, backbone: dict | None = None,
                 criteria: list[dict] | None = None, freeze_backbone: bool = False) -> None:
        super().__init__()
        if backbone is None:
            raise ValueError(f"{type(self).__name__}: a backbone config is required")
        self.seg_head = self.build_head(backbone_out_channels, num_classes)
        self.backbone = build_model(backbone)
        self.criteria = build_criteria(criteria)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            for p in self.backbone.parameters():
                p.requires_grad = False

    def build_head(self, in_channels: int, num_classes: int) -> nn.Module:
        """The segmentation head (subclasses with other heads override this and ``head_logits``)."""
        return nn.Linear(in_channels, num_classes) if num_classes > 0 else nn.Identity()

    def head_logits(self, point: Point) -> Tensor:
        """(N, num_classes) logits of a backbone output Point (distillation reuses the segmentor's head)."""
        return self.seg_head(point.feat)

    def forward(self, input_dict: dict, return_point: bool = False) -> dict[str, Tensor | Point]:
        point = self.backbone(Point(input_dict))
        # An encoder-only backbone returns the deepest stage: concatenate features back up to the input.
        while "pooling_parent" in point:
            parent = point.pop("pooling_parent")
            inverse = point.pop("pooling_inverse")
            parent.feat = torch.cat([parent.feat, point.feat[inverse]], dim=-1)
            point = parent
        seg_logits = self.head_logits(point)
        if self.training:
            out: dict[str, Tensor | Point] = {"loss": self.criteria(seg_logits, input_dict["segment"])}
        elif "segment" in input_dict:
            out = {"loss": self.criteria(seg_logits, input_dict["segment"]), "seg_logits": seg_logits}
        else:
            out = {"seg_logits": seg_logits}
        if return_point:
            out["point"] = point
        return out
