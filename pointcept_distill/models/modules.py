"""``PointModule`` and ``PointSequential``: modules that pass a ``Point`` along, as Pointcept's ``modules.py``."""
from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from .masked_norm import point_batch_norm, valid_rows
from .point import Point
from .sparse import SubMConv3d

__all__ = ["DropPath", "PointModule", "PointSequential", "drop_path"]


class PointModule(nn.Module):
    """A module whose forward takes and returns a ``Point``."""


class PointSequential(PointModule):
    """Run children in order on a ``Point``; children are named "0", "1", ... unless named explicitly.

    Dispatch per child (Pointcept's rules; they shape the state-dict keys and the sparse-feature flow):
    - ``PointModule``: ``point = child(point)``;
    - ``SubMConv3d``: ``sparse_conv_feat = child(sparse_conv_feat)``, then ``feat`` takes its features;
    - any other module: ``feat = child(feat)``, and ``sparse_conv_feat`` (if present) takes the new features; a
      batch norm in training, on a Point with a padding sample (``masked_norm.valid_rows``), takes its statistics
      over the other samples' rows (``masked_norm.point_batch_norm``).

    Args:
        *args: modules (named by position) or a single OrderedDict of name -> module.
        **kwargs: modules named by keyword, added after ``args``.
    """

    def __init__(self, *args: nn.Module, **kwargs: nn.Module) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for idx, module in enumerate(args):
                self.add_module(str(idx), module)
        for name, module in kwargs.items():
            self.add_module(name, module)

    def __len__(self) -> int:
        return len(self._modules)

    def add(self, module: nn.Module, name: str | None = None) -> None:
        """Append ``module`` under ``name`` (default: the next position)."""
        if name is None:
            name = str(len(self._modules))
        if name in self._modules:
            raise KeyError(f"PointSequential: child name {name!r} already exists")
        self.add_module(name, module)

    def forward(self, point: Point) -> Point:
        for module in self._modules.values():
            if isinstance(module, PointModule):
                point = module(point)
            elif isinstance(module, SubMConv3d):
                point.sparse_conv_feat = module(point.sparse_conv_feat)
                point.feat = point.sparse_conv_feat.features
            else:
                # only a training batch norm takes batch statistics (eval: running ones, padding harmless)
                is_training_norm = isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training
                valid = valid_rows(point) if is_training_norm else None
                point.feat = module(point.feat) if valid is None else point_batch_norm(module, point.feat, valid)
                if "sparse_conv_feat" in point:
                    point.sparse_conv_feat = point.sparse_conv_feat.replace_feature(point.feat)
        return point


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Zero each row of ``x`` with probability ``p`` and scale kept rows by ``1 / (1 - p)`` (training only)."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Stochastic depth per row (per point for (N, C) features), as timm's ``DropPath``."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"

