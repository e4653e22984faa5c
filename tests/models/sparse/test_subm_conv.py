import pytest
import torch

from pointcept_distill.models.sparse import SparseConvTensor, SubMConv3d, build_kernel_map, kernel_offsets


def _tensor(features, indices):
    return SparseConvTensor(features, indices, batch_size=int(indices[:, 0].max()) + 1)


def _dense_reference(features, indices, weight, bias, k):
    """Direct sum over all voxel pairs within the kernel window (O(N^2), for small inputs)."""
    idx = indices.long()
    delta = idx[None, :, 1:] - idx[:, None, 1:] + k // 2          # (N_out, N_in, 3): neighbour q of p
    same = (idx[:, None, 0] == idx[None, :, 0]) & ((delta >= 0) & (delta < k)).all(-1)
    out = torch.zeros(features.shape[0], weight.shape[0], dtype=features.dtype)
    p, q = same.nonzero(as_tuple=True)
    a, b, c = delta[p, q].unbind(-1)
    out.index_add_(0, p, torch.einsum("moi,mi->mo", weight[:, a, b, c, :].permute(1, 0, 2), features[q]))
    return out + (bias if bias is not None else 0)


def test_matches_upstream_fixture(fixtures_dir):
    data = torch.load(fixtures_dir / "subm_conv.pt", weights_only=True)
    assert {c["kernel_size"] for c in data["cases"]} == {3, 5}
    for case in data["cases"]:
        conv = SubMConv3d(case["features"].shape[1], case["weight"].shape[0], case["kernel_size"], indice_key="k")
        conv.load_state_dict({"weight": case["weight"], "bias": case["bias"]}, strict=True)
        out = conv(_tensor(case["features"], case["indices"])).features
        err = (out - case["output"]).abs().max() / case["output"].abs().max()
        assert err < 1e-4, (case["kernel_size"], err)


def test_matches_dense_reference_on_random_cloud():
    torch.manual_seed(0)
    indices = torch.cat([torch.randint(0, 2, (200, 1)), torch.randint(0, 6, (200, 3))], 1).unique(dim=0).int()
    indices = indices[torch.randperm(indices.shape[0])]
    feats = torch.randn(indices.shape[0], 3, dtype=torch.float64, requires_grad=True)
    for k, bias in ((3, True), (5, False)):
        conv = SubMConv3d(3, 4, k, bias=bias).double()
        got = conv(_tensor(feats, indices)).features
        want = _dense_reference(feats, indices, conv.weight, conv.bias, k)
        assert torch.allclose(got, want, atol=1e-10)
        # the gather-GEMM backward (mirrored table) against autograd through the dense reference
        probe = torch.randn_like(got)
        grads = torch.autograd.grad((got * probe).sum(), (feats, conv.weight))
        ref_grads = torch.autograd.grad((want * probe).sum(), (feats, conv.weight))
        for g, r in zip(grads, ref_grads):
            assert torch.allclose(g, r, atol=1e-10), k


def test_gradcheck_double():
    torch.manual_seed(1)
    indices = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 3, 3, 3], [1, 0, 0, 0], [1, 0, 0, 1]],
                           dtype=torch.int32)
    conv = SubMConv3d(2, 3, 3).double()
    feats = torch.randn(indices.shape[0], 2, dtype=torch.float64, requires_grad=True)
    weight = conv.weight.detach().clone().requires_grad_()
    bias = conv.bias.detach().clone().requires_grad_()

    def fn(x, w, b):
        return torch.func.functional_call(conv, {"weight": w, "bias": b}, (_tensor(x, indices),)).features

    assert torch.autograd.gradcheck(fn, (feats, weight, bias))


def test_offsets_are_centred_and_only_same_sample():
    assert kernel_offsets(5).min() == -2 and kernel_offsets(5).max() == 2
    indices = torch.tensor([[0, 5, 5, 5], [1, 5, 5, 6], [0, 5, 5, 6]], dtype=torch.int32)
    table = build_kernel_map(indices, 3)
    centre, plus_z = 13, 14           # offsets (0,0,0) and (0,0,+1) in (kx, ky, kz) order
    assert table[centre].tolist() == [0, 1, 2]
    assert table[plus_z].tolist() == [2, 3, 3]   # voxel 0's +z neighbour is row 2; the others have none (N=3)


def test_kernel_map_cached_by_indice_key(monkeypatch):
    from pointcept_distill.models.sparse import conv as conv_module

    calls = []
    real = conv_module.kernel_map.build_kernel_map
    monkeypatch.setattr(conv_module.kernel_map, "build_kernel_map", lambda *a: calls.append(a) or real(*a))
    indices = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1]], dtype=torch.int32)
    x = _tensor(torch.randn(2, 4), indices)
    a, b = SubMConv3d(4, 4, indice_key="s"), SubMConv3d(4, 4, indice_key="s")
    b(a(x).replace_feature(torch.randn(2, 4)))
    assert len(calls) == 1


def test_spconv_only_for_large_cuda_stages(monkeypatch):
    from types import SimpleNamespace

    import pointcept_distill.models.sparse.conv as conv_module
    small = SimpleNamespace(is_cuda=True, shape=(conv_module.GATHER_MAX_ROWS, 8))
    large = SimpleNamespace(is_cuda=True, shape=(conv_module.GATHER_MAX_ROWS + 1, 8))
    monkeypatch.setattr(conv_module, "_import_spconv", lambda: object())
    for grad_mode in (torch.enable_grad, torch.no_grad):                            # training and inference alike
        with grad_mode():
            assert not conv_module.uses_spconv(small) and conv_module.uses_spconv(large)
            assert not conv_module.uses_spconv(large, "gather")
            assert conv_module.uses_spconv(small, "spconv")
    for capturable in ("gather", "implicit"):                                       # a captured forward's paths
        assert not conv_module.uses_spconv(large, capturable) and not conv_module.uses_spconv(small, capturable)
    assert conv_module.uses_spconv(large)                                            # "auto" is the default
    assert not conv_module.uses_spconv(torch.zeros(3, 8), "spconv")                 # CPU: always gather
    monkeypatch.setattr(conv_module, "_import_spconv", lambda: False)
    with torch.enable_grad():
        assert not conv_module.uses_spconv(large, "spconv")                          # not installed


def test_path_is_fixed_when_the_layer_is_built():
    """The path is the layer's own (``conv_path``), validated at construction; no module-level switch exists."""
    import pointcept_distill.models.sparse.conv as conv_module
    assert SubMConv3d(4, 4).conv_path == "auto" and SubMConv3d(4, 4, conv_path="implicit").conv_path == "implicit"
    with pytest.raises(ValueError, match="conv_path must be one of"):
        SubMConv3d(4, 4, conv_path="fast")
    assert not any(hasattr(conv_module, name) for name in ("_PATHS", "gather_only", "implicit_gemm"))
