import json

import pytest
import torch

from pointcept_distill.models import build_model
from pointcept_distill.models.losses import CrossEntropyLoss
from pointcept_distill.models.sparse import conv as conv_module


def _segmentor_cfg(config: dict) -> dict:
    cfg = dict(config)
    return dict(type="DefaultSegmentorV2", num_classes=cfg.pop("num_classes"),
                backbone_out_channels=cfg.pop("backbone_out_channels"), backbone=dict(type="PT-v3m1", **cfg))


@pytest.mark.parametrize("name", ["paper_student_keys.json", "nuscenes_base_teacher_keys.json"])
def test_state_dict_layout_matches_upstream(fixtures_dir, name):
    ref = json.loads((fixtures_dir / name).read_text())
    with torch.device("meta"):
        model = build_model(_segmentor_cfg(ref["config"]))
    got = [[key, list(value.shape)] for key, value in model.state_dict().items()]
    assert got == ref["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == ref["params"]


@pytest.fixture(scope="module")
def parity(fixtures_dir):
    data = torch.load(fixtures_dir / "parity_small.pt", weights_only=True)
    model = build_model(dict(type="DefaultSegmentorV2", num_classes=data["num_classes"],
                             backbone_out_channels=data["backbone_out_channels"],
                             backbone=dict(type="PT-v3m1", **data["backbone_config"])))
    model.load_state_dict(data["state_dict"], strict=True)
    model.eval()
    with torch.no_grad():
        out = model(dict(data["input"]), return_point=True)
    return data["expected"], out


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_parity_logits_and_features(parity):
    expected, out = parity
    assert _rel(out["seg_logits"], expected["seg_logits"]) < 1e-4
    assert _rel(out["point"].feat, expected["backbone_feat"]) < 1e-4


def test_parity_serialization(parity):
    expected, out = parity
    point = out["point"]
    assert point.serialized_depth == expected["serialized_depth"]
    assert torch.equal(point.serialized_code, expected["serialized_code"])
    assert torch.equal(point.serialized_order, expected["serialized_order"])


def test_kernel_map_built_once_per_stage(monkeypatch, make_scene, tiny_config):
    calls = []
    real = conv_module.kernel_map.build_kernel_map
    monkeypatch.setattr(conv_module.kernel_map, "build_kernel_map",
                        lambda indices, k: calls.append((indices.shape[0], k)) or real(indices, k))
    model = build_model(tiny_config()).eval()
    with torch.no_grad():
        model(make_scene((300, 120)))
    assert len(calls) == 1 + 3                      # stem + one per stage (encoder and decoder share it)
    assert [k for _, k in calls] == [5, 3, 3, 3]


def test_training_step_gives_finite_grads_everywhere(make_scene, tiny_config):
    torch.manual_seed(0)
    model = build_model(dict(type="DefaultSegmentorV2", num_classes=5, backbone_out_channels=8,
                             backbone=tiny_config(),
                             criteria=[dict(type="CrossEntropyLoss", ignore_index=-1),
                                       dict(type="LovaszLoss", mode="multiclass", ignore_index=-1)]))
    model.train()
    out = model(make_scene((300, 120), num_classes=5))
    assert set(out) == {"loss"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    assert any(param.grad.abs().sum() > 0 for name, param in model.named_parameters() if "cpe.0" in name)


def test_eval_is_deterministic_and_never_shuffles(monkeypatch, make_scene, tiny_config):
    model = build_model(tiny_config()).eval()
    data = make_scene((300, 120))

    def no_randperm(*args, **kwargs):
        raise AssertionError("randperm called in eval")

    monkeypatch.setattr(torch, "randperm", no_randperm)
    with torch.no_grad():
        a, b = model(dict(data)), model(dict(data))
    assert torch.equal(a.feat, b.feat)


def test_training_shuffles_orders(make_scene, tiny_config):
    model = build_model(tiny_config(drop_path=0.0)).train()
    data = make_scene((300, 120))
    first_rows = set()
    for seed in range(6):
        torch.manual_seed(seed)
        point = model(dict(data))
        first_rows.add(tuple(point.serialized_code[0, :5].tolist()))
        first_rows.add(tuple(point.bottleneck.serialized_code[0, :5].tolist()))
    assert len(first_rows) > 2


def test_bottleneck_is_the_encoder_output(make_scene, tiny_config):
    model = build_model(tiny_config()).eval()
    data = make_scene((300, 120))
    with torch.no_grad():
        point = model(dict(data))
        deepest = model.encode(dict(data))
        decoded = model.decode(model.encode(dict(data)))
    assert point.bottleneck.feat.shape == (deepest.feat.shape[0], 16)
    assert torch.equal(point.bottleneck.feat, deepest.feat)
    assert torch.equal(point.bottleneck.grid_coord, deepest.grid_coord)
    assert "pooling_parent" not in point.bottleneck
    assert torch.equal(decoded.feat, point.feat)


def test_feature_stages_are_named_with_their_levels(make_scene, tiny_config):
    model = build_model(tiny_config()).eval()
    stages = model.feature_stages()
    levels = {name: level for name, (_, level) in stages.items()}
    assert levels == {"enc0": 0, "enc1": 1, "enc2": 2, "dec1": 1, "dec0": 0, "bottleneck": 2}
    assert stages["bottleneck"][0] is model.enc.enc2 and stages["dec1"][0] is model.dec.dec1
    rows = {}
    for name, (module, _) in stages.items():
        module.register_forward_hook(lambda m, i, point, name=name: rows.__setitem__(name, len(point.feat)))
    with torch.no_grad():
        model(dict(make_scene((300, 120))))
    for name, level in levels.items():                      # a level's stages hold the same voxels
        assert rows[name] == rows[f"enc{level}"], name
    assert set(build_model(tiny_config(enc_mode=True)).feature_stages()) == {"enc0", "enc1", "enc2", "bottleneck"}


def test_stage_lookup_and_strides_are_public(tiny_config):
    model = build_model(tiny_config(stride=(4, 2))).eval()
    assert model.strides == (4, 2)
    stage = model.stage("dec1")
    assert stage.module is model.dec.dec1 and stage.level == 1 and stage == model.feature_stages()["dec1"]
    assert model.stage("bottleneck") == (model.enc.enc2, 2)
    with pytest.raises(KeyError, match=r"unknown stage 'enc9' \(stages: \['bottleneck', 'dec0'"):
        model.stage("enc9")


def test_decoder_grad_through_detached_bottleneck(make_scene, tiny_config):
    model = build_model(tiny_config()).eval()
    data = make_scene((300, 120), num_classes=3)
    with torch.no_grad():
        deepest = model.encode(dict(data))
    deepest.feat = deepest.feat.detach().requires_grad_()
    leaf = deepest.feat
    feat = model.decode(deepest).feat
    CrossEntropyLoss()(feat[:, :3], data["segment"]).backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0


def test_length_mismatch_is_named(tiny_config):
    with pytest.raises(ValueError, match="enc_channels"):
        build_model(tiny_config(enc_channels=(8, 16)))


def _twin_outputs(tiny_config, data, cfg_a: dict, cfg_b: dict):
    a = build_model(tiny_config(**cfg_a)).eval()
    b = build_model(tiny_config(**cfg_b)).eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        return a(dict(data)), b(dict(data))


def test_decoder_patch_size_does_not_enter_the_math(make_scene, tiny_config):
    pa, pb = _twin_outputs(tiny_config, make_scene((300, 120)), {}, dict(dec_patch_size=(8, 5)))
    assert torch.equal(pa.feat, pb.feat)


def test_non_flash_windows_shrink_to_the_smallest_sample(make_scene, tiny_config):
    data = make_scene((300, 10))
    flash, plain = _twin_outputs(tiny_config, data, {}, dict(enable_flash=False))
    assert flash.attn_windows.patch_size == 16 and plain.attn_windows.patch_size == 10
    assert not torch.allclose(flash.feat, plain.feat)
    # when no sample is smaller than the patch at any stage, both semantics agree
    big = make_scene((300, 200))
    small_patch = dict(enc_patch_size=(4, 4, 4), dec_patch_size=(4, 4))
    flash, plain = _twin_outputs(tiny_config, big, small_patch, dict(small_patch, enable_flash=False))
    assert torch.allclose(flash.feat, plain.feat, atol=1e-6)
