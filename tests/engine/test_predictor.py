"""Predictor: softmax scores of one sample, Pointcept's fragment vote (summed, undivided), inverse maps, heads."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pointcept_distill.engine.predictor import Predictor
from toy_components import NUM_CLASSES, ToyPointDataset, ToySegmentor

CPU = torch.device("cpu")


def _predictor(**kwargs) -> Predictor:
    torch.manual_seed(0)
    return Predictor(ToySegmentor().eval(), CPU, **kwargs)


def _scan() -> dict:
    """A toy test-mode scan: two overlapping fragments over its 16 points."""
    return ToyPointDataset(split="val", num_samples=1, test_mode=True, jitter=0.0)[0]


def test_vote_is_the_sum_of_each_fragments_softmax():
    predictor, scan = _predictor(), _scan()
    expected = torch.zeros(len(scan["segment"]), NUM_CLASSES)
    with torch.no_grad():
        for fragment in scan["fragment_list"]:
            expected[fragment["index"]] += F.softmax(predictor.model({"feat": fragment["feat"]})["seg_logits"], -1)
    assert torch.equal(predictor(scan, vote=True), expected)


def test_vote_rows_sum_to_the_fragments_holding_each_point():
    scan = _scan()
    held = torch.zeros(len(scan["segment"]))
    for fragment in scan["fragment_list"]:
        held[fragment["index"]] += 1
    assert held.min() == 1 and held.max() == 2      # the toy fragments overlap in the middle
    torch.testing.assert_close(_predictor()(scan, vote=True).sum(1), held)


def test_single_pass_rows_are_probabilities():
    sample = ToyPointDataset(split="val", num_samples=1)[0]
    scores = _predictor()(sample)
    assert scores.shape == (len(sample["segment"]), NUM_CLASSES)
    torch.testing.assert_close(scores.sum(1), torch.ones(len(scores)))


def test_inverse_maps_scores_to_every_original_point():
    sample = ToyPointDataset(split="val", num_samples=1, val=True)[0]
    predictor = _predictor()
    per_voxel = predictor.scores(sample)
    assert torch.equal(predictor(sample), per_voxel[sample["inverse"]])
    assert len(sample["inverse"]) == 2 * len(per_voxel)


def test_empty_fragment_list_is_an_error():
    with pytest.raises(ValueError, match="empty fragment_list"):
        _predictor()(dict(segment=torch.zeros(3), fragment_list=[]), vote=True)


class _HeadEcho(nn.Module):
    """Logits (N, 5) whose column ``dataset_index + 2`` is 1: shows the head each point was given."""

    def forward(self, input_dict: dict) -> dict:
        return {"seg_logits": F.one_hot(input_dict["dataset_index"] + 2, 5).float() * 10}


def test_head_index_is_given_to_every_point_and_its_classes_kept():
    sample = dict(coord=torch.zeros(6, 3), feat=torch.zeros(6, 1), offset=torch.tensor([6]))
    scores = Predictor(_HeadEcho(), CPU, dataset_index=1, classes=slice(2, 5))(sample)
    assert scores.shape == (6, 3)
    assert torch.equal(scores.argmax(1), torch.ones(6, dtype=torch.long))   # column 3 of the union, 1 of the slice


def test_a_model_with_another_class_count_is_refused():
    with pytest.raises(ValueError, match=f"scores {NUM_CLASSES} classes, {NUM_CLASSES + 1} are expected"):
        _predictor(num_classes=NUM_CLASSES + 1)(_scan(), vote=True)
    assert _predictor(num_classes=NUM_CLASSES)(_scan(), vote=True).shape[1] == NUM_CLASSES
