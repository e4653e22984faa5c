"""``MultiHeadSegmentor``: one backbone shared by several datasets, one linear head per dataset.

The heads' outputs are laid out one after the other (the *union* space: head 0's classes, then head 1's,
...). Each point carries ``dataset_index`` (N,), the head that scores it; ``head_logits`` keeps that
head's slice and sets the others to ``MASK_LOGIT``, so softmax, cross-entropy, Lovasz and a KL between
two such models are exactly those of the point's own head, and ``argmax`` is a union id inside it.
Labels (``segment``) are union ids too (``TagDataset(union_labels=True)`` makes them).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .builder import MODELS
from .point import Point
from .segmentor import DefaultSegmentorV2

__all__ = ["MultiHeadSegmentor", "DatasetHeads", "MASK_LOGIT"]

# finite, so that log_softmax stays finite and 0 * log p = 0 in a KL (fp16-representable)
MASK_LOGIT = -1.0e4


class DatasetHeads(nn.Module):
    """Linear heads named by dataset; ``forward(feat)`` -> (N, sum(num_classes)) logits of every head.

    Args:
        in_channels: feature width.
        num_classes: classes per head.
        head_names: one name per head (state-dict keys ``heads.<name>.weight``).
    """

    def __init__(self, in_channels: int, num_classes: Sequence[int], head_names: Sequence[str]) -> None:
        super().__init__()
        if len(num_classes) != len(head_names) or not head_names:
            raise ValueError(f"DatasetHeads: num_classes={list(num_classes)} and head_names="
                             f"{list(head_names)} must be non-empty and of equal length")
        self.heads = nn.ModuleDict({n: nn.Linear(in_channels, int(k)) for n, k in zip(head_names, num_classes)})
        head_of_class = torch.cat([torch.full((int(k),), i) for i, k in enumerate(num_classes)])
        self.register_buffer("head_of_class", head_of_class, persistent=False)  # (K_union,)

    def forward(self, feat: Tensor) -> Tensor:
        return torch.cat([head(feat) for head in self.heads.values()], dim=1)  # (N, K_union)

    def mask(self, logits: Tensor, dataset_index: Tensor) -> Tensor:
        """Logits of other heads than each point's set to ``MASK_LOGIT``."""
        own = self.head_of_class[None, :] == dataset_index.reshape(-1, 1)       # (N, K_union)
        return logits.masked_fill(~own, MASK_LOGIT)


@MODELS.register_module("MultiHeadSegmentor")
class MultiHeadSegmentor(DefaultSegmentorV2):
    """Shared backbone, one head per dataset, chosen per point by ``input_dict["dataset_index"]``.

    Outputs as ``DefaultSegmentorV2``: training ``{"loss"}``; evaluation with ``segment``
    ``{"loss", "seg_logits"}``; otherwise ``{"seg_logits"}`` (N, sum(num_classes)), masked to each point's
    head; ``return_point=True`` adds the backbone's output Point (which keeps ``dataset_index``).

    Args:
        num_classes: classes of each head, in ``dataset_index`` order.
        head_names: a name per head (e.g. the dataset names).
        backbone_out_channels: feature width of the backbone's output Point.
        backbone: MODELS config of the backbone.
        criteria: list of LOSSES configs (on masked union logits and union labels).
        freeze_backbone: set ``requires_grad=False`` on every backbone parameter.
    """

    def __init__(self, num_classes: Sequence[int], head_names: Sequence[str], backbone_out_channels: int,
                 backbone: dict | None = None, criteria: list[dict] | None = None,
                 freeze_backbone: bool = False) -> None:
        self.head_names = list(head_names)  # read by build_head, inside the parent's constructor
        self.num_classes = [int(k) for k in num_classes]
        super().__init__(self.num_classes, backbone_out_channels, backbone, criteria, freeze_backbone)

    def build_head(self, in_channels: int, num_classes: Sequence[int]) -> nn.Module:
        return DatasetHeads(in_channels, num_classes, self.head_names)

    def head_slice(self, name: str) -> slice:
        """The union ids of head ``name``."""
        if name not in self.head_names:
            raise KeyError(f"MultiHeadSegmentor: no head {name!r} (heads: {self.head_names})")
        i = self.head_names.index(name)
        start = sum(self.num_classes[:i])
        return slice(start, start + self.num_classes[i])

    def head_logits(self, point: Point) -> Tensor:
        """Masked union logits (N, K_union) of a backbone output Point holding ``dataset_index``."""
        if "dataset_index" not in point:
            raise KeyError("MultiHeadSegmentor: the input has no 'dataset_index' (add TagDataset to the "
                           "pipeline and 'dataset_index' to Collect's keys)")
        return self.seg_head.mask(self.seg_head(point.feat), point["dataset_index"])
