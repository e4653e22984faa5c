"""Checkpoint files: Pointcept's dict, atomic writes, clear errors on corrupt files, ``module.`` prefixes.

Pointcept's keys: ``epoch`` (completed trainer epochs), ``state_dict``, ``optimizer``, ``scheduler``,
``scaler`` (None without fp16 AMP), ``best_metric_value``. Ours add, all optional on load:
``iter`` (iterations done inside ``epoch``; 0 at an epoch boundary), ``rng_states`` (one per rank:
python, numpy, torch, CUDA), ``seed`` and ``world_size``.
"""
from __future__ import annotations

import os
import shutil
from typing import Any

import torch

from ..utils.misc import atomic_write

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint", "copy_checkpoint", "remap_state_dict",
           "is_none_path"]


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or lacks a key."""


def is_none_path(path: Any) -> bool:
    """True for ``None`` and the string ``'None'`` (what ``--options weight=None`` yields)."""
    return path is None or (isinstance(path, str) and path.strip() in ("", "None"))


def load_checkpoint(path: str) -> dict:
    """Read a checkpoint on the CPU; a bare state dict is wrapped as ``{"state_dict": ...}``."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"checkpoint '{path}' is corrupt or truncated and cannot be read "
                              f"({type(err).__name__}: {err}); nothing was loaded or overwritten") from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint '{path}' holds a {type(ckpt).__name__}, not a dict")
    if "state_dict" not in ckpt:
        if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            return {"state_dict": ckpt}
        raise CheckpointError(f"checkpoint '{path}' has no 'state_dict' key (keys: {sorted(ckpt)[:10]})")
    return ckpt


def save_checkpoint(ckpt: dict, path: str) -> None:
    """``torch.save`` to a temporary file, fsync, then rename onto ``path``; the old file survives a crash."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def copy_checkpoint(src: str, dst: str) -> None:
    """Atomic copy (``model_best.pth``, ``epoch_N.pth`` from ``model_last.pth``)."""
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def remap_state_dict(state_dict: dict[str, torch.Tensor], with_module: bool, keywords: str = "",
                     replacement: str | None = None) -> dict[str, torch.Tensor]:
    """Pointcept's key normalisation: prefix every key with ``module.``, replace the first ``keywords`` by
    ``replacement`` (matched on the prefixed key), then strip ``module.`` unless ``with_module``."""
    replacement = keywords if replacement is None else replacement
    out = {}
    for key, value in state_dict.items():
        if not key.startswith("module."):
            key = "module." + key
        if keywords and keywords in key:
            key = key.replace(keywords, replacement, 1)
        out[key if with_module else key[len("module."):]] = value
    return out
