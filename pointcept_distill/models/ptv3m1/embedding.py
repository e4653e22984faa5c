"""The PT-v3m1 stem: a kernel-5 submanifold convolution, norm and activation."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..modules import PointModule, PointSequential
from ..point import Point
from ..sparse import SubMConv3d

__all__ = ["Embedding"]


class Embedding(PointModule):
    """``stem = conv (SubMConv3d k=5, no bias, indice_key "stem") -> norm -> act`` (upstream's ``Embedding``).

    Args:
        in_channels: input feature width.
        embed_channels: output width (``enc_channels[0]``).
        norm_layer, act_layer: factories for the norm (BatchNorm1d) and activation (GELU), or None.
        conv_path: the stem convolution's path (``SubMConv3d``).
    """

    def __init__(self, in_channels: int, embed_channels: int,
                 norm_layer: Callable[[int], nn.Module] | None = None,
                 act_layer: Callable[[], nn.Module] | None = None, conv_path: str = "auto") -> None:
        super().__init__()
        self.in_channels, self.embed_channels = in_channels, embed_channels
        self.stem = PointSequential(
            conv=SubMConv3d(in_channels, embed_channels, kernel_size=5, padding=1, bias=False, indice_key="stem",
                            conv_path=conv_path))
        if norm_layer is not None:
            self.stem.add(norm_layer(embed_channels), name="norm")
        if act_layer is not None:
            self.stem.add(act_layer(), name="act")

    def forward(self, point: Point) -> Point:
        return self.stem(point)
