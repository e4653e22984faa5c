"""The kernels of a forward (models/backend.py): chosen when the model or a captured forward is built."""
from __future__ import annotations

import pytest
import torch

from pointcept_distill.models import build_model, sparse
from pointcept_distill.models.backend import Backend
from pointcept_distill.models.captured import CapturedSegmentor, captured_backend
from pointcept_distill.models.ptv3m1 import SerializedAttention, attention


def _kernels(model) -> tuple[set, set]:
    convs = {m.conv_path for m in model.modules() if isinstance(m, sparse.SubMConv3d)}
    attns = {m.kernel for m in model.modules() if isinstance(m, SerializedAttention)}
    return convs, attns


def _segmentor(tiny_config, **backbone):
    torch.manual_seed(0)
    return build_model(dict(type="DefaultSegmentorV2", num_classes=5, backbone_out_channels=8,
                            backbone=tiny_config(**backbone))).eval()


def test_every_layer_gets_the_backend_it_is_built_with(tiny_config):
    assert _kernels(_segmentor(tiny_config)) == ({"auto"}, {"triton"})
    model = _segmentor(tiny_config, backend=dict(conv="gather", attention="sdpa"))       # a config's dict
    assert model.backbone.backend == Backend("gather", "sdpa") and _kernels(model) == ({"gather"}, {"sdpa"})
    with pytest.raises(ValueError, match="conv must be one of"):
        Backend(conv="spconv2")


def test_no_global_switch_decides_the_kernels():
    assert not any(hasattr(attention, name) for name in ("_KERNEL", "window_attention_kernel"))
    assert not {"gather_only", "implicit_gemm"} & set(sparse.__all__)
    assert not any(hasattr(sparse.conv, name) for name in ("_PATHS", "gather_only", "implicit_gemm"))


def test_set_backend_fixes_every_layer(tiny_config):
    model = _segmentor(tiny_config)
    model.backbone.set_backend(Backend("implicit", "sdpa"))
    assert model.backbone.backend == Backend("implicit", "sdpa") and _kernels(model) == ({"implicit"}, {"sdpa"})


@pytest.mark.parametrize("implicit_gemm", [False, True])
def test_a_captured_forward_fixes_its_conv_path_when_built(make_scene, tiny_config, implicit_gemm):
    model = _segmentor(tiny_config, backend=dict(attention="sdpa"))
    scene = make_scene((900, 500))
    with torch.no_grad():
        ref = model(dict(scene))["seg_logits"]
    run = CapturedSegmentor(model, implicit_gemm=implicit_gemm)
    conv = "implicit" if implicit_gemm else "gather"
    assert run.backend == captured_backend(Backend(attention="sdpa"), implicit_gemm) == Backend(conv, "sdpa")
    assert _kernels(model) == ({conv}, {"sdpa"})                  # before any forward: fixed at build
    torch.testing.assert_close(run(scene), ref, rtol=0, atol=0)   # CPU without the interpreter: the gather-GEMM
