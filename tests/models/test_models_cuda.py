"""CUDA checks of the model layer (skipped without a GPU): spconv path, autocast, host syncs. Their CPU twins:
test_models_cpu_twins.py and sparse/test_subm_conv.py::test_matches_upstream_fixture."""
import warnings

import pytest
import torch

from pointcept_distill.models import build_model
from pointcept_distill.models.backend import Backend
from pointcept_distill.models.sparse import SparseConvTensor, SubMConv3d, spconv_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _model(tiny_config):
    torch.manual_seed(0)
    return build_model(dict(type="DefaultSegmentorV2", num_classes=5, backbone_out_channels=8,
                            backbone=tiny_config())).cuda().eval()


@pytest.mark.skipif(not spconv_available(), reason="needs spconv")
def test_spconv_path_matches_fixture_and_gather_path(fixtures_dir):
    """The fixture's scenes are small enough for the automatic choice to take the gather path, so each path is
    forced here: spconv (``conv_path="spconv"``) and gather (``conv_path="gather"``) must both give the fixture."""
    data = torch.load(fixtures_dir / "subm_conv.pt", weights_only=True)
    for case in data["cases"]:
        outputs = {}
        for path in ("spconv", "gather"):
            conv = SubMConv3d(case["features"].shape[1], case["weight"].shape[0], case["kernel_size"],
                              indice_key="k", conv_path=path).cuda()
            conv.load_state_dict({"weight": case["weight"], "bias": case["bias"]})
            x = SparseConvTensor(case["features"].cuda(), case["indices"].cuda(), 2)
            outputs[path] = conv(x).features.cpu()
            assert x.indice_dict["k"][0] == path
            assert ((outputs[path] - case["output"]).abs().max() / case["output"].abs().max()) < 1e-4, path
        assert ((outputs["spconv"] - outputs["gather"]).abs().max() / case["output"].abs().max()) < 1e-4


def test_autocast_agrees_with_float32(make_scene, tiny_config):
    model = _model(tiny_config)
    data = {k: v.cuda() for k, v in make_scene((3000, 1200)).items()}
    with torch.no_grad():
        ref = model(dict(data))["seg_logits"]
        for dtype in (torch.bfloat16, torch.float16):
            with torch.autocast("cuda", dtype=dtype):
                out = model(dict(data))["seg_logits"].float()
            assert ((out - ref).norm() / ref.norm()) < 2e-2, dtype


def test_host_syncs_only_for_depth_and_pooling(make_scene, tiny_config):
    model = _model(tiny_config)
    data = {k: v.cuda() for k, v in make_scene((3000, 1200)).items()}
    with torch.no_grad():
        model(dict(data))
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model(dict(data))
        finally:
            torch.cuda.set_sync_debug_mode(0)
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 1 + 2          # serialization depth + the cluster count of each pooling (2 in the tiny model)


@pytest.mark.parametrize("dtype", [None, torch.bfloat16, torch.float16])
def test_window_attention_kernels_agree_with_sdpa(make_scene, tiny_config, dtype):
    from pointcept_distill.models.ptv3m1 import attention
    torch.manual_seed(0)
    config = dict(tiny_config(), enc_channels=(16, 32, 32), dec_channels=(16, 32))   # head width 16
    model = build_model(dict(type="DefaultSegmentorV2", num_classes=5, backbone_out_channels=16,
                             backbone=config)).cuda().eval()
    data = {k: v.cuda() for k, v in make_scene((3000, 1200)).items()}
    calls = []
    real = attention.window_attention
    attention.window_attention = lambda *a: calls.append(1) or real(*a)

    def run(enabled):
        model.zero_grad()
        model.backbone.set_backend(Backend(attention="triton" if enabled else "sdpa"))
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(dict(data))["seg_logits"].float()
        logits.square().mean().backward()
        return logits.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])
    try:
        out, grad = run(True)
        ref, grad_ref = run(False)
    finally:
        attention.window_attention = real
    assert len(calls) == sum(isinstance(m, attention.SerializedAttention) for m in model.modules())
    tolerance = 1e-5 if dtype is None else 2e-2
    assert ((out - ref).norm() / ref.norm()) < tolerance
    assert ((grad - grad_ref).norm() / grad_ref.norm()) < tolerance * 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_implicit_gemm_gradients_agree_with_the_gather_gemm(dtype):
    """The Triton implicit GEMM's forward, input and weight gradients (conv path "implicit") against the
    gather-GEMM's in float32, on 20k voxels (the weight gradient sums several row splits), and the same weight
    gradient on a second run (no atomics). CPU twin: sparse/test_implicit_gemm.py (float32 and float16)."""
    torch.manual_seed(0)
    n = 20000
    flat = torch.randperm(40 ** 3)[:n]
    indices = torch.stack([torch.zeros(n, dtype=torch.long), flat // 1600, (flat // 40) % 40, flat % 40], 1)
    indices = indices.int().cuda()
    feat = torch.randn(n, 48, device="cuda")
    up = torch.randn(n, 64, device="cuda")
    grads = {}
    for path in ("gather", "implicit", "implicit again"):
        torch.manual_seed(1)
        conv = SubMConv3d(48, 64, 3, indice_key="k", conv_path=path.split()[0]).cuda()
        x = feat.clone().requires_grad_(True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32 and path != "gather"):
            out = conv(SparseConvTensor(x, indices, 1)).features
        out.float().backward(up)
        grads[path] = (out.float(), x.grad, conv.weight.grad)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    for ours, ref in zip(grads["implicit"], grads["gather"]):
        assert ((ours - ref).norm() / ref.norm()) < tol
    assert torch.equal(grads["implicit"][2], grads["implicit again"][2])
