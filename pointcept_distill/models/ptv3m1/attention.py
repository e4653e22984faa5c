"""Serialized windowed self-attention of PT-v3m1: Triton kernels on CUDA (both directions), SDPA otherwise."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..backend import ATTENTION_KERNELS
from ..modules import PointModule
from ..point import Point
from .window_attention import triton_available, window_attention
from .windows import WindowPartition, build_windows

__all__ = ["SerializedAttention", "SDPA_BACKENDS"]

# cuDNN's attention is left out: it builds (and caches) one execution graph per input shape, and the number of
# windows changes with every scan. Measured on 2 x H200 (student training step, tools/multi_gpu.py): new window
# counts cost up to hundreds of milliseconds each and 70 % of the step's host time went to cuDNN attention.
SDPA_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


class SerializedAttention(PointModule):
    """Multi-head attention inside windows of ``patch_size`` consecutive points along one serialization order.

    Windows as upstream's flash path (``enable_flash=True``, see ``windows.build_windows``). With
    ``enable_flash=False`` the window length is upstream's non-flash one, ``min(smallest sample, patch_size)``,
    so every sample is cut into full windows (reading the smallest sample costs one host sync per stage).
    No relative position encoding. Attention runs in the dtype of ``qkv`` (float32 outside autocast; upstream's
    flash path always casts to bfloat16, which is less precise). With ``kernel="triton"`` it runs in one Triton
    kernel per direction (``window_attention.window_attention``: the gathers, all windows and heads and the
    scatter back in one launch, and a flash-attention-style backward) where Triton can run (CUDA), the head
    width is a power of two of at least 16, there is no attention dropout and, with gradients, deterministic
    algorithms are off (H100, bf16, real stage sizes: 2.4-5.6x faster than SDPA per forward; docs/research.md);
    otherwise (and always with ``kernel="sdpa"``) on flash or memory-efficient SDPA kernels (``SDPA_BACKENDS``;
    not cuDNN's, which rebuilds a graph for every new window count). The window partition is
    built at the first block of a stage and cached in the Point under ``attn_windows``; the decoder reuses the
    encoder's, so ``dec_patch_size`` does not enter the math (as upstream).

    Args:
        channels: feature width C (divisible by ``num_heads``).
        num_heads: heads H; the qkv channels are laid out [3][H][C/H].
        patch_size: window length P.
        qkv_bias: bias of the qkv projection.
        qk_scale: softmax scale, default ``(C/H) ** -0.5``.
        attn_drop: dropout on attention probabilities (training only).
        proj_drop: dropout after the output projection.
        order_index: which serialization order (row of ``serialized_order``) this block uses.
        enable_flash: flash-path windows (True) or upstream's non-flash window length (False).
        kernel: "triton" or "sdpa" (``backend.ATTENTION_KERNELS``), as above.
        enable_rpe, upcast_attention, upcast_softmax: upstream's flags; must be False (RPE and upcasting are
            not implemented; upstream's flash path forbids them too).
    """

    def __init__(self, channels: int, num_heads: int, patch_size: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 order_index: int = 0, enable_rpe: bool = False, enable_flash: bool = True,
                 upcast_attention: bool = False, upcast_softmax: bool = False, kernel: str = "triton") -> None:
        super().__init__()
        if kernel not in ATTENTION_KERNELS:
            raise ValueError(f"SerializedAttention: kernel must be one of {ATTENTION_KERNELS}, got {kernel!r}")
        if channels % num_heads:
            raise ValueError(f"SerializedAttention: channels={channels} not divisible by num_heads={num_heads}")
        if enable_rpe or upcast_attention or upcast_softmax:
            raise NotImplementedError("SerializedAttention: enable_rpe, upcast_attention and upcast_softmax are "
                                      "not supported (upstream's flash path forbids them too)")
        self.channels, self.num_heads, self.patch_size = channels, num_heads, patch_size
        self.scale = qk_scale or (channels // num_heads) ** -0.5
        self.order_index = order_index
        self.enable_flash = enable_flash
        self.attn_drop = attn_drop
        self.kernel = kernel
        self.qkv = nn.Linear(channels, channels * 3, bias=qkv_bias)
        self.proj = nn.Linear(channels, channels)
        self.proj_drop = nn.Dropout(proj_drop)

    def windows(self, point: Point) -> WindowPartition:
        """The stage's window partition (built with this block's patch size if the stage has none yet)."""
        if "attn_windows" not in point:
            patch_size = self.patch_size
            if not self.enable_flash:
                counts = torch.diff(point.offset, prepend=point.offset.new_zeros(1))
                patch_size = max(min(int(counts.min()), patch_size), 1)
            point.attn_windows = build_windows(point.offset, point.feat.shape[0], patch_size)
        return point.attn_windows

    def _attend(self, qkv: Tensor, window: int, mask: Tensor | None) -> Tensor:
        """(M*P, 3C) window-major rows, P = ``window`` -> (M*P, C) attention output."""
        h, d = self.num_heads, self.channels // self.num_heads
        q, k, v = qkv.reshape(-1, window, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)   # each (M, H, P, d)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_drop if self.training else 0.0, scale=self.scale)
        return out.transpose(1, 2).reshape(-1, self.channels)                          # (M*P, C)

    def forward(self, point: Point) -> Point:
        win = self.windows(point)
        qkv = self.qkv(point.feat)                                                # (N, 3C)
        order = point.serialized_order[self.order_index]
        if self._uses_kernel(qkv):
            feat = window_attention(qkv, *win.kernel_tables(self.order_index, order), self.num_heads, self.scale)
        else:
            full, short, slot = win.gather_indices(self.order_index, order,
                                                   point.serialized_inverse[self.order_index])
            with sdpa_kernel(SDPA_BACKENDS):
                out_full = self._attend(qkv[full], win.patch_size, None)
                out_short = self._attend(qkv[short], win.patch_size, win.short_mask[:, None, None, :])  # (B,1,1,P)
            feat = torch.cat([out_full, out_short], 0)[slot]                      # (N, C)
        point.feat = self.proj_drop(self.proj(feat))
        return point

    def _uses_kernel(self, qkv: Tensor) -> bool:
        head_dim = self.channels // self.num_heads
        # the kernel has no dropout, and its backward adds the keys' gradients atomically (not deterministic)
        backward = torch.is_grad_enabled() and qkv.requires_grad
        return (self.kernel == "triton" and triton_available(qkv) and head_dim >= 16 and not head_dim & (head_dim - 1)
                and not (self.training and self.attn_drop > 0)
                and not (backward and torch.are_deterministic_algorithms_enabled()))
