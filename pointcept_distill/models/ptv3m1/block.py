"""The PT-v3m1 block: conditional positional encoding (sparse conv), serialized attention and an MLP."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..modules import DropPath, PointModule, PointSequential
from ..point import Point
from ..sparse import SubMConv3d
from .attention import SerializedAttention

__all__ = ["MLP", "Block"]


class MLP(nn.Module):
    """fc1 -> act -> dropout -> fc2 -> dropout, hidden width ``hidden_channels``."""

    def __init__(self, in_channels: int, hidden_channels: int | None = None, out_channels: int | None = None,
                 act_layer: Callable[[], nn.Module] = nn.GELU, drop: float = 0.0) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        hidden_channels = hidden_channels or in_channels
        self.fc1 = nn.Linear(in_channels, hidden_channels)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_channels, out_channels)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(PointModule):
    """CPE -> attention -> MLP, each residual; pre-norm by default (upstream's ``Block``).

    The CPE convolution reads ``sparse_conv_feat``, which after unpooling still holds the skip branch's
    features while ``feat`` holds their sum with the upsampled features (upstream's behaviour, kept because
    released checkpoints were trained with it). The block ends by syncing ``sparse_conv_feat`` to ``feat``.

    Args:
        channels, num_heads, patch_size, qkv_bias, qk_scale, attn_drop, order_index, enable_rpe, enable_flash,
            upcast_attention, upcast_softmax: passed to ``SerializedAttention``.
        mlp_ratio: MLP hidden width is ``int(channels * mlp_ratio)``.
        proj_drop: dropout after the attention projection and inside the MLP.
        drop_path: stochastic-depth probability of the attention and MLP branches (not the CPE).
        norm_layer, act_layer: factories of the norm (LayerNorm) and activation (GELU).
        pre_norm: normalise before each branch (True) or after the residual sum.
        cpe_indice_key: kernel-map cache key of the CPE convolution ("stage{s}").
        conv_path: the CPE convolution's path (``SubMConv3d``).
        attention_kernel: the attention's kernel (``SerializedAttention``'s ``kernel``).
    """

    def __init__(self, channels: int, num_heads: int, patch_size: int = 48, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, drop_path: float = 0.0,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 act_layer: Callable[[], nn.Module] = nn.GELU, pre_norm: bool = True, order_index: int = 0,
                 cpe_indice_key: str | None = None, enable_rpe: bool = False, enable_flash: bool = True,
                 upcast_attention: bool = True, upcast_softmax: bool = True, conv_path: str = "auto",
                 attention_kernel: str = "triton") -> None:
        super().__init__()
        self.pre_norm = pre_norm
        self.cpe = PointSequential(
            SubMConv3d(channels, channels, kernel_size=3, bias=True, indice_key=cpe_indice_key, conv_path=conv_path),
            nn.Linear(channels, channels),
            norm_layer(channels),
        )
        self.norm1 = PointSequential(norm_layer(channels))
        self.attn = SerializedAttention(
            channels, num_heads, patch_size, qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
            proj_drop=proj_drop, order_index=order_index, enable_rpe=enable_rpe, enable_flash=enable_flash,
            upcast_attention=upcast_attention, upcast_softmax=upcast_softmax, kernel=attention_kernel)
        self.norm2 = PointSequential(norm_layer(channels))
        self.mlp = PointSequential(MLP(channels, int(channels * mlp_ratio), channels, act_layer, proj_drop))
        self.drop_path = PointSequential(DropPath(drop_path) if drop_path > 0.0 else nn.Identity())

    def forward(self, point: Point) -> Point:
        shortcut = point.feat
        point = self.cpe(point)
        point.feat = shortcut + point.feat
        point = self._residual(point, self.norm1, self.attn)
        point = self._residual(point, self.norm2, self.mlp)
        point.sparse_conv_feat = point.sparse_conv_feat.replace_feature(point.feat)
        return point

    def _residual(self, point: Point, norm: PointSequential, branch: PointModule) -> Point:
        shortcut = point.feat
        if self.pre_norm:
            point = norm(point)
        point = self.drop_path(branch(point))
        point.feat = shortcut + point.feat
        if not self.pre_norm:
            point = norm(point)
        return point
