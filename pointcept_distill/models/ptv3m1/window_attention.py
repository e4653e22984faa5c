"""Window attention as one Triton kernel: gathers, all windows and heads, softmax and scatter in one launch.

The SDPA path (``attention.SerializedAttention._attend``) gathers the qkv rows of every window into a (W*P, 3C)
copy, permutes it into (W, H, P, d) q/k/v, attends, transposes back, concatenates the short windows' output and
scatters the rows back to point order: five copies of the stage's features around each attention call. Here one
program owns BLOCK_M query rows of one window and one head; it loads its queries, keys and values straight from
the (N, 3C) qkv rows through the window's row table, runs the online softmax (exp2, float32 statistics) over the
window's keys and writes each output row to its point once. Forward only (inference; training keeps SDPA, whose
backward is its own). Runs on CUDA, or on the CPU under ``TRITON_INTERPRET=1`` (how the tests run it).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..sparse.implicit_gemm import implicit_gemm_available as triton_available

__all__ = ["triton_available", "window_attention"]

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU installs without Triton: SDPA serves
    triton = None


if triton is not None:
    @triton.jit
    def _window_attention_kernel(qkv_ptr, rows_ptr, lengths_ptr, dest_ptr, out_ptr, qk_scale,
                                 heads, channels, window,
                                 HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                 IEEE: tl.constexpr):
        # qkv (N, 3C) as [3][H][d]; rows (W, P) point rows; lengths (W,) keys per window; dest (W*P,) point
        # row of each slot's output or -1; out (N, C). qk_scale = scale * log2(e): scores in base 2 (exp2).
        w = tl.program_id(1) // heads
        h = tl.program_id(1) % heads
        slots = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        slot_ok = slots < window
        base = w.to(tl.int64) * window
        stride = 3 * channels
        dims = tl.arange(0, HEAD_DIM)
        q_rows = tl.load(rows_ptr + base + slots, mask=slot_ok, other=0).to(tl.int64)
        q = tl.load(qkv_ptr + q_rows[:, None] * stride + (h * HEAD_DIM + dims)[None, :])  # (BLOCK_M, d)
        m_i = tl.full((BLOCK_M,), -float("inf"), tl.float32)
        l_i = tl.zeros((BLOCK_M,), tl.float32)
        acc = tl.zeros((BLOCK_M, HEAD_DIM), tl.float32)
        k_col = channels + h * HEAD_DIM
        v_col = 2 * channels + h * HEAD_DIM
        length = tl.load(lengths_ptr + w)
        for start in range(0, length, BLOCK_N):
            keys = start + tl.arange(0, BLOCK_N)
            key_ok = keys < length
            key_rows = tl.load(rows_ptr + base + keys, mask=key_ok, other=0).to(tl.int64)
            k_t = tl.load(qkv_ptr + key_rows[None, :] * stride + (k_col + dims)[:, None])   # (d, BLOCK_N)
            v = tl.load(qkv_ptr + key_rows[:, None] * stride + (v_col + dims)[None, :])     # (BLOCK_N, d)
            key_bias = tl.where(key_ok, 0.0, -float("inf"))                                 # (BLOCK_N,)
            if IEEE:
                s = tl.dot(q, k_t, input_precision="ieee")
            else:
                s = tl.dot(q, k_t)                                                          # (BLOCK_M, BLOCK_N)
            # float32 whatever qk_scale's type (inductor passes a float argument as a float64 constant)
            s = (s * qk_scale).to(tl.float32) + key_bias[None, :]
            m_new = tl.maximum(m_i, tl.max(s, 1))
            p = tl.math.exp2(s - m_new[:, None])
            alpha = tl.math.exp2(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            if IEEE:
                acc = acc * alpha[:, None] + tl.dot(p, v.to(tl.float32), input_precision="ieee")
            else:
                acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m_i = m_new
        out = acc / l_i[:, None]
        dest = tl.load(dest_ptr + base + slots, mask=slot_ok, other=-1).to(tl.int64)
        tl.store(out_ptr + dest[:, None] * channels + (h * HEAD_DIM + dims)[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=(dest >= 0)[:, None])


def window_attention(qkv: Tensor, rows: Tensor, lengths: Tensor, dest: Tensor, num_heads: int,
                     scale: float) -> Tensor:
    """Softmax attention of every window's first ``lengths[w]`` keys, written back to point order.

    Args:
        qkv: (N, 3C) projected rows, channels laid out [3][H][C/H] (``SerializedAttention.qkv``'s output).
        rows: (W, P) int point row of each window slot (queries and keys).
        lengths: (W,) int keys each window attends over (1..P); slots past it still get a query.
        dest: (W*P,) int point row that each slot's output goes to, -1 for none; every point exactly once.
        num_heads: H; the head width C/H must be a power of two of at least 16 (``tl.dot``).
        scale: softmax scale.
    Returns:
        (N, C) in ``qkv``'s dtype.
    """
    if triton is None:
        raise RuntimeError("window_attention needs Triton (pip install triton)")
    n, c3 = qkv.shape
    channels = c3 // 3
    head_dim = channels // num_heads
    if head_dim < 16 or head_dim & (head_dim - 1):
        raise ValueError(f"window_attention: head width {head_dim} must be a power of two >= 16")
    num_windows, window = rows.shape
    out = qkv.new_empty(n, channels)
    block_m, block_n, warps, stages = _tiles(window)
    grid = (triton.cdiv(window, block_m), num_windows * num_heads)
    _window_attention_kernel[grid](qkv.contiguous(), rows.contiguous(), lengths.contiguous(), dest.contiguous(),
                                   out, scale * math.log2(math.e), num_heads, channels, window,
                                   HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=block_n,
                                   IEEE=qkv.dtype == torch.float32, num_warps=warps, num_stages=stages)
    return out


def _tiles(window: int) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, warps, stages) for a window length: 64 x 64 tiles, 4 warps, no pipelining, the best of a
    36-configuration sweep on an H100 (bf16, head width 16, 1024-point windows, 3k-200k points) at 16 of its 23
    shapes and within 1.3x of it at the others (BENCHMARKS.md)."""
    block = max(16, min(64, triton.next_power_of_2(window)))
    return block, block, 4, 1
