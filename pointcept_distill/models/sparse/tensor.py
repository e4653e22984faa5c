"""A minimal sparse voxel tensor: features, (batch, x, y, z) indices and kernel maps cached by indice_key."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["SparseConvTensor"]


class SparseConvTensor:
    """Features on a set of voxels, as spconv's ``SparseConvTensor`` (the subset PT-v3m1 uses).

    ``indice_dict`` maps an ``indice_key`` to that key's kernel map; ``replace_feature`` returns a tensor that
    shares it (and the lazily computed spatial shape), so a map built by the first convolution of a stage
    serves every later one, encoder and decoder, without being rebuilt.

    Args:
        features: (N, C) features.
        indices: (N, 4) int32 ``(batch, x, y, z)``.
        batch_size: number of samples B.
        shape_pad: margin added to the largest coordinate for ``spatial_shape`` (Pointcept: 96).
        spatial_shape: a known grid extent (any bound above every coordinate gives the same results), or
            None to compute ``max + shape_pad`` on first use.
    """

    def __init__(self, features: Tensor, indices: Tensor, batch_size: int, shape_pad: int = 96,
                 spatial_shape: list[int] | None = None, _shared: dict[str, Any] | None = None) -> None:
        self.features = features
        self.indices = indices
        self.batch_size = batch_size
        self.shape_pad = shape_pad
        self._shared = {"indice_dict": {}, "spatial_shape": spatial_shape} if _shared is None else _shared

    @property
    def indice_dict(self) -> dict[str, Any]:
        """Kernel maps by indice_key, shared by every tensor derived through ``replace_feature``."""
        return self._shared["indice_dict"]

    @property
    def spatial_shape(self) -> list[int]:
        """``max(x, y, z) + shape_pad`` per axis, Pointcept's ``sparse_shape``.

        Only spconv needs it; unless given, it is computed on first use (one host sync) and then shared.
        """
        if self._shared["spatial_shape"] is None:
            extent = torch.amax(self.indices[:, 1:], dim=0) + self.shape_pad
            self._shared["spatial_shape"] = [int(v) for v in extent.tolist()]
        return self._shared["spatial_shape"]

    def replace_feature(self, features: Tensor) -> "SparseConvTensor":
        """Same voxels and the same caches, new features."""
        return SparseConvTensor(features, self.indices, self.batch_size, self.shape_pad, _shared=self._shared)

    def __repr__(self) -> str:
        return (f"SparseConvTensor(num_voxels={self.indices.shape[0]}, channels={self.features.shape[-1]}, "
                f"batch_size={self.batch_size}, keys={sorted(self.indice_dict)})")
