"""``build_criteria``: a list of LOSSES configs -> one module that sums the weighted losses."""
from __future__ import annotations

import re

from torch import Tensor, nn

from ..builder import LOSSES

__all__ = ["Criteria", "build_criteria"]


def _term_name(cls_name: str) -> str:
    """``LovaszLoss`` -> ``loss_lovasz``; ``CrossEntropyLoss`` -> ``loss_cross_entropy``."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", cls_name).lower()
    return "loss_" + re.sub(r"_loss$", "", snake)


class Criteria(nn.Module):
    """Sum of losses built from configs; ``terms`` gives each weighted loss by name for logging.

    With no configs, ``forward`` returns ``pred`` itself (upstream's convention for models that compute
    their loss inside).

    Args:
        cfgs: list of ``dict(type=..., **kwargs)`` registered in LOSSES, or None.
    """

    def __init__(self, cfgs: list[dict] | None = None) -> None:
        super().__init__()
        self.criteria = nn.ModuleList([LOSSES.build(cfg) for cfg in (cfgs or [])])
        names: list[str] = []
        for loss in self.criteria:
            name = base = _term_name(type(loss).__name__)
            k = 1
            while name in names:
                name, k = f"{base}_{k}", k + 1
            names.append(name)
        self.names = names

    def terms(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Each weighted loss keyed ``loss_<name>`` (duplicates get ``_1``, ``_2``...)."""
        return {name: loss(pred, target) for name, loss in zip(self.names, self.criteria)}

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if len(self.criteria) == 0:
            return pred
        return sum(self.terms(pred, target).values())


def build_criteria(cfgs: list[dict] | None = None) -> Criteria:
    """Pointcept's ``build_criteria``: ``Criteria(cfgs)``."""
    return Criteria(cfgs)
