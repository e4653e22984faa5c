"""The Triton implicit-GEMM convolution, run by Triton's interpreter on the CPU (``TRITON_INTERPRET=1``).

The interpreter is chosen when Triton kernels are defined, so the checks run in a subprocess with the variable
set. Triton is a test dependency (``.[test]``): without it this fails rather than skips. Its CUDA twin is
``tools/benchmark.py --capture graphs --implicit-gemm`` on the GPU machine.
"""
from __future__ import annotations

from triton_interpreter import run_interpreted

SCRIPT = r"""
import sys
import torch
sys.path.insert(0, {tests!r})
from conftest import random_scene, tiny_ptv3_config
from pointcept_distill.models import build_model, sparse
from pointcept_distill.models.captured import CapturedSegmentor
from pointcept_distill.models.sparse.conv import _gather_rows, _gather_tables
from pointcept_distill.models.sparse.implicit_gemm import (implicit_gemm_available, subm_conv_implicit_gemm,
                                                           subm_conv_weight_grad)

torch.manual_seed(0)
n = 300
flat = torch.randperm(12 ** 3)[:n]
indices = torch.stack([torch.zeros(n, dtype=torch.long), flat // 144, (flat // 12) % 12, flat % 12], 1).int()
for c_in, c_out, k in [(4, 16, 5), (16, 16, 3), (40, 72, 3)]:           # channel tails, several column blocks
    feat = torch.randn(n, c_in)
    table, _ = _gather_tables(indices, k)
    weight = torch.randn(k ** 3 * c_in, c_out)
    assert implicit_gemm_available(feat)
    torch.testing.assert_close(subm_conv_implicit_gemm(feat, table, weight), _gather_rows(feat, table) @ weight,
                               rtol=1e-5, atol=1e-4)
# float16 operands, float32 accumulation (Triton's interpreter has no bfloat16: that one is checked on a GPU)
half = subm_conv_implicit_gemm(feat.half(), table, weight.half())
ref = _gather_rows(feat, table) @ weight
assert half.dtype == torch.float16 and ((half.float() - ref).norm() / ref.norm()) < 1e-3
try:
    subm_conv_implicit_gemm(feat, table, weight[:-1])
    raise AssertionError("a weight of the wrong shape was accepted")
except ValueError as err:
    assert "does not fit" in str(err)

# the weight gradient kernel: sum over row splits (300 rows: 5 blocks of 64, the last one partial), several
# channel tiles (80 > 64 input channels, 72 > 64 output channels), against the gathered rows' GEMM
for c_in, c_out, k in [(4, 16, 5), (80, 72, 3)]:
    table, _ = _gather_tables(indices, k)
    feat, up = torch.randn(n, c_in), torch.randn(n, c_out)
    torch.testing.assert_close(subm_conv_weight_grad(feat, table, up), _gather_rows(feat, table).t() @ up,
                               rtol=1e-5, atol=1e-4)
half = subm_conv_weight_grad(feat.half(), table, up.half())
ref = _gather_rows(feat, table).t() @ up
assert half.dtype == torch.float16 and ((half.float() - ref).norm() / ref.norm()) < 1e-3
try:
    subm_conv_weight_grad(feat, table, up[:-1])
    raise AssertionError("a gradient of the wrong shape was accepted")
except ValueError as err:
    assert "does not fit" in str(err)

# both gradients equal the gather-GEMM's: the input's is the same kernel over the mirrored table, the weight's
# the kernel above (no (N, K*C) buffer in either)
table, mirror = _gather_tables(indices, 3)
weight = torch.randn(27 * 40, 72, requires_grad=True)
x = torch.randn(n, 40, requires_grad=True)
up = torch.randn(n, 72)
implicit = torch.autograd.grad(sparse.conv._ImplicitGEMM.apply(x, weight, table, mirror), (x, weight), up)
gather = torch.autograd.grad(sparse.conv._GatherGEMM.apply(x, weight, table, mirror), (x, weight), up)
for a, b in zip(implicit, gather):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
# a layer on the implicit path runs the kernels whether its weight trains or not
layer = sparse.SubMConv3d(40, 72, 3, indice_key="k", conv_path="implicit")
calls_layer = []
real_apply = sparse.conv._ImplicitGEMM.apply
sparse.conv._ImplicitGEMM.apply = lambda *a: calls_layer.append(1) or real_apply(*a)
tensor = sparse.SparseConvTensor(x, indices, 1)
layer(tensor).features.sum().backward()
assert calls_layer == [1] and layer.weight.grad is not None
layer.requires_grad_(False)
layer(tensor)
assert calls_layer == [1, 1]
sparse.conv._ImplicitGEMM.apply = real_apply

model = build_model(dict(type="DefaultSegmentorV2", num_classes=5, backbone_out_channels=8,
                         backbone=tiny_ptv3_config())).eval()
scene = random_scene((500, 300))
calls = []
real = sparse.conv.subm_conv_implicit_gemm
sparse.conv.subm_conv_implicit_gemm = lambda *a: calls.append(1) or real(*a)
with torch.no_grad():
    ref = model(dict(scene))["seg_logits"]
out = CapturedSegmentor(model, implicit_gemm=True)(scene)
torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
assert len(calls) == sum(isinstance(m, sparse.SubMConv3d) for m in model.modules()), calls   # every conv
print("ok")
"""


def test_kernel_and_captured_model_match_the_gather_gemm():
    run_interpreted(SCRIPT)
