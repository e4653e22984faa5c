"""Datasets (nuScenes, SemanticKITTI, Waymo, concat), LiDAR transforms, collate and the simulator."""
from .builder import DATASETS, TRANSFORMS, build_dataset
from .cache import cached_sample, clear_cache
from .collate import collate_fn, point_collate_fn
from .concat import ConcatDataset
from .defaults import DefaultDataset
from .label_space import COMMON_NAMES, MapToCommon, TagDataset, joint_data_config
from .nuscenes import NUSCENES_LEARNING_MAP, NUSCENES_NAMES, NuScenesDataset
from .rng import sample_rng
from .semantic_kitti import (KITTI_LEARNING_MAP, KITTI_LEARNING_MAP_INV, KITTI_NAMES,
                             SemanticKITTIDataset)
from .submission import SUBMISSIONS, SubmissionWriter, build_submission
from .transforms import Compose
from .waymo import WAYMO_NAMES, WaymoDataset

__all__ = ["DATASETS", "TRANSFORMS", "build_dataset", "Compose", "collate_fn", "point_collate_fn",
           "DefaultDataset", "NuScenesDataset", "SemanticKITTIDataset", "WaymoDataset", "ConcatDataset",
           "sample_rng", "cached_sample", "clear_cache", "NUSCENES_NAMES", "NUSCENES_LEARNING_MAP",
           "KITTI_NAMES", "KITTI_LEARNING_MAP", "KITTI_LEARNING_MAP_INV", "WAYMO_NAMES",
           "COMMON_NAMES", "MapToCommon", "TagDataset", "joint_data_config", "SUBMISSIONS", "SubmissionWriter",
           "build_submission"]
