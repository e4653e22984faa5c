"""build_optimizer: param_dicts groups by keyword, frozen parameters left out."""
from __future__ import annotations

import pytest
from torch import nn

from pointcept_distill.utils.optimizer import build_optimizer


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block1 = nn.Linear(2, 2)
        self.head = nn.Linear(2, 2)
        self.frozen_block = nn.Linear(2, 2).requires_grad_(False)


def test_keyword_groups_and_lr_scale():
    net = _Net()
    opt = build_optimizer(dict(type="AdamW", lr=0.1, weight_decay=0.01), net,
                          [dict(keyword="block", lr_scale=0.1, weight_decay=0.0)])
    head, block = opt.param_groups
    assert {id(p) for p in head["params"]} == {id(p) for p in net.head.parameters()}
    assert {id(p) for p in block["params"]} == {id(p) for p in net.block1.parameters()}
    assert block["lr"] == pytest.approx(0.01) and block["weight_decay"] == 0.0 and head["lr"] == 0.1


def test_frozen_parameters_are_never_optimized():
    net = _Net()
    opt = build_optimizer(dict(type="SGD", lr=0.1), net)
    ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not ids & {id(p) for p in net.frozen_block.parameters()}
    assert len(ids) == 4


def test_missing_lr_is_a_clear_error():
    with pytest.raises(KeyError, match="no 'lr'"):
        build_optimizer(dict(type="SGD"), _Net())


def test_named_parameters_of_several_modules():
    # e.g. a student and a distillation projector: the keyword groups see every name
    net, extra = _Net(), nn.Linear(2, 3)
    named = [*net.named_parameters(), *extra.named_parameters(prefix="distill_losses")]
    opt = build_optimizer(dict(type="SGD", lr=0.1), named, [dict(keyword="block", lr_scale=0.1)])
    rest, block = opt.param_groups
    assert {id(p) for p in rest["params"]} == {id(p) for p in [*net.head.parameters(), *extra.parameters()]}
    assert {id(p) for p in block["params"]} == {id(p) for p in net.block1.parameters()}
