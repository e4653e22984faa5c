"""CPU twins of tests/models/test_models_cuda.py: autocast against float32, and the forward's host reads.

On CUDA a host read (``.item()``, ``int(t)``, ``torch.unique``...) is a device synchronisation; on the CPU the same
calls are counted (tests/host_reads.py), so CI checks the forward's sync budget without a GPU.
(The spconv test's CPU twin is tests/models/sparse/test_subm_conv.py::test_matches_upstream_fixture.)
"""
from __future__ import annotations

import torch
from host_reads import HostReads

from pointcept_distill.models import build_model


def _model(tiny_config):
    torch.manual_seed(0)
    return build_model(dict(type="DefaultSegmentorV2", num_classes=5, backbone_out_channels=8,
                            backbone=tiny_config())).eval()


def test_autocast_agrees_with_float32_on_cpu(make_scene, tiny_config):
    model = _model(tiny_config)
    data = make_scene((3000, 1200))
    with torch.no_grad():
        ref = model(dict(data))["seg_logits"]
        for dtype in (torch.bfloat16, torch.float16):
            with torch.autocast("cpu", dtype=dtype):
                out = model(dict(data))["seg_logits"]
            assert out.dtype == dtype
            assert ((out.float() - ref).norm() / ref.norm()) < 2e-2, dtype


def test_host_reads_only_for_depth_and_pooling(make_scene, tiny_config):
    model = _model(tiny_config)
    data = make_scene((3000, 1200))
    with torch.no_grad(), HostReads() as reads:
        model(dict(data))
    # serialization depth + the cluster count of each pooling (2 in the tiny model), as the CUDA test counts
    assert reads.by_function() == {"__int__": 3}, dict(reads.hits)
