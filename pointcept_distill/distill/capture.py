"""Feature capture from named PTv3 stages through forward hooks.

A stage name is one of the backbone's ``feature_stages()`` (looked up with ``backbone.stage``): ``"bottleneck"``
(the deepest encoder stage's output, before the decoder), ``"enc<s>"`` or ``"dec<s>"``. Each capture records the
stage output's ``feat`` with the ``grid_coord`` and ``batch`` of its points, so that teacher and student points
can be matched by voxel later.

With ``as_leaf=True`` (the teacher) the first captured feature is replaced, in the forward pass, by a detached
copy that requires grad: run under ``torch.enable_grad()`` with frozen parameters, autograd then records only
the part of the network after the first captured stage, which is all that dL/dF needs (later stages stay graph
nodes: cutting them too would cut earlier stages off the loss, e.g. the bottleneck when a decoder stage follows).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

__all__ = ["CapturedFeature", "FeatureCapture", "stage_channels", "stage_module"]


@dataclass
class CapturedFeature:
    feat: Tensor        # (N_s, C_s)
    grid_coord: Tensor  # (N_s, 3)
    batch: Tensor       # (N_s,)


def stage_module(backbone: nn.Module, stage: str) -> nn.Module:
    """The backbone submodule whose output is ``stage``'s Point."""
    try:
        return backbone.stage(stage).module
    except KeyError as err:
        raise KeyError(f"distill.stages: {err.args[0]}") from None


def stage_channels(backbone: nn.Module, stage: str) -> int:
    """The width of ``stage``'s features, read from its modules (no forward pass): the output width of the
    stage's last linear layer (its last block's MLP, or its pooling's projection in a stage without blocks)."""
    linears = [m for m in stage_module(backbone, stage).modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"distill.stages: stage '{stage}' has no linear layer to read its width from")
    return linears[-1].out_features


class FeatureCapture:
    """Context manager: hooks the named stages of ``backbone`` and collects their features per forward."""

    def __init__(self, backbone: nn.Module, stages: list[str], as_leaf: bool = False) -> None:
        self.modules = {stage: stage_module(backbone, stage) for stage in stages}
        self.as_leaf = as_leaf
        self.features: dict[str, CapturedFeature] = {}
        self._handles: list[RemovableHandle] = []

    def _hook(self, stage: str):
        def hook(module: nn.Module, inputs, point):
            feat = point.feat
            if self.as_leaf and not feat.requires_grad:     # a later stage is already in the graph
                feat = feat.detach().requires_grad_(True)
                point.feat = feat
                if "sparse_conv_feat" in point:
                    point.sparse_conv_feat = point.sparse_conv_feat.replace_feature(feat)
            self.features[stage] = CapturedFeature(feat, point.grid_coord, point.batch)
            return point
        return hook

    def __enter__(self) -> "FeatureCapture":
        self.features = {}
        self._handles = [m.register_forward_hook(self._hook(s)) for s, m in self.modules.items()]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __iter__(self) -> Iterator[str]:
        return iter(self.modules)
