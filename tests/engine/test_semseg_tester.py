"""SemSegTester: fragment voting, single pass, result files, no silent reuse of earlier predictions."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pointcept_distill.engine import SemSegTester, default_setup
from pointcept_distill.engine.checkpoint import CheckpointError
from toy_components import NUM_CLASSES, ToyPointDataset, ToySegmentor, toy_cfg


def _cfg(tmp_path, **overrides):
    data = dict(num_classes=NUM_CLASSES, ignore_index=-1, names=list("abcd"), train=dict(type="ToyPointDataset"),
                val=dict(type="ToyPointDataset", split="val", num_samples=3, val=True),
                test=dict(type="ToyPointDataset", split="val", num_samples=3, test_mode=True))
    return default_setup(toy_cfg(tmp_path, data=data, **overrides))


def _model() -> ToySegmentor:
    torch.manual_seed(0)
    return ToySegmentor().eval()


def test_fragment_votes_are_summed_softmax(tmp_path):
    model = _model()
    summary = SemSegTester(_cfg(tmp_path), model=model).test()
    sample = ToyPointDataset(split="val", num_samples=3, test_mode=True, jitter=0.0)[0]
    with torch.no_grad():
        probs = torch.zeros(len(sample["segment"]), NUM_CLASSES)
        for frag in sample["fragment_list"]:
            probs[frag["index"]] += F.softmax(model({"feat": frag["feat"]})["seg_logits"], -1)
    saved = np.load(tmp_path / "result" / "toy_0_pred.npy")
    assert saved.shape == (len(sample["segment"]),)
    # jitter makes the tester's input differ slightly; most points agree with the noiseless vote
    assert (saved == probs.argmax(1).numpy()).mean() > 0.8
    written = json.loads((tmp_path / "result" / "summary.json").read_text())
    assert written["mode"] == "fragment_voting" and written["num_scans"] == 3
    assert written["mIoU"] == pytest.approx(summary["mIoU"]) and written["seconds_per_scan"] > 0
    assert set(written["iou_per_class"]) == set("abcd")


def test_single_pass_maps_to_original_points(tmp_path):
    SemSegTester(_cfg(tmp_path), model=_model(), single_pass=True).test()
    pred = np.load(tmp_path / "result" / "scan_000000_pred.npy")
    assert pred.shape == (2 * 16,)  # every original point of the toy val sample
    assert json.loads((tmp_path / "result" / "summary.json").read_text())["mode"] == "single_pass"


def test_earlier_predictions_are_not_reused_unless_asked(tmp_path):
    cfg = _cfg(tmp_path)
    SemSegTester(cfg, model=_model()).test()
    path = tmp_path / "result" / "toy_1_pred.npy"
    fresh = np.load(path)
    np.save(path, np.full_like(fresh, 3))
    SemSegTester(cfg, model=_model()).test()
    assert np.array_equal(np.load(path), fresh)
    np.save(path, np.full_like(fresh, 3))
    reused = SemSegTester(cfg, model=_model(), reuse_pred=True).test()
    assert np.all(np.load(path) == 3) and reused["num_scans"] == 3


def test_missing_weight_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint found"):
        SemSegTester(_cfg(tmp_path, weight=str(tmp_path / "nope.pth")))
