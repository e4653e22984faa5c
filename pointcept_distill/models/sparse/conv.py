"""Submanifold 3-D convolution with spconv's parameters: spconv on CUDA when installed, gather-GEMM elsewhere."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..backend import CONV_PATHS
from . import kernel_map
from .implicit_gemm import implicit_gemm_available, subm_conv_implicit_gemm, subm_conv_weight_grad
from .tensor import SparseConvTensor

__all__ = ["GATHER_MAX_ROWS", "SubMConv3d", "spconv_available", "uses_spconv"]

_SPCONV: Any = None


def _import_spconv() -> Any:
    """``spconv.pytorch`` or False; imported on the first CUDA call only, so CPU installs never need it."""
    global _SPCONV
    if _SPCONV is None:
        try:
            import spconv.pytorch as spconv_pytorch
            _SPCONV = spconv_pytorch
        except ImportError:
            _SPCONV = False
    return _SPCONV


def spconv_available() -> bool:
    """Whether ``spconv.pytorch`` imports (the CUDA fast path of ``SubMConv3d``)."""
    return bool(_import_spconv())


# Stages of at most this many voxels take the gather path even where spconv runs: a scan or two is host-bound,
# and spconv's per-call Python bookkeeping costs more than the gather's few kernels (inference: one scan 18-26 %
# faster; larger thresholds made 8 scans slower). Training follows the same rule because ``_GatherGEMM`` has its
# own gathering backward (autograd's scatter-add backward would send every missing neighbour's gradient to the one
# padding row, where the atomic adds collide): on an H100 a training step on the gather path costs what it costs on
# spconv (student) or 12 % less (one-scan distillation step). Measurements: docs/research.md.
GATHER_MAX_ROWS = 32_768


def uses_spconv(features: Tensor, conv_path: str = "auto") -> bool:
    """Whether a convolution of ``features`` (N, C) built with ``conv_path`` runs on spconv: CUDA features with
    spconv installed, on every stage ("spconv") or on stages of more than ``GATHER_MAX_ROWS`` voxels ("auto")."""
    if conv_path not in ("auto", "spconv") or not features.is_cuda or not _import_spconv():
        return False
    return conv_path == "spconv" or features.shape[0] > GATHER_MAX_ROWS


class SubMConv3d(nn.Module):
    """Submanifold convolution: ``out[p] = bias + sum_o W[:, o] @ x[p + offset_o]`` over existing neighbours.

    Parameters are spconv's: ``weight`` (out, k, k, k, in) and ``bias`` (out,) or None, so state dicts move
    between this module and ``spconv.SubMConv3d``. Offsets are centred (``a - k//2``); ``padding`` is accepted
    for signature compatibility and, as for any submanifold convolution, has no effect.

    Paths, same numbers (to float rounding), chosen by ``conv_path`` when the layer is built (``uses_spconv``):
    - spconv's kernels, for CUDA tensors with spconv installed ("auto": on more than ``GATHER_MAX_ROWS`` voxels;
      "spconv": always). Input and weight are cast to one dtype first (spconv fails on mixed dtypes under
      autocast and has no bfloat16 kernels, so bf16 runs in float16).
    - Everything else: a gather-GEMM over the kernel map from ``kernel_map.build_kernel_map``, differentiable
      through plain torch ops ("gather": always, as a CUDA graph or a whole-graph compile needs). With
      "implicit", the Triton implicit GEMM runs instead where Triton can run, forward and backward
      (``implicit_gemm``: no (N, K * Cin) buffer; on an H100 in bf16 the forward is 1.5-27x faster than the
      gather-GEMM per layer, 0.9x on the one-scan 512-channel bottleneck; docs/research.md).
      spconv's CPU build is never used (it gives wrong answers and has no backward).
    Either way the kernel map is cached in the input tensor's ``indice_dict`` under ``indice_key``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size k.
        padding: ignored (submanifold).
        bias: whether to learn a bias.
        indice_key: cache key for the kernel map, shared by convolutions on the same voxels.
        conv_path: "auto", "spconv", "gather" or "implicit" (``backend.CONV_PATHS``), as above.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 0,
                 bias: bool = True, indice_key: str | None = None, conv_path: str = "auto") -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"SubMConv3d: kernel_size must be odd, got {kernel_size}")
        if conv_path not in CONV_PATHS:
            raise ValueError(f"SubMConv3d: conv_path must be one of {CONV_PATHS}, got {conv_path!r}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.padding = padding
        self.indice_key = indice_key
        self.conv_path = conv_path
        self.weight = nn.Parameter(torch.empty(out_channels, kernel_size, kernel_size, kernel_size, in_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform weight and uniform bias with fan_in = in_channels * k^3 (torch's conv default)."""
        fan_in = self.in_channels * self.kernel_size ** 3
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"bias={self.bias is not None}, indice_key={self.indice_key!r}, conv_path={self.conv_path!r}")

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        if x.features.shape[-1] != self.in_channels:
            raise ValueError(f"SubMConv3d({self.indice_key}): expected {self.in_channels} input channels, "
                             f"got {x.features.shape[-1]}")
        if uses_spconv(x.features, self.conv_path):
            return x.replace_feature(self._spconv_forward(x))
        return x.replace_feature(self._gather_forward(x))

    def _cached(self, x: SparseConvTensor, kind: str, build: Any) -> Any:
        """The kernel map of ``indice_key`` (built and cached on first use; a None key never caches)."""
        if self.indice_key is None:
            return build()
        entry = x.indice_dict.get(self.indice_key)
        if entry is None:
            entry = (kind, self.kernel_size, build())
            x.indice_dict[self.indice_key] = entry
        elif entry[:2] != (kind, self.kernel_size):
            raise ValueError(f"SubMConv3d: indice_key {self.indice_key!r} is cached as {entry[:2]}, "
                             f"this layer needs {(kind, self.kernel_size)}")
        return entry[2]

    def _gather_forward(self, x: SparseConvTensor) -> Tensor:
        table, mirror = self._cached(x, "gather", lambda: _gather_tables(x.indices, self.kernel_size))
        device = x.features.device.type
        # one dtype for both operands: autocast's (cast before gathering, on K times fewer rows) or the weight's
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else self.weight.dtype
        w = self.weight.to(dtype).permute(1, 2, 3, 4, 0).reshape(-1, self.out_channels)   # (K*Cin, Cout)
        feat = x.features.to(dtype)
        if self.conv_path == "implicit" and implicit_gemm_available(feat):
            # inference calls the kernel bare (torch.compile traces it without an autograd.Function)
            out = (_ImplicitGEMM.apply(feat, w, table, mirror) if _needs_grad(feat, w)
                   else subm_conv_implicit_gemm(feat, table, w))
        else:
            out = _GatherGEMM.apply(feat, w, table, mirror)
        return out + self.bias if self.bias is not None else out

    @torch.compiler.disable      # spconv's C++ bookkeeping is opaque to torch.compile: one clean graph break
    def _spconv_forward(self, x: SparseConvTensor) -> Tensor:
        spconv = _import_spconv()
        layer = self.__dict__.get("_spconv_layer")
        if layer is None:
            # A twin that only supplies spconv's algorithm choice and bookkeeping (its own weight is never
            # used); it is kept out of the module tree and the state dict, and its initialisation must not
            # draw from the global RNG inside forward (that would change later order shuffles).
            with torch.random.fork_rng(devices=[]):
                layer = spconv.SubMConv3d(self.in_channels, self.out_channels, self.kernel_size, bias=False,
                                          indice_key=self.indice_key)
            self.__dict__["_spconv_layer"] = layer
        autocast = torch.is_autocast_enabled("cuda")
        dtype = torch.get_autocast_dtype("cuda") if autocast else x.features.dtype
        if dtype == torch.bfloat16:
            dtype = torch.float16
        with torch.autocast("cuda", enabled=False):
            tensor = spconv.SparseConvTensor(x.features.to(dtype), x.indices, x.spatial_shape, x.batch_size,
                                             indice_dict=self._spconv_indices(x))
            weight = self.weight.to(dtype)
            bias = self.bias.to(dtype) if self.bias is not None else None
            # Always spconv's training path: its inference path is not an autograd function (no gradient
            # reaches features or weights, e.g. for a frozen teacher's input gradients), and the kernel maps
            # it caches would lack the backward pairs a later differentiable call on the same key needs.
            out = layer._conv_forward(True, tensor, weight, bias)
        if self.indice_key is not None and self.indice_key in out.indice_dict:
            x.indice_dict.setdefault(self.indice_key, ("spconv", self.kernel_size,
                                                       out.indice_dict[self.indice_key]))
        # under autocast the float16 result flows on; outside it, a bfloat16 model gets bfloat16 back
        return out.features if autocast else out.features.to(x.features.dtype)

    def _spconv_indices(self, x: SparseConvTensor) -> dict[str, Any]:
        """spconv's own view of the cache: its pair data for the keys built by spconv."""
        return {key: entry[2] for key, entry in x.indice_dict.items() if entry[0] == "spconv"}


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _gather_tables(indices: Tensor, kernel_size: int) -> tuple[Tensor, Tensor]:
    """(N, K) neighbour rows of each voxel, and the same with the offsets mirrored (offset o -> -o)."""
    table = kernel_map.build_kernel_map(indices, kernel_size).t().contiguous()
    return table, table.flip(1).contiguous()         # offsets are centred, so -o has index K-1-o


class _GatherGEMM(torch.autograd.Function):
    """``out[p] = sum_o x[p + o] @ W_o`` as one gather and one GEMM, with a backward that gathers as well.

    Submanifold neighbourhoods are symmetric (q = p + o exactly when p = q - o), so the input gradient
    ``dx[q] = sum_o dout[q - o] @ W_o^T`` is the same gather-GEMM over the mirrored table: no scatter-add into
    the feature rows (autograd's ``index_put_`` accumulation was 41 % of a CPU training step, and most of its
    adds land on the padding row that stands for missing neighbours). First-order gradients only.
    """

    @staticmethod
    def forward(ctx, feat: Tensor, weight: Tensor, table: Tensor, mirror: Tensor) -> Tensor:
        # feat (N, Cin), weight (K*Cin, Cout), table and mirror (N, K) rows into feat, N = missing
        gathered = _gather_rows(feat, table)                                # (N, K*Cin)
        ctx.save_for_backward(gathered, weight, mirror)
        return gathered @ weight                                            # (N, Cout)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        gathered, weight, mirror = ctx.saved_tensors
        grad_feat = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_feat = _gather_rows(grad_out, mirror) @ _mirror_weight(weight, mirror.shape[1])
        if ctx.needs_input_grad[1]:
            grad_weight = gathered.t() @ grad_out
        return grad_feat, grad_weight, None, None


class _ImplicitGEMM(torch.autograd.Function):
    """The gather-GEMM's function on the Triton kernels (``implicit_gemm``): the input gradient is the forward's
    kernel over the mirrored table with the transposed weights (see ``_GatherGEMM``), the weight gradient the
    kernel that gathers the input rows inside its sum over the rows, so no pass writes an (N, K*C) buffer."""

    @staticmethod
    def forward(ctx, feat: Tensor, weight: Tensor, table: Tensor, mirror: Tensor) -> Tensor:
        ctx.save_for_backward(feat, weight, table, mirror)
        return subm_conv_implicit_gemm(feat, table, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        feat, weight, table, mirror = ctx.saved_tensors
        grad_out = grad_out.to(weight.dtype)
        grad_feat = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_feat = subm_conv_implicit_gemm(grad_out, mirror, _mirror_weight(weight, mirror.shape[1]))
        if ctx.needs_input_grad[1]:
            grad_weight = subm_conv_weight_grad(feat, table, grad_out)
        return grad_feat, grad_weight, None, None


def _mirror_weight(weight: Tensor, k: int) -> Tensor:
    """(K*Cin, Cout) offset-major weight -> (K*Cout, Cin): each offset's block transposed, the weight of the
    input gradient's convolution over the mirrored table."""
    c_out = weight.shape[1]
    return weight.reshape(k, -1, c_out).transpose(1, 2).reshape(k * c_out, -1)


def _gather_rows(feat: Tensor, table: Tensor) -> Tensor:
    """(N, C) rows at the (N, K) ``table`` (index N gives zeros) -> (N, K*C)."""
    padded = torch.cat([feat, feat.new_zeros(1, feat.shape[1])], dim=0)    # (N+1, C), row N is zero
    return padded[table].reshape(table.shape[0], -1)
