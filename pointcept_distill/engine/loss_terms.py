"""The terms of a step's loss dict: ``loss`` and ``loss_*`` entries are summed into the total loss, every other
entry is only logged (``Trainer`` and the captured step share this rule)."""
from __future__ import annotations

import torch

__all__ = ["is_loss_key", "sum_losses"]


def is_loss_key(key: str) -> bool:
    """Whether a loss dict's entry is a term of the total loss: ``loss`` and ``loss_*`` (others are only logged)."""
    return key == "loss" or key.startswith("loss_")


def sum_losses(output: dict[str, torch.Tensor], source: str = "the model") -> torch.Tensor:
    """Sum of the ``loss`` and ``loss_*`` entries of a loss dict (other entries are only logged)."""
    terms = [v for k, v in output.items() if is_loss_key(k)]
    if not terms:
        raise KeyError(f"{source} returned no 'loss' or 'loss_*' entry (keys: {sorted(output)})")
    return torch.stack([t.float().reshape(()) for t in terms]).sum()
