"""One-to-one matching of teacher and student points by their (batch, voxel) key.

Both models pool the same input voxels with the same strides, so a stage holds the same voxel set in each,
but each model serialises (and so orders) its points independently: comparing features index by index is
wrong (the official code's bug). Sorting both sides by one key puts them in the same order.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["voxel_keys", "match_by_voxel"]

_AXIS_BITS = 16  # PTv3 serialisation depth is at most 16 bits per axis


def voxel_keys(grid_coord: Tensor, batch: Tensor) -> Tensor:
    """(N,3) int voxel coordinates and (N,) batch index -> (N,) int64 keys ordered by batch first."""
    g = grid_coord.long()
    return ((batch.long() << (3 * _AXIS_BITS)) | (g[:, 0] << (2 * _AXIS_BITS))
            | (g[:, 1] << _AXIS_BITS) | g[:, 2])


def match_by_voxel(key_student: Tensor, key_teacher: Tensor, check: bool = True) -> tuple[Tensor, Tensor]:
    """Permutations putting both point sets in one (batch, voxel) order.

    Returns ``(idx_s, idx_t)`` with ``key_student[idx_s] == key_teacher[idx_t]`` element-wise.
    ``check`` verifies that the sets agree (one host sync); a mismatch means the two models do not pool
    alike (different strides or grid sizes) and raises.
    """
    if key_student.shape != key_teacher.shape:
        raise ValueError(f"match_by_voxel: student has {key_student.numel()} points at this stage, "
                         f"teacher {key_teacher.numel()}: the models must share strides and grid size")
    sorted_s, idx_s = torch.sort(key_student)
    sorted_t, idx_t = torch.sort(key_teacher)
    if check and not torch.equal(sorted_s, sorted_t):
        raise ValueError("match_by_voxel: teacher and student voxel sets differ at this stage "
                         "(do both models use the same stride and input grid?)")
    return idx_s, idx_t
