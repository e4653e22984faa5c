"""LiDAR transforms, registered in ``TRANSFORMS`` under Pointcept's names, and ``Compose``."""
from .base import DEFAULT_INDEX_KEYS, Transform, index_operator
from .compose import Compose
from .geometry import (CenterShift, PointClip, RandomFlip, RandomJitter, RandomRotate,
                       RandomRotateTargetAngle, RandomScale, rotation_matrix)
from .grid_sample import GridSample, fnv_hash_vec, ravel_hash_vec
from .keys import Collect, Copy, ToTensor, Update
from .sphere_crop import SphereCrop

__all__ = ["Transform", "Compose", "index_operator", "DEFAULT_INDEX_KEYS", "Copy", "Update", "ToTensor",
           "Collect", "PointClip", "CenterShift", "RandomRotate", "RandomRotateTargetAngle",
           "RandomScale", "RandomFlip", "RandomJitter", "GridSample", "SphereCrop", "rotation_matrix",
           "fnv_hash_vec", "ravel_hash_vec"]
