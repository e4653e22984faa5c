"""Submanifold sparse convolution on voxel sets, with spconv's parameter layout and indice_key caching."""
from .conv import GATHER_MAX_ROWS, SubMConv3d, spconv_available, uses_spconv
from .kernel_map import build_kernel_map, kernel_offsets
from .tensor import SparseConvTensor

__all__ = ["GATHER_MAX_ROWS", "SparseConvTensor", "SubMConv3d", "build_kernel_map", "kernel_offsets",
           "spconv_available", "uses_spconv"]
