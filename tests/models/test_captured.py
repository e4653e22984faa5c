"""CapturedSegmentor: fixed-capacity inference, eager on the CPU, CUDA graphs on a GPU (skipped without one)."""
from __future__ import annotations

import pytest
import torch

from pointcept_distill.models import build_model
from pointcept_distill.models.captured import CapturedSegmentor, build_captured
from pointcept_distill.models.plan import BatchPlan, capacity_for, plan_batch


def _model(tiny_config, device="cpu"):
    torch.manual_seed(0)
    return build_model(dict(type="DefaultSegmentorV2", num_classes=5, backbone_out_channels=8,
                            backbone=tiny_config())).to(device).eval()


def _eager(model, scene):
    with torch.no_grad():
        return model(dict(scene))["seg_logits"]


def test_logits_match_eager_and_keys_follow_stage_sizes(make_scene, tiny_config):
    model = _model(tiny_config)
    run = CapturedSegmentor(model)
    assert run.strides == (2, 2)
    for counts, extent in [((900, 500), 40), ((1100, 700, 300), 90)]:
        scene = make_scene(counts, extent=extent)
        sizes = plan_batch(scene, (2, 2)).sizes
        depth = int(scene["grid_coord"].max() + 1).bit_length()
        assert run.key(scene) == BatchPlan((2, 2), depth, len(counts) + 1, tuple(capacity_for(n) for n in sizes),
                                           padding_sample=True)
        torch.testing.assert_close(run(scene), _eager(model, scene), rtol=0, atol=0)


def test_plan_carries_host_values_the_key_then_uses(make_scene, tiny_config, monkeypatch):
    run = CapturedSegmentor(_model(tiny_config))
    scene = make_scene((900, 500))
    planned = dict(scene, plan=run.plan(scene))
    assert planned["plan"] == plan_batch(scene, (2, 2))
    key = run.key(scene)

    def no_recompute(*args, **kwargs):
        raise AssertionError("stage_sizes recomputed despite the plan")
    monkeypatch.setattr("pointcept_distill.models.captured.plan_batch", no_recompute)
    assert run.key(planned) == key


def test_fixed_capacity_and_its_error(make_scene, tiny_config):
    model = _model(tiny_config)
    scene = make_scene((900, 500))
    run = CapturedSegmentor(model, capacity=2048)
    assert run.key(scene).sizes == (2048,) * 3 and run.key(scene).padding_sample
    torch.testing.assert_close(run(scene), _eager(model, scene), rtol=0, atol=0)
    with pytest.raises(ValueError, match="1400 points do not fit the capacity 1024"):
        CapturedSegmentor(model, capacity=1024)(scene)


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_forward_matches_eager(make_scene, tiny_config, backend):
    """Compiled whole: the graph as traced (aot_eager) and as inductor generates it on the CPU give eager's logits."""
    model = _model(tiny_config)
    torch._dynamo.reset()
    run = CapturedSegmentor(model, compile=backend)
    scene = make_scene((700, 600))
    tol = 1e-6 if backend == "aot_eager" else 1e-4      # inductor fuses and reorders float sums
    torch.testing.assert_close(run(scene), _eager(model, scene), rtol=tol, atol=tol)
    torch._dynamo.reset()


def test_cpu_batch_with_a_device_is_planned_on_the_host(make_scene, tiny_config, monkeypatch):
    model = _model(tiny_config)
    run = CapturedSegmentor(model)
    scene = make_scene((900, 500))
    planned = []
    real_plan = run.plan
    monkeypatch.setattr(run, "plan", lambda batch: planned.append(1) or real_plan(batch))
    torch.testing.assert_close(run(scene, device="cpu"), _eager(model, scene), rtol=0, atol=0)
    assert planned == [1]


def test_build_captured_modes_and_errors(tiny_config):
    model = _model(tiny_config)
    assert build_captured(model, None) is None
    run = build_captured(model, "graphs", "bfloat16")
    assert isinstance(run, CapturedSegmentor) and run.dtype == torch.bfloat16 and run.forward == run._logits
    assert build_captured(model, "compiled", "float32").dtype is None
    with pytest.raises(ValueError, match="capture must be one of"):
        build_captured(model, "cudagraphs")
    with pytest.raises(ValueError, match="capture dtype must be"):
        build_captured(model, "graphs", "half")


def test_graphs_beyond_max_graphs_drop_the_least_recently_used(make_scene, tiny_config, monkeypatch):
    # the bookkeeping of the CUDA path, with captures faked (a capture only records its inputs)
    from pointcept_distill.models.captured import _Capture
    run = CapturedSegmentor(_model(tiny_config), max_graphs=2)
    made = []
    monkeypatch.setattr(run, "_capture", lambda inputs: made.append(inputs) or _Capture(inputs, None, None))
    scene = make_scene((900, 500))
    keys = [BatchPlan((2, 2), d, 3, (2048, 1024, 512)) for d in (10, 11, 10, 12, 10)]
    for key in keys:
        capture = run._graph_for(key, scene)
        assert capture.inputs["plan"].sizes == key.sizes and capture.inputs["plan"].depth == key.depth
    assert len(made) == 3                                 # depth 10 was reused twice
    assert list(run.captures) == [keys[3], keys[4]]       # depth 11 dropped when 12 came, 10 used last
    replayed = run._graph_for(keys[3], dict(scene, feat=scene["feat"] + 1))
    assert torch.equal(replayed.inputs["feat"][:1400], scene["feat"] + 1)   # the batch copied into the buffers
    assert (replayed.inputs["feat"][1400:] == 0).all() and list(run.captures)[-1] == keys[3]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graphs_replay_per_key(make_scene, tiny_config):
    model = _model(tiny_config, "cuda")
    run = CapturedSegmentor(model, capacity=2048)
    scenes = [{k: v.cuda() for k, v in make_scene(counts, seed=i).items()}
              for i, counts in enumerate([(900, 500), (800, 650), (1000,)])]
    for scene in scenes:
        torch.testing.assert_close(run(scene), _eager(model, scene), rtol=1e-5, atol=1e-5)
    assert len(run.captures) == 2                    # the two 2-sample scenes share one graph
    bf16 = CapturedSegmentor(model, dtype=torch.bfloat16)
    out = bf16(scenes[0]).float()
    ref = _eager(model, scenes[0])
    assert out.dtype == torch.float32 and ((out - ref).norm() / ref.norm()) < 2e-2
