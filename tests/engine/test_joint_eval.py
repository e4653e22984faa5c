"""Per-dataset validation metrics (``MultiDatasetEvaluator``) and cross-dataset testing (``CrossDatasetTester``)."""
from __future__ import annotations

import json
import logging
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from pointcept_distill.data.label_space import COMMON_NAMES, NATIVE_NAMES, common_classes, to_common
from pointcept_distill.engine.cross_eval import CrossDatasetTester, model_output_space
from pointcept_distill.engine.hooks.multi_dataset_evaluator import MultiDatasetEvaluator, dataset_class_ids
from pointcept_distill.models import build_model
from pointcept_distill.utils.config import Config
from pointcept_distill.utils.misc import intersection_and_union, semseg_metrics
from tiny_configs import ROOT

DATASETS = ["nuscenes", "semantic_kitti", "waymo"]


class _FixedLogits(nn.Module):
    """Eval model whose logits are one-hot of ``input_dict[key]`` (or of a constant class)."""

    def __init__(self, num_classes: int, key: str = "guess", constant: int | None = None) -> None:
        super().__init__()
        self.num_classes, self.key, self.constant = num_classes, key, constant

    def forward(self, input_dict: dict) -> dict:
        n = len(input_dict["coord"])
        cls = torch.full((n,), self.constant) if self.constant is not None else input_dict[self.key]
        return {"seg_logits": nn.functional.one_hot(cls.clamp(min=0), self.num_classes).float()}


def _val_batches(num_classes: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(3):
        n = 60
        which = torch.from_numpy(rng.integers(0, 3, n))
        lo = torch.tensor([0, 16, 35])[which]
        size = torch.tensor([16, 19, 22])[which]
        segment = lo + (torch.from_numpy(rng.random(n)) * size).long()
        guess = torch.where(torch.from_numpy(rng.random(n)) < 0.6, segment, lo)
        inverse = torch.from_numpy(rng.integers(0, n, 2 * n))
        batches.append(dict(coord=torch.zeros(n, 3), segment=segment, guess=guess, dataset_index=which,
                            inverse=inverse, origin_segment=segment[inverse]))
    return batches


def test_multi_dataset_evaluator_scores_each_dataset_on_its_classes():
    batches = _val_batches(57)
    cfg = Config(dict(evaluate=True, data=dict(num_classes=57, ignore_index=-1, datasets=DATASETS,
                                               label_space="heads")))
    trainer = SimpleNamespace(cfg=cfg, model_without_ddp=_FixedLogits(57), val_loader=batches,
                              to_device=lambda x: x, logger=logging.getLogger("test"), writer=None,
                              comm_info={}, epoch=0)
    hook = MultiDatasetEvaluator()
    hook.trainer = trainer
    result = hook.eval()
    for d, (ids, names) in enumerate(dataset_class_ids(DATASETS, "heads")):
        assert names == list(NATIVE_NAMES[DATASETS[d]])
        pred = np.concatenate([b["guess"][b["inverse"]].numpy() for b in batches])
        seg = np.concatenate([b["origin_segment"].numpy() for b in batches])
        which = np.concatenate([b["dataset_index"][b["inverse"]].numpy() for b in batches])
        inter, union, target = intersection_and_union(pred[which == d], seg[which == d], 57)
        expected = semseg_metrics(inter[ids], union[ids], target[ids])["mIoU"]
        assert result["per_dataset"][DATASETS[d]]["mIoU"] == pytest.approx(expected)
        assert 0 < expected < 1
    assert trainer.comm_info["current_metric_value"] == pytest.approx(
        np.mean([r["mIoU"] for r in result["per_dataset"].values()]))
    common = dataset_class_ids(DATASETS, "common")
    assert [len(ids) for ids, _ in common] == [13, 12, 14]


@pytest.fixture(scope="module")
def sim_roots(tmp_path_factory):
    from pointcept_distill.data.simulator import generate
    roots = {}
    for name in DATASETS:
        roots[name] = str(tmp_path_factory.mktemp(name))
        generate(name, roots[name], train=1, val=2, seed=5, scale=0.03)
    return roots


def _cfg(tmp_path, **model) -> Config:
    return Config(dict(model=model, data=dict(num_classes=16, train=dict(type="NuScenesDataset")),
                       save_path=str(tmp_path), seed=0, num_worker_per_gpu=0))


def test_output_space_of_each_model_kind(tmp_path):
    native = model_output_space(_cfg(tmp_path, type="DefaultSegmentorV2"), "waymo")
    assert native["name"] == "nuscenes" and native["classes"] == common_classes("nuscenes")
    heads = model_output_space(_cfg(tmp_path, type="MultiHeadSegmentor", num_classes=[16, 19, 22],
                                    head_names=DATASETS), "semantic_kitti")
    assert heads["slice"] == slice(16, 35) and heads["head_index"] == 1 and heads["head"] == "semantic_kitti"
    with pytest.raises(KeyError, match="no head 'waymo'"):
        model_output_space(_cfg(tmp_path, type="MultiHeadSegmentor", num_classes=[16], head_names=["nuscenes"]),
                           "waymo")
    cfg = _cfg(tmp_path, type="DefaultSegmentorV2")
    cfg.data.train.type = "ConcatDataset"
    with pytest.raises(KeyError, match="pass test.source"):
        model_output_space(cfg, "waymo")


@pytest.mark.parametrize("single_pass", [True, False])
def test_cross_dataset_iou_of_a_constant_prediction(tmp_path, sim_roots, single_pass):
    """A nuScenes model that predicts driveable_surface everywhere, tested on SemanticKITTI: road IoU is the
    road share of the labelled points, every other shared class 0."""
    road = NATIVE_NAMES["nuscenes"].index("driveable_surface")
    tester = CrossDatasetTester(_cfg(tmp_path, type="DefaultSegmentorV2"), target="semantic_kitti",
                                target_root=sim_roots["semantic_kitti"], single_pass=single_pass,
                                model=_FixedLogits(16, constant=road))
    summary = tester.test()
    labels = np.concatenate([to_common(tester.test_loader.dataset.dataset.get_data(i)["segment"], "semantic_kitti")
                             for i in range(2)])
    valid = labels[labels >= 0]
    assert summary["iou_per_class"]["road"] == pytest.approx(np.mean(valid == COMMON_NAMES.index("road")))
    assert all(v == 0 for k, v in summary["iou_per_class"].items() if k != "road")
    assert "pole_sign" not in summary["shared_classes"] and "bus" not in summary["shared_classes"]
    assert summary["mIoU"] == pytest.approx(summary["iou_per_class"]["road"] / len(summary["shared_classes"]))
    with open(summary["path"], encoding="utf-8") as f:
        assert json.load(f)["mode"] == ("single_pass" if single_pass else "tta")
    assert os.path.basename(summary["path"]).startswith("cross_nuscenes_to_semantic_kitti")


def test_captured_multi_head_model_scores_as_the_eager_one(tmp_path, sim_roots):
    """test.capture on a MultiHeadSegmentor: the captured batch carries the head's dataset_index, padded."""
    cfg = Config.fromfile(os.path.join(ROOT, "configs", "joint", "semseg-pt-v3m1-sim-tiny.py"))
    cfg.save_path, cfg.seed, cfg.num_worker_per_gpu = str(tmp_path), 0, 0
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    scores = {}
    for capture in (None, "graphs"):
        tester = CrossDatasetTester(cfg, target="waymo", target_root=sim_roots["waymo"], model=model,
                                    single_pass=True, capture=capture)
        assert (tester.predictor.captured is None) == (capture is None)
        (_, scan), = next(iter(tester.test_loader))
        scores[capture] = tester.predictor(scan)                    # what tester.predict takes the argmax of
    assert scores[None].shape == (len(scan["origin_segment"]), len(NATIVE_NAMES["waymo"]))  # the head's classes
    assert torch.equal(scores["graphs"], scores[None])


def test_markdown_summary_and_roots():
    from pointcept_distill.engine.cross_eval import markdown_summary, parse_roots
    assert parse_roots(["a=x", "b=y/z"]) == {"a": "x", "b": "y/z"}
    with pytest.raises(ValueError, match="NAME=DATA_ROOT"):
        parse_roots(["a"])
    summaries = [dict(model="nuscenes", target="waymo", mode=m, mIoU=v, shared_classes=["car", "road"],
                      iou_per_class={"car": v, "road": v}) for m, v in (("single_pass", 0.25), ("tta", 0.5))]
    table = markdown_summary(summaries).splitlines()
    assert table[2] == "| waymo | 2 | 25.0 | 50.0 |"
    assert table[-1].startswith("| waymo | tta | 50.0 | - |")
