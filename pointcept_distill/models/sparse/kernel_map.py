"""Submanifold kernel maps: for every kernel offset, the row of each voxel's neighbour (or a sentinel)."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["AXIS_BITS", "build_kernel_map", "kernel_offsets"]

# Each axis gets 18 bits in the packed voxel key, the batch index the bits above (up to 511 samples).
# Coordinates are shifted by MARGIN so that neighbour offsets (|d| <= MARGIN) never leave their field.
AXIS_BITS = 18
_MARGIN = 8


def kernel_offsets(kernel_size: int, device: torch.device | None = None) -> Tensor:
    """(k^3, 3) offsets ``(a - k//2, b - k//2, c - k//2)`` in the weight's (kx, ky, kz) order."""
    r = torch.arange(kernel_size, device=device) - kernel_size // 2
    return torch.cartesian_prod(r, r, r).reshape(-1, 3)


_SHIFTS: dict[tuple[int, torch.device], Tensor] = {}


def _key_shifts(kernel_size: int, device: torch.device) -> Tensor:
    """(K,) change of the packed key for each offset, built once per kernel size and device."""
    if (kernel_size, device) not in _SHIFTS:
        offsets = kernel_offsets(kernel_size, device)
        _SHIFTS[kernel_size, device] = ((offsets[:, 0] << (2 * AXIS_BITS)) + (offsets[:, 1] << AXIS_BITS)
                                        + offsets[:, 2])
    return _SHIFTS[kernel_size, device]


def _pack(indices: Tensor) -> Tensor:
    """Pack (N, 4) ``(batch, x, y, z)`` into one int64 key per voxel (coordinates shifted by the margin)."""
    idx = indices.long()
    key = idx[:, 0]
    for axis in (1, 2, 3):
        key = (key << AXIS_BITS) | (idx[:, axis] + _MARGIN)
    return key


def build_kernel_map(indices: Tensor, kernel_size: int) -> Tensor:
    """Neighbour table of a submanifold convolution, shape (k^3, N), long.

    Entry ``[o, p]`` is the row of voxel ``p + offset_o`` in the same sample, or N when that voxel does not
    exist (the caller appends one zero row to the features). Built with one sort and a binary search per
    offset, all vectorised and free of host synchronisation.

    Args:
        indices: (N, 4) integer ``(batch, x, y, z)`` with ``0 <= x, y, z < 2**18 - 8`` and unique rows.
        kernel_size: odd kernel size k (<= 17).
    """
    if kernel_size % 2 == 0 or kernel_size > 2 * _MARGIN + 1:
        raise ValueError(f"build_kernel_map: kernel_size must be odd and <= {2 * _MARGIN + 1}, got {kernel_size}")
    n = indices.shape[0]
    keys = _pack(indices)                                               # (N,)
    sorted_keys, perm = torch.sort(keys)
    query = keys.unsqueeze(0) + _key_shifts(kernel_size, indices.device).unsqueeze(1)   # (K, N)
    pos = torch.searchsorted(sorted_keys, query).clamp_(max=max(n - 1, 0))
    found = sorted_keys[pos] == query
    return torch.where(found, perm[pos], torch.full_like(pos, n))
