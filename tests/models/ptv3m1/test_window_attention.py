"""The Triton window-attention kernel, run by Triton's interpreter on the CPU (``TRITON_INTERPRET=1``).

The interpreter is chosen when Triton kernels are defined, so the checks run in a subprocess with the variable
set. Its CUDA twins: ``tests/models/test_models_cuda.py`` and ``tools/benchmark.py --attention-kernel``.
"""
from __future__ import annotations

from triton_interpreter import run_interpreted

SCRIPT = r"""
import sys
import torch
import torch.nn.functional as F
sys.path.insert(0, {tests!r})
from conftest import random_scene, tiny_ptv3_config
from pointcept_distill.models import build_model
from pointcept_distill.models.backend import Backend
from pointcept_distill.models.ptv3m1 import attention, build_windows
from pointcept_distill.models.ptv3m1.window_attention import window_attention

torch.manual_seed(0)


def sdpa_path(qkv, part, order, heads, scale):
    full, short, slot = part.gather_indices(0, order, torch.argsort(order))
    p, c = part.patch_size, qkv.shape[1] // 3

    def attend(x, mask):
        q, k, v = x.reshape(-1, p, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        return out.transpose(1, 2).reshape(-1, c)
    return torch.cat([attend(qkv[full], None), attend(qkv[short], part.short_mask[:, None, None, :])])[slot]


# short and long samples; windows that are not a multiple of the key block (80 = 64 + 16, 24 < 32: a masked last block)
for counts, p, heads, dim in [([70, 20, 33], 32, 2, 16), ([100, 5, 1], 80, 1, 32), ([40, 64], 24, 3, 16)]:
    offset = torch.tensor(counts).cumsum(0)
    n = int(offset[-1])
    part = build_windows(offset, n, p)
    order = torch.randperm(n)
    qkv = (torch.randn(n, 3 * heads * dim) * 2).requires_grad_()
    up = torch.randn(n, heads * dim)
    ref = sdpa_path(qkv, part, order, heads, 0.3)
    (grad_ref,) = torch.autograd.grad(ref, qkv, up)
    out = window_attention(qkv, *part.kernel_tables(0, order), heads, 0.3)
    (grad,) = torch.autograd.grad(out, qkv, up)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-4, atol=1e-4)   # keys of filled-up windows: two windows
    with torch.no_grad():
        half = window_attention(qkv.half(), *part.kernel_tables(0, order), heads, 0.3)
    assert half.dtype == torch.float16 and ((half.float() - ref).norm() / ref.norm()) < 2e-3
    qkv_half = qkv.detach().half().requires_grad_()
    (grad_half,) = torch.autograd.grad(window_attention(qkv_half, *part.kernel_tables(0, order), heads, 0.3),
                                       qkv_half, up.half())
    assert grad_half.dtype == torch.float16 and ((grad_half.float() - grad_ref).norm() / grad_ref.norm()) < 3e-3
try:
    window_attention(torch.randn(10, 3 * 24), *part.kernel_tables(0, order), 3, 0.3)
    raise AssertionError("a head width of 8 was accepted")
except ValueError as err:
    assert "head width 8" in str(err)

# the model: every attention block on the kernels, with and without gradients; SDPA when switched off, with
# attention dropout in training, or with deterministic algorithms and gradients
cfg = dict(tiny_ptv3_config(), enc_channels=(16, 32, 32), dec_channels=(16, 32))
model = build_model(dict(type="DefaultSegmentorV2", num_classes=5, backbone_out_channels=16, backbone=cfg)).eval()
blocks = [m for m in model.modules() if isinstance(m, attention.SerializedAttention)]
assert len(blocks) == 6
scene = random_scene((500, 300))
scene["segment"] = torch.randint(0, 5, (800,))
calls = []
real = attention.window_attention
attention.window_attention = lambda *a: calls.append(1) or real(*a)


def run(enabled=True):
    calls.clear()
    model.zero_grad()
    model.backbone.set_backend(Backend(attention="triton" if enabled else "sdpa"))
    loss = model(dict(scene))["loss"].sum()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None], len(calls)


with torch.no_grad():
    model(dict(scene))
    assert len(calls) == len(blocks), calls
out, grads, used = run()
assert used == len(blocks)
ref, grads_ref, used = run(enabled=False)
assert used == 0
torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
for g, g_ref in zip(grads, grads_ref):
    torch.testing.assert_close(g, g_ref, rtol=1e-3, atol=1e-5)
torch.use_deterministic_algorithms(True)
assert run()[2] == 0
torch.use_deterministic_algorithms(False)
model.train()
blocks[0].attn_drop = 0.1
assert 0 < run()[2] < len(blocks)          # dropout: that block on SDPA (training mode, other blocks unchanged)
print("ok")
"""


def test_kernel_and_model_match_the_sdpa_path():
    run_interpreted(SCRIPT)
