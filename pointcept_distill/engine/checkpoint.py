"""Checkpoint files: Pointcept's dict, atomic writes, clear errors on corrupt files, ``module.`` prefixes.

Pointcept's keys: ``epoch`` (completed trainer epochs), ``state_dict``, ``optimizer``, ``scheduler``,
``scaler`` (None without fp16 AMP), ``best_metric_value``. Ours add, all optional on load:
``iter`` (iterations done inside ``epoch``; 0 at an epoch boundary), ``rng_states`` (one per rank:
python, numpy, torch, CUDA), ``seed`` and ``world_size``.

Checkpoints are data: ``load_checkpoint`` reads them with ``torch.load(weights_only=True)``, which builds
tensors and plain Python types only and refuses anything else (a pickled call would run code). The one
exception is what checkpoints written before the random states were stored as tensors hold: numpy's
random state, a ``uint32`` array, whose exact globals are allowed while loading.
"""
from __future__ import annotations

import os
import pickle
import re
import shutil
from typing import Any

import numpy as np
import torch

from ..utils.misc import atomic_write

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint", "copy_checkpoint", "remap_state_dict",
           "is_none_path"]


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or lacks a key."""


def is_none_path(path: Any) -> bool:
    """True for ``None`` and the string ``'None'`` (what ``--options weight=None`` yields)."""
    return path is None or (isinstance(path, str) and path.strip() in ("", "None"))


def _legacy_numpy_globals() -> list:
    """Exactly the globals of a pickled ``np.random.get_state()`` (a ``uint32`` array), under numpy 2's and
    numpy 1's module names."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return [(_reconstruct, "numpy._core.multiarray._reconstruct"),
            (_reconstruct, "numpy.core.multiarray._reconstruct"),
            np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _refused_globals(path: str, err: Exception) -> list[str]:
    """The globals ``torch.load(weights_only=True)`` refused in ``path`` ([] when ``err`` is another error)."""
    message = str(err)
    if not isinstance(err, pickle.UnpicklingError) or not ("Unsupported global" in message
                                                             or "Can only build" in message):
        return []
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            names = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 (only for the message)
        names = []
    return names or re.findall(r"GLOBAL (\S+) was not an allowed global", message) or ["a non-allowed type"]


def load_checkpoint(path: str) -> dict:
    """Read a checkpoint on the CPU; a bare state dict is wrapped as ``{"state_dict": ...}``.

    Only tensors and plain Python types are built (``torch.load(weights_only=True)``); a file holding other
    objects is refused with ``CheckpointError`` and nothing in it is executed.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        refused = _refused_globals(path, err)
        if refused:
            raise CheckpointError(
                f"checkpoint '{path}' is refused: it holds objects other than tensors and plain data "
                f"({', '.join(refused)}), and unpickling them could run code; nothing was loaded. Checkpoints "
                f"are read with torch.load(weights_only=True). If you trust the file's source, load it once "
                f"yourself with weights_only=False and torch.save only its tensors.") from None
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
