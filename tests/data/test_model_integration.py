"""A simulated frame of each profile, through its dataset's training pipeline, feeds PT-v3m1."""
import pytest
import torch

from pointcept_distill.data import build_dataset, point_collate_fn
from pointcept_distill.data.pipelines import data_config
from pointcept_distill.models import build_model


def tiny_segmentor(num_classes: int):
    backbone = dict(type="PT-v3m1", in_channels=4, order=("z", "z-trans", "hilbert", "hilbert-trans"),
                    stride=(2, 2), enc_depths=(1, 1, 1), enc_channels=(8, 16, 16), enc_num_head=(1, 2, 2),
                    enc_patch_size=(64, 64, 64), dec_depths=(1, 1), dec_channels=(8, 16),
                    dec_num_head=(1, 2), dec_patch_size=(64, 64), enable_flash=False)
    return build_model(dict(type="DefaultSegmentorV2", num_classes=num_classes, backbone_out_channels=8,
                            backbone=backbone,
                            criteria=[dict(type="CrossEntropyLoss", ignore_index=-1)]))


@pytest.mark.parametrize("profile,mix_prob", [("nuscenes", 1.0), ("semantic_kitti", 0.0),
                                              ("waymo", 0.0)])
def test_collated_batch_trains_a_step(sim_root, profile, mix_prob):
    cfg = data_config(profile, str(sim_root(profile)))
    ds = build_dataset({**cfg["train"], "seed": 0})
    batch = point_collate_fn([ds[0], ds[1]], mix_prob=mix_prob)
    assert len(batch["offset"]) == (1 if mix_prob else 2)
    torch.manual_seed(0)
    model = tiny_segmentor(cfg["num_classes"]).train()
    loss = model(batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
