"""Scalar writers of a training run: TensorBoard always, Weights & Biases with ``enable_wandb=True``.

Hooks write through ``trainer.writer.add_scalar(tag, value, step)`` (TensorBoard's ``SummaryWriter`` API);
with wandb on, the trainer's writer is a ``MultiWriter`` that hands every scalar to both, so the two hold the
same tags, steps and values. ``wandb`` is optional (the ``wandb`` extra) and imported only here, when asked for.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

__all__ = ["require_wandb", "WandbWriter", "MultiWriter", "wandb_run_name"]


def require_wandb() -> Any:
    """The ``wandb`` module, or an ImportError that says how to install it or switch it off."""
    try:
        import wandb
    except ImportError as err:
        raise ImportError(
            "enable_wandb=True needs the wandb package, which is not installed: pip install -e \".[wandb]\" "
            "(or pip install wandb), or set enable_wandb=False (e.g. scripts/train.sh ... -- enable_wandb=False) "
            "to log to TensorBoard only") from err
    return wandb


def wandb_run_name(save_path: str) -> str:
    """Pointcept's run name ``<dataset>/<experiment>`` from ``exp/<dataset>/<experiment>``."""
    path = os.path.normpath(os.path.abspath(save_path))
    return f"{os.path.basename(os.path.dirname(path))}/{os.path.basename(path)}"


class WandbWriter:
    """``add_scalar`` / ``flush`` / ``close`` onto a wandb run.

    Each tag is plotted against its own step metric ``<tag>_step`` (``define_metric``): the iteration tags
    (``params/lr``, ``train_batch/*``) and the epoch tags (``train/*``, ``val/*``) interleave, which wandb's
    single monotonic ``step`` cannot hold. So every scalar keeps the step TensorBoard gets.

    Args:
        cfg: the run config (``wandb_project``, ``wandb_key``, ``save_path``; logged as the run's config).
    """

    def __init__(self, cfg: Any) -> None:
        self.wandb = require_wandb()
        if cfg.get("wandb_key"):
            self.wandb.login(key=cfg.wandb_key)
        config = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
        self.run = self.wandb.init(project=cfg.get("wandb_project") or "pointcept",
                                   name=wandb_run_name(cfg.save_path), dir=cfg.save_path, config=config)
        self._defined: set[str] = set()

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if tag not in self._defined:
            self.wandb.define_metric(f"{tag}_step", hidden=True)
            self.wandb.define_metric(tag, step_metric=f"{tag}_step")
            self._defined.add(tag)
        self.wandb.log({tag: float(value), f"{tag}_step": int(step)})

    def flush(self) -> None:
        """Nothing to do: wandb sends in the background."""

    def close(self) -> None:
        self.run.finish()


class MultiWriter:
    """Hands every call to each of ``writers`` (TensorBoard's ``SummaryWriter`` API)."""

    def __init__(self, writers: Sequence[Any]) -> None:
        self.writers = list(writers)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        for writer in self.writers:
            writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        for writer in self.writers:
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
