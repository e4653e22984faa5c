import pytest
import torch

from pointcept_distill.models import build_model


def _build(tiny_config, **kwargs):
    cfg = dict(type="DefaultSegmentorV2", num_classes=4, backbone_out_channels=8, backbone=tiny_config(),
               criteria=[dict(type="CrossEntropyLoss", ignore_index=-1)])
    cfg.update(kwargs)
    return build_model(cfg)


def test_outputs_per_mode(make_scene, tiny_config):
    model = _build(tiny_config)
    data = make_scene((200, 90), num_classes=4)
    assert set(model.train()(dict(data))) == {"loss"}
    model.eval()
    with torch.no_grad():
        out = model(dict(data), return_point=True)
        assert set(out) == {"loss", "seg_logits", "point"}
        assert out["seg_logits"].shape == (290, 4)
        test_input = {k: v for k, v in data.items() if k != "segment"}
        assert set(model(test_input)) == {"seg_logits"}


def test_seg_head_first_and_identity_head(tiny_config):
    assert next(iter(_build(tiny_config).state_dict())) == "seg_head.weight"
    keys = _build(tiny_config, num_classes=0).state_dict()
    assert not any(k.startswith("seg_head") for k in keys)


def test_freeze_backbone(tiny_config):
    model = _build(tiny_config, freeze_backbone=True)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.seg_head.parameters())


def test_enc_mode_concatenates_back_to_input(make_scene, tiny_config):
    backbone = tiny_config(enc_mode=True)
    model = build_model(dict(type="DefaultSegmentorV2", num_classes=3, backbone_out_channels=8 + 16 + 16,
                             backbone=backbone)).eval()
    with torch.no_grad():
        out = model(make_scene((200, 90)))
    assert out["seg_logits"].shape == (290, 3)


def test_missing_backbone_is_an_error():
    with pytest.raises(ValueError, match="backbone"):
        build_model(dict(type="DefaultSegmentorV2", num_classes=3, backbone_out_channels=8))
