"""Optimizers built from config, with Pointcept's ``param_dicts`` (per-keyword learning rates)."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .registry import Registry

__all__ = ["OPTIMIZERS", "build_optimizer"]

OPTIMIZERS = Registry("optimizers")
for _cls in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW):
    OPTIMIZERS.register_module(module=_cls)


def build_optimizer(cfg: dict, model: nn.Module | Iterable[tuple[str, nn.Parameter]],
                    param_dicts: list[dict] | None = None) -> torch.optim.Optimizer:
    """Build ``cfg`` over the trainable parameters of ``model`` (a module, or (name, parameter) pairs, e.g.
    several modules' named parameters).

    With ``param_dicts`` (e.g. ``[dict(keyword="block", lr=0.0002)]``), group 0 holds every parameter whose
    name matches no keyword, at ``cfg.lr``; group i+1 holds those whose name contains
    ``param_dicts[i].keyword`` (first match wins), with that entry's overrides (``lr``, or ``lr_scale``
    times ``cfg.lr``, ``weight_decay``, ``momentum``...). Frozen parameters (``requires_grad=False``) are
    never added, so a frozen teacher stays out of the optimizer.
    """
    cfg = dict(cfg)
    if "lr" not in cfg:
        raise KeyError(f"optimizer config {cfg!r} has no 'lr'")
    named = model.named_parameters() if isinstance(model, nn.Module) else model
    named = [(n, p) for n, p in named if p.requires_grad]
    if not param_dicts:
        return OPTIMIZERS.build(dict(cfg, params=[p for _, p in named]))
    groups: list[dict] = [dict(params=[], lr=cfg["lr"])]
    for entry in param_dicts:
        entry = dict(entry)
        if "keyword" not in entry:
            raise KeyError(f"param_dicts entry {entry!r} has no 'keyword'")
        group = dict(params=[], keyword=entry.pop("keyword"))
        scale = entry.pop("lr_scale", None)
        group.update(entry)
        if scale is not None:
            group["lr"] = cfg["lr"] * scale
        groups.append(group)
    for name, param in named:
        target = next((g for g in groups[1:] if g["keyword"] in name), groups[0])
        target["params"].append(param)
    for group in groups[1:]:
        group.pop("keyword")
    return OPTIMIZERS.build(dict(cfg, params=groups))
