"""Window attention as Triton kernels: gathers, all windows and heads, softmax and scatter in one launch.

The SDPA path (``attention.SerializedAttention._attend``) gathers the qkv rows of every window into a (W*P, 3C)
copy, permutes it into (W, H, P, d) q/k/v, attends, transposes back, concatenates the short windows' output and
scatters the rows back to point order: five copies of the stage's features around each attention call (and
their gradients' copies in training). Here one program owns BLOCK_M query rows of one window and one head; it
loads its queries, keys and values straight from the (N, 3C) qkv rows through the window's row table, runs the
online softmax (exp2, float32 statistics) over the window's keys and writes each output row to its point once.
The backward (``_WindowAttention``) recomputes the softmax from the saved log-sum-exp as flash attention does:
one kernel for dQ per query block, one for dK and dV per key block. Runs on CUDA, or on the CPU under
``TRITON_INTERPRET=1`` (how the tests run it).
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
    def _float32(scale):
        """A float argument as float32. Inductor passes a user kernel's float arguments as float64 constants: the
        scores would be float64 products, which made the compiled forward's attention twice as slow as eager's."""
        return tl.cast(scale, tl.float32)

    @triton.jit
    def _window_attention_kernel(qkv_ptr, rows_ptr, lengths_ptr, dest_ptr, out_ptr, lse_ptr, qk_scale,
                                 heads, channels, window,
                                 HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                 IEEE: tl.constexpr, STORE_LSE: tl.constexpr):
        # qkv (N, 3C) as [3][H][d]; rows (W, P) point rows; lengths (W,) keys per window; dest (W*P,) point
        # row of each slot's output or -1; out (N, C); lse (W*P, H) base-2 log-sum-exp of each slot's scores
        # (for the backward). qk_scale = scale * log2(e): scores in base 2 (exp2).
        qk_scale = _float32(qk_scale)
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
            s = s * qk_scale + key_bias[None, :]
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
        if STORE_LSE:
            tl.store(lse_ptr + (base + slots) * heads + h, m_i + tl.math.log2(l_i), mask=slot_ok)
        dest = tl.load(dest_ptr + base + slots, mask=slot_ok, other=-1).to(tl.int64)
        tl.store(out_ptr + dest[:, None] * channels + (h * HEAD_DIM + dims)[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=(dest >= 0)[:, None])

    # The backward kernels load the point rows that address their stores (dest, key rows) themselves and hand them
    # to the helpers below: torch.compile's mutation analysis counts every pointer passed to a helper whose result
    # addresses a store as written, and a "written" forward output saved for the backward (out) fails AOTAutograd's
    # partitioner (pytorch issue 174124). tests/models/test_kernel_writes.py checks what it reads.
    @triton.jit
    def _slot_rows(table_ptr, base, slots, slot_ok, other):
        """The table's int64 entries of a block of window slots (``other`` where a slot is out of range)."""
        return tl.load(table_ptr + base + slots, mask=slot_ok, other=other).to(tl.int64)

    @triton.jit
    def _query_block(qkv_ptr, rows_ptr, out_ptr, dout_ptr, lse_ptr, base, slots, slot_ok, dest, h, heads,
                     channels, HEAD_DIM: tl.constexpr):
        """A block of query slots for the backward, whose output rows are ``dest`` (-1: none): q (BLOCK_M, d), dO
        (zeros where a slot has no output), flash attention's delta = rowsum(dO * O) and the forward's
        log-sum-exp."""
        cols = h * HEAD_DIM + tl.arange(0, HEAD_DIM)
        q_rows = _slot_rows(rows_ptr, base, slots, slot_ok, 0)
        has_out = (dest >= 0)[:, None]
        q = tl.load(qkv_ptr + q_rows[:, None] * 3 * channels + cols[None, :])
        dout = tl.load(dout_ptr + dest[:, None] * channels + cols[None, :], mask=has_out, other=0.0)
        out = tl.load(out_ptr + dest[:, None] * channels + cols[None, :], mask=has_out, other=0.0)
        delta = tl.sum(dout.to(tl.float32) * out.to(tl.float32), 1)
        lse = tl.load(lse_ptr + (base + slots) * heads + h, mask=slot_ok, other=0.0)
        return q, dout, delta, lse

    @triton.jit
    def _key_block(qkv_ptr, key_rows, key_ok, h, channels, HEAD_DIM: tl.constexpr):
        """A block of key slots at point rows ``key_rows``: k and v (BLOCK_N, d), and the mask as an additive score
        bias."""
        cols = h * HEAD_DIM + tl.arange(0, HEAD_DIM)
        k = tl.load(qkv_ptr + key_rows[:, None] * 3 * channels + (channels + cols)[None, :])
        v = tl.load(qkv_ptr + key_rows[:, None] * 3 * channels + (2 * channels + cols)[None, :])
        return k, v, tl.where(key_ok, 0.0, -float("inf"))

    @triton.jit
    def _softmax_grads(q, k, v, dout, delta, lse, dest, key_bias, qk_scale, IEEE: tl.constexpr):
        """P recomputed from the log-sum-exp and dS = P * (dO V^T - delta), (BLOCK_M, BLOCK_N) float32; zero for
        slots without an output (past a short window's keys there is no log-sum-exp: exp2 could overflow)."""
        if IEEE:
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
            dp = tl.dot(dout, tl.trans(v), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k))
            dp = tl.dot(dout, tl.trans(v))
        p = tl.math.exp2(s * qk_scale + key_bias[None, :] - lse[:, None])
        p = tl.where((dest >= 0)[:, None], p, 0.0)
        return p, p * (dp - delta[:, None])

    @triton.jit
    def _matmul(a, b, IEEE: tl.constexpr):
        """a @ b accumulated in float32; a is cast to b's dtype unless both are float32 (full precision)."""
        if IEEE:
            product = tl.dot(a, b, input_precision="ieee")
        else:
            product = tl.dot(a.to(b.dtype), b)
        return product

    @triton.jit
    def _window_attention_dq_kernel(qkv_ptr, rows_ptr, lengths_ptr, dest_ptr, out_ptr, dout_ptr, lse_ptr,
                                    grad_ptr, qk_scale, scale, heads, channels, window,
                                    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                    IEEE: tl.constexpr):
        # dQ of BLOCK_M query slots of one window and head, stored to the query columns of the slots' points
        # in grad (N, 3C) float32; slots without an output (dest -1) have no gradient
        qk_scale, scale = _float32(qk_scale), _float32(scale)
        w = tl.program_id(1) // heads
        h = tl.program_id(1) % heads
        base = w.to(tl.int64) * window
        slots = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        slot_ok = slots < window
        dest = tl.load(dest_ptr + base + slots, mask=slot_ok, other=-1).to(tl.int64)   # addresses dq's store
        q, dout, delta, lse = _query_block(qkv_ptr, rows_ptr, out_ptr, dout_ptr, lse_ptr, base, slots, slot_ok, dest,
                                           h, heads, channels, HEAD_DIM)
        dq = tl.zeros((BLOCK_M, HEAD_DIM), tl.float32)
        length = tl.load(lengths_ptr + w)
        for start in range(0, length, BLOCK_N):
            keys = start + tl.arange(0, BLOCK_N)
            key_ok = keys < length
            k, v, key_bias = _key_block(qkv_ptr, _slot_rows(rows_ptr, base, keys, key_ok, 0), key_ok, h, channels,
                                        HEAD_DIM)
            p, ds = _softmax_grads(q, k, v, dout, delta, lse, dest, key_bias, qk_scale, IEEE)
            dq += _matmul(ds, k, IEEE)
        cols = h * HEAD_DIM + tl.arange(0, HEAD_DIM)
        tl.store(grad_ptr + dest[:, None] * 3 * channels + cols[None, :], dq * scale, mask=(dest >= 0)[:, None])

    @triton.jit
    def _window_attention_dkdv_kernel(qkv_ptr, rows_ptr, lengths_ptr, dest_ptr, out_ptr, dout_ptr, lse_ptr,
                                      grad_ptr, qk_scale, scale, heads, channels, window,
                                      HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                      IEEE: tl.constexpr):
        # dK, dV of BLOCK_N key slots of one window and head over all its query slots, added (atomically: a
        # point is a key in two windows where a sample's last window is filled up) to grad (N, 3C) float32
        qk_scale, scale = _float32(qk_scale), _float32(scale)
        w = tl.program_id(1) // heads
        h = tl.program_id(1) % heads
        base = w.to(tl.int64) * window
        length = tl.load(lengths_ptr + w)
        keys = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        key_ok = keys < length
        key_rows = tl.load(rows_ptr + base + keys, mask=key_ok, other=0).to(tl.int64)  # addresses the adds
        k, v, key_bias = _key_block(qkv_ptr, key_rows, key_ok, h, channels, HEAD_DIM)
        dk = tl.zeros((BLOCK_N, HEAD_DIM), tl.float32)
        dv = tl.zeros((BLOCK_N, HEAD_DIM), tl.float32)
        for start in range(0, length, BLOCK_M):          # slots past the keys have no output (a short window)
            slots = start + tl.arange(0, BLOCK_M)
            slot_ok = slots < length
            dest = _slot_rows(dest_ptr, base, slots, slot_ok, -1)
            q, dout, delta, lse = _query_block(qkv_ptr, rows_ptr, out_ptr, dout_ptr, lse_ptr, base, slots, slot_ok,
                                               dest, h, heads, channels, HEAD_DIM)
            p, ds = _softmax_grads(q, k, v, dout, delta, lse, dest, key_bias, qk_scale, IEEE)
            dv += _matmul(tl.trans(p), dout, IEEE)
            dk += _matmul(tl.trans(ds), q, IEEE)
        cols = h * HEAD_DIM + tl.arange(0, HEAD_DIM)
        rows = key_rows[:, None] * 3 * channels
        tl.atomic_add(grad_ptr + rows + (channels + cols)[None, :], dk * scale, mask=key_ok[:, None])
        tl.atomic_add(grad_ptr + rows + (2 * channels + cols)[None, :], dv, mask=key_ok[:, None])


def window_attention(qkv: Tensor, rows: Tensor, lengths: Tensor, dest: Tensor, num_heads: int,
                     scale: float) -> Tensor:
    """Softmax attention of every window's first ``lengths[w]`` keys, written back to point order; differentiable
    in ``qkv`` (first order).

    Args:
        qkv: (N, 3C) projected rows, channels laid out [3][H][C/H] (``SerializedAttention.qkv``'s output).
        rows: (W, P) int point row of each window slot (queries and keys).
        lengths: (W,) int keys each window attends over (0..P; 0: the window has no output); slots past
            them must have no output.
        dest: (W*P,) int point row that each slot's output goes to, -1 for none; every point exactly once.
        num_heads: H; the head width C/H must be a power of two of at least 16 (``tl.dot``).
        scale: softmax scale.
    Returns:
        (N, C) in ``qkv``'s dtype.
    """
    if triton is None:
        raise RuntimeError("window_attention needs Triton (pip install triton)")
    head_dim = qkv.shape[1] // 3 // num_heads
    if head_dim < 16 or head_dim & (head_dim - 1):
        raise ValueError(f"window_attention: head width {head_dim} must be a power of two >= 16")
    tables = (rows.contiguous(), lengths.contiguous(), dest.contiguous())
    if torch.is_grad_enabled() and qkv.requires_grad:
        return _WindowAttention.apply(qkv, *tables, num_heads, scale)
    return _forward(qkv.contiguous(), *tables, num_heads, scale, None)      # inference: no autograd.Function


def _forward(qkv: Tensor, rows: Tensor, lengths: Tensor, dest: Tensor, num_heads: int, scale: float,
             lse: Tensor | None) -> Tensor:
    """The kernel's launch; fills ``lse`` (W*P, H) float32 when given."""
    n, c3 = qkv.shape
    channels = c3 // 3
    num_windows, window = rows.shape
    out = qkv.new_empty(n, channels)
    store_lse = lse is not None
    if lse is None:             # an unused pointer of its own (aliasing ``out`` would confuse inductor's analysis)
        lse = qkv.new_empty(0, dtype=torch.float32)
    block_m, block_n, warps, stages = _tiles(window)
    grid = (triton.cdiv(window, block_m), num_windows * num_heads)
    _window_attention_kernel[grid](qkv, rows, lengths, dest, out, lse,
                                   scale * math.log2(math.e), num_heads, channels, window,
                                   HEAD_DIM=channels // num_heads, BLOCK_M=block_m, BLOCK_N=block_n,
                                   IEEE=qkv.dtype == torch.float32, STORE_LSE=store_lse,
                                   num_warps=warps, num_stages=stages)
    return out


class _WindowAttention(torch.autograd.Function):
    """``window_attention`` with a backward: the softmax is recomputed from the saved log-sum-exp (flash
    attention's scheme), dQ per query block, dK and dV per key block, all gathered and scattered through the
    same tables. The gradient is accumulated in float32 (dK, dV atomically), then cast to ``qkv``'s dtype."""

    @staticmethod
    def forward(ctx, qkv: Tensor, rows: Tensor, lengths: Tensor, dest: Tensor, num_heads: int,
                scale: float) -> Tensor:
        qkv = qkv.contiguous()
        lse = qkv.new_empty(rows.numel(), num_heads, dtype=torch.float32)
        out = _forward(qkv, rows, lengths, dest, num_heads, scale, lse)
        ctx.save_for_backward(qkv, rows, lengths, dest, out, lse)
        ctx.num_heads, ctx.scale = num_heads, scale
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        qkv, rows, lengths, dest, out, lse = ctx.saved_tensors
        n, c3 = qkv.shape
        channels, heads = c3 // 3, ctx.num_heads
        num_windows, window = rows.shape
        grad = torch.zeros(n, c3, dtype=torch.float32, device=qkv.device)
        block_m, block_n, warps, stages = _tiles(window)
        args = (qkv, rows, lengths, dest, out, grad_out.to(out.dtype).contiguous(), lse, grad,
                ctx.scale * math.log2(math.e), ctx.scale, heads, channels, window)
        meta = dict(HEAD_DIM=channels // heads, BLOCK_M=block_m, BLOCK_N=block_n, IEEE=qkv.dtype == torch.float32,
                    num_warps=warps, num_stages=stages)
        _window_attention_dq_kernel[(triton.cdiv(window, block_m), num_windows * heads)](*args, **meta)
        _window_attention_dkdv_kernel[(triton.cdiv(window, block_n), num_windows * heads)](*args, **meta)
        return grad.to(qkv.dtype), None, None, None, None, None


def _tiles(window: int) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, warps, stages) for a window length: 64 x 64 tiles, 4 warps, no pipelining, the most frequent
    best of a 36-configuration sweep of the forward on an H100 (bf16, head width 16, 1024-point windows, 3k-200k
    points: 13 of 24 shapes); summed over those shapes 4 % (8 scans) and 16 % (one scan) slower than the best of 8
    configurations per shape (docs/research.md). The backward kernels use the same tiles, untuned."""
    block = max(16, min(64, triton.next_power_of_2(window)))
    return block, block, 4, 1
