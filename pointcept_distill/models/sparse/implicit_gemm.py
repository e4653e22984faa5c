"""An implicit-GEMM submanifold convolution in Triton: the gather happens inside the GEMM's operand loads.

The gather-GEMM (``conv._GatherGEMM``) writes an (N, K * Cin) buffer of gathered rows and reads it back for one
GEMM; at 8 scans that buffer is hundreds of MB per convolution, and the convolution was half of a captured
forward's kernel time (docs/research.md). Here each program computes a (BLOCK_M, BLOCK_N) tile of the output and
loops over the K offsets, loading the neighbours' rows straight from the features (missing neighbours read as
zeros) and accumulating ``rows @ W_o`` in float32: no intermediate buffer, one kernel launch, capturable in a
CUDA graph and callable inside ``torch.compile``. The input gradient is the same kernel over the mirrored table
(``conv._ImplicitGEMM``); the weight gradient ``dW_o = sum_p feat[p + o]^T @ dout[p]`` is a second kernel
(``subm_conv_weight_grad``) that gathers its rows the same way and splits the sum over the rows into partial sums
added in a fixed order (deterministic, no atomics). Runs on CUDA, or on the CPU under ``TRITON_INTERPRET=1`` (how
the tests run it).
"""
from __future__ import annotations

import os

import torch
from torch import Tensor

__all__ = ["implicit_gemm_available", "subm_conv_implicit_gemm", "subm_conv_weight_grad"]

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU installs without Triton: the gather-GEMM serves
    triton = None

# Triton picks its interpreter when the kernels are defined (at import), so the kernels run on the CPU exactly when
# the variable was set then
TRITON_ON_CPU = triton is not None and os.environ.get("TRITON_INTERPRET") == "1"


def implicit_gemm_available(features: Tensor) -> bool:
    """Whether the Triton kernel can run on ``features``' device (CUDA, or the CPU under the interpreter)."""
    if triton is None:
        return False
    return features.is_cuda or TRITON_ON_CPU


if triton is not None:
    @triton.jit
    def _subm_conv_kernel(feat_ptr, table_ptr, weight_ptr, out_ptr, n, k_offsets, c_in, c_out,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                          IEEE: tl.constexpr):
        # feat (N, Cin), table (N, K) neighbour rows (N = missing), weight (K * Cin, Cout), out (N, Cout)
        rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        row_ok = rows < n
        col_ok = cols < c_out
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for o in range(0, k_offsets):
            nbr = tl.load(table_ptr + rows.to(tl.int64) * k_offsets + o, mask=row_ok, other=n).to(tl.int64)
            nbr_ok = nbr < n
            for c0 in range(0, c_in, BLOCK_K):
                ch = c0 + tl.arange(0, BLOCK_K)
                ch_ok = ch < c_in
                a = tl.load(feat_ptr + nbr[:, None] * c_in + ch[None, :],
                            mask=nbr_ok[:, None] & ch_ok[None, :], other=0.0)
                b = tl.load(weight_ptr + (o * c_in + ch[:, None]).to(tl.int64) * c_out + cols[None, :],
                            mask=ch_ok[:, None] & col_ok[None, :], other=0.0)
                if IEEE:            # float32 inputs: full-precision products, as torch's matmul by default
                    acc += tl.dot(a, b, input_precision="ieee")
                else:
                    acc += tl.dot(a, b)
        out = out_ptr + rows[:, None].to(tl.int64) * c_out + cols[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])

    @triton.jit
    def _subm_conv_weight_grad_kernel(feat_ptr, table_ptr, grad_ptr, partial_ptr, n, k_offsets, c_in, c_out,
                                      blocks_per_split, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                      BLOCK_K: tl.constexpr, IEEE: tl.constexpr):
        # feat (N, Cin), table (N, K), grad (N, Cout); partial (S, K * Cin, Cout) float32: program (o, tile, s)
        # sums rows of split s into the (BLOCK_K, BLOCK_N) tile of offset o
        o = tl.program_id(0)
        col_tiles = tl.cdiv(c_out, BLOCK_N)
        ch = (tl.program_id(1) // col_tiles) * BLOCK_K + tl.arange(0, BLOCK_K)
        cols = (tl.program_id(1) % col_tiles) * BLOCK_N + tl.arange(0, BLOCK_N)
        ch_ok = ch < c_in
        col_ok = cols < c_out
        split = tl.program_id(2)
        acc = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)
        for b in range(split * blocks_per_split, (split + 1) * blocks_per_split):
            rows = b * BLOCK_M + tl.arange(0, BLOCK_M)
            row_ok = rows < n
            nbr = tl.load(table_ptr + rows.to(tl.int64) * k_offsets + o, mask=row_ok, other=n).to(tl.int64)
            nbr_ok = nbr < n
            a = tl.load(feat_ptr + nbr[:, None] * c_in + ch[None, :], mask=nbr_ok[:, None] & ch_ok[None, :],
                        other=0.0)                                                  # (BLOCK_M, BLOCK_K)
            g = tl.load(grad_ptr + rows[:, None].to(tl.int64) * c_out + cols[None, :],
                        mask=row_ok[:, None] & col_ok[None, :], other=0.0)          # (BLOCK_M, BLOCK_N)
            if IEEE:
                acc += tl.dot(tl.trans(a), g, input_precision="ieee")
            else:
                acc += tl.dot(tl.trans(a), g)
        out = (partial_ptr + (split * k_offsets * c_in + o * c_in + ch[:, None]).to(tl.int64) * c_out
               + cols[None, :])
        tl.store(out, acc, mask=ch_ok[:, None] & col_ok[None, :])


def _block(size: int, low: int, high: int) -> int:
    """The power of two covering ``size``, clamped to [low, high] (``tl.dot`` needs 16 at least)."""
    return max(low, min(high, triton.next_power_of_2(size)))


def subm_conv_implicit_gemm(feat: Tensor, table: Tensor, weight: Tensor) -> Tensor:
    """``out[p] = sum_o feat[table[p, o]] @ weight[o]`` with missing neighbours (``table == N``) skipped.

    Args:
        feat: (N, Cin) features in the compute dtype.
        table: (N, K) integer neighbour rows, N where the neighbour does not exist.
        weight: (K * Cin, Cout) in ``feat``'s dtype, offset-major (the gather-GEMM's layout).
    Returns:
        (N, Cout) in ``feat``'s dtype (accumulated in float32).
    """
    if triton is None:
        raise RuntimeError("subm_conv_implicit_gemm needs Triton (pip install triton)")
    n, c_in = feat.shape
    k = table.shape[1]
    c_out = weight.shape[1]
    if weight.shape[0] != k * c_in or weight.dtype != feat.dtype:
        raise ValueError(f"subm_conv_implicit_gemm: weight {tuple(weight.shape)} {weight.dtype} does not fit "
                         f"{k} offsets x {c_in} channels of {feat.dtype}")
    out = feat.new_empty(n, c_out)
    block_m, block_n, block_k, warps = _tiles(c_in, c_out)
    grid = (triton.cdiv(n, block_m), triton.cdiv(c_out, block_n))
    _subm_conv_kernel[grid](feat.contiguous(), table.contiguous(), weight.contiguous(), out, n, k, c_in, c_out,
                            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, IEEE=feat.dtype == torch.float32,
                            num_warps=warps, num_stages=3)
    return out


def subm_conv_weight_grad(feat: Tensor, table: Tensor, grad_out: Tensor) -> Tensor:
    """``dW[o] = sum_p feat[table[p, o]]^T @ grad_out[p]``, the weight gradient of ``subm_conv_implicit_gemm``.

    Args:
        feat: (N, Cin) the convolution's input, in the compute dtype.
        table: (N, K) neighbour rows, N where the neighbour does not exist.
        grad_out: (N, Cout) the gradient of its output, in ``feat``'s dtype.
    Returns:
        (K * Cin, Cout) in ``feat``'s dtype, offset-major as the weight; summed in float32, over row splits whose
        partial sums are added in a fixed order (the same result on every run).
    """
    if triton is None:
        raise RuntimeError("subm_conv_weight_grad needs Triton (pip install triton)")
    n, c_in = feat.shape
    k = table.shape[1]
    c_out = grad_out.shape[1]
    if grad_out.shape[0] != n or grad_out.dtype != feat.dtype:
        raise ValueError(f"subm_conv_weight_grad: grad_out {tuple(grad_out.shape)} {grad_out.dtype} does not fit "
                         f"{n} rows of {feat.dtype}")
    block_k, block_n = _block(c_in, 16, 64), _block(c_out, 16, 64)
    tiles = triton.cdiv(c_in, block_k) * triton.cdiv(c_out, block_n)
    row_blocks = max(1, triton.cdiv(n, WEIGHT_GRAD_ROWS))
    # enough programs to fill a GPU (a few per SM), each summing at least one block of rows
    splits = max(1, min(row_blocks, triton.cdiv(WEIGHT_GRAD_PROGRAMS, k * tiles)))
    blocks_per_split = triton.cdiv(row_blocks, splits)
    splits = triton.cdiv(row_blocks, blocks_per_split)
    partial = feat.new_empty(splits, k * c_in, c_out, dtype=torch.float32)
    _subm_conv_weight_grad_kernel[(k, tiles, splits)](
        feat.contiguous(), table.contiguous(), grad_out.contiguous(), partial, n, k, c_in, c_out, blocks_per_split,
        BLOCK_M=WEIGHT_GRAD_ROWS, BLOCK_N=block_n, BLOCK_K=block_k, IEEE=feat.dtype == torch.float32,
        num_warps=4, num_stages=3)
    return partial.sum(0).to(feat.dtype)


# rows per step of the weight gradient's sum, and the programs it aims for (132 SMs on an H100: about 4 each);
# chosen, not swept as the forward's tiles were
WEIGHT_GRAD_ROWS = 64
WEIGHT_GRAD_PROGRAMS = 528


def _tiles(c_in: int, c_out: int) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, warps) for a channel pair, one rule read off a sweep of 72 configurations on
    an H100 in bfloat16 (PTv3's 16-512 channels, 3k-200k voxels; docs/research.md): at 8 scans it matches the
    sweep's best, at one scan it is up to 1.5x slower than it on the smallest layers (0.1 ms)."""
    block_n = _block(c_out, 32, 128)
    block_k = 16 if c_in <= 64 else 32
    return 128, block_n, block_k, 8 if block_n == 128 else 4
