"""The PT-v3m1 forward under torch.compile (graph capture, automatic dynamic shapes): same logits as eager.

``aot_eager`` runs dynamo's capture and AOT autograd's tracing without generating code, so this checks on a CPU
that the model traces (graph breaks only at the depth read and the pooling's ``torch.unique``) and keeps its
numbers across inputs of different sizes and depths. Inductor's code generation is exercised on the GPU by
``tools/benchmark.py --compile``.
"""
from __future__ import annotations

import torch

from pointcept_distill.models import build_model


def test_compiled_forward_matches_eager_across_sizes_and_depths(make_scene, tiny_config):
    torch.manual_seed(0)
    model = build_model(dict(type="DefaultSegmentorV2", num_classes=5, backbone_out_channels=8,
                             backbone=tiny_config())).eval()
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager")
    scenes = [make_scene((900, 500)), make_scene((1100, 700, 300), seed=1), make_scene((800,), extent=90, seed=2)]
    with torch.no_grad():
        for scene in scenes:                        # new sizes, batch sizes and (last) serialization depth
            ref = model(dict(scene))["seg_logits"]
            out = compiled(dict(scene))["seg_logits"]
            assert out.shape == ref.shape
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()
