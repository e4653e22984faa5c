"""What torch.compile takes each of our Triton kernels to write: only the kernel's outputs.

When a compiled graph launches a user Triton kernel, torch.compile reads the kernel's TTIR to learn which tensor
arguments it writes; whatever it cannot follow it counts as written. A kernel read as writing an input breaks
compiled training: a forward output saved for the backward and "written" by a backward kernel fails AOTAutograd's
partitioner (pytorch issue 174124; the window-attention backward's helpers did this to ``out``). The analysis only
builds the TTIR, so a CUDA target stands in for the GPU and the tensors are small CPU ones.
"""
from __future__ import annotations

from unittest import mock

import pytest
import torch
import triton
from torch._higher_order_ops.triton_kernel_wrap import identify_accessed_tensors
from triton.backends.compiler import GPUTarget

from pointcept_distill.models.ptv3m1 import window_attention as attention
from pointcept_distill.models.sparse import implicit_gemm as gemm


class _CudaDriver:
    """The one thing TTIR generation asks of Triton's driver: the target (an H100's)."""

    @staticmethod
    def get_current_target() -> GPUTarget:
        return GPUTarget("cuda", 90, 32)


def written(kernel, args: dict) -> set[str]:
    """The arguments of ``kernel`` that torch.compile's analysis finds written, for launch arguments ``args``."""
    with mock.patch.object(triton.runtime.driver, "_active", _CudaDriver()):
        access = identify_accessed_tensors(kernel, args, {})
    return {dep.name for dep in access.read_writes.writes}


def attention_args(heads: int = 2, head_dim: int = 16, points: int = 100, windows: int = 4, window: int = 32):
    """Launch arguments of the window-attention kernels: qkv (N, 3C), tables, out (N, C), lse, dO, grad."""
    channels = heads * head_dim
    return dict(qkv_ptr=torch.randn(points, 3 * channels), rows_ptr=torch.zeros(windows, window, dtype=torch.int64),
                lengths_ptr=torch.full((windows,), window, dtype=torch.int64),
                dest_ptr=torch.zeros(windows * window, dtype=torch.int64), out_ptr=torch.empty(points, channels),
                lse_ptr=torch.empty(windows * window, heads), dout_ptr=torch.randn(points, channels),
                grad_ptr=torch.zeros(points, 3 * channels), qk_scale=0.3, scale=0.2, heads=heads, channels=channels,
                window=window, HEAD_DIM=head_dim, BLOCK_M=32, BLOCK_N=32, IEEE=True, STORE_LSE=True)


def conv_args(points: int = 50, offsets: int = 27, c_in: int = 16, c_out: int = 32):
    """Launch arguments of the implicit-GEMM kernels: features, neighbour table, weight, outputs."""
    return dict(feat_ptr=torch.randn(points, c_in), table_ptr=torch.zeros(points, offsets, dtype=torch.int64),
                weight_ptr=torch.randn(offsets * c_in, c_out), out_ptr=torch.empty(points, c_out),
                grad_ptr=torch.randn(points, c_out), partial_ptr=torch.empty(2, offsets * c_in, c_out), n=points,
                k_offsets=offsets, c_in=c_in, c_out=c_out, blocks_per_split=1, BLOCK_M=64, BLOCK_N=32, BLOCK_K=16,
                IEEE=True)


@pytest.mark.parametrize("kernel, make_args, outputs", [
    (attention._window_attention_kernel, attention_args, {"out_ptr", "lse_ptr"}),
    (attention._window_attention_dq_kernel, attention_args, {"grad_ptr"}),
    (attention._window_attention_dkdv_kernel, attention_args, {"grad_ptr"}),
    (gemm._subm_conv_kernel, conv_args, {"out_ptr"}),
    (gemm._subm_conv_weight_grad_kernel, conv_args, {"partial_ptr"}),
], ids=lambda v: getattr(getattr(v, "fn", None), "__name__", None) or "")
def test_each_triton_kernel_is_read_as_writing_only_its_outputs(kernel, make_args, outputs):
    args = {name: value for name, value in make_args().items() if name in kernel.arg_names}
    assert len(args) == len(kernel.arg_names)
    assert written(kernel, args) == outputs
