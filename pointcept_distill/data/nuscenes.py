"""``NuScenesDataset``: Pointcept's info-pickle index over the raw nuScenes files.

Layout: ``data_root/info/nuscenes_infos_{sweeps}sweeps_{split}.pkl`` (a pickled list of dicts with
``lidar_path``, optional ``gt_segment_path`` and ``lidar_token``, paths relative to ``data_root/raw``),
``raw/samples/LIDAR_TOP/*.pcd.bin`` (float32 x5: x, y, z, intensity 0-255, ring) and
``raw/lidarseg/v1.0-*/<token>_lidarseg.bin`` (uint8 general class 0-31 per point).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .builder import DATASETS
from .defaults import DefaultDataset
from .io import apply_learning_map, build_lookup, check_count, read_labels, read_pickle, read_records

__all__ = ["NuScenesDataset", "NUSCENES_NAMES", "NUSCENES_LEARNING_MAP"]

NUSCENES_NAMES = ("barrier", "bicycle", "bus", "car", "construction_vehicle", "motorcycle", "pedestrian",
                  "traffic_cone", "trailer", "truck", "driveable_surface", "other_flat", "sidewalk",
                  "terrain", "manmade", "vegetation")

# lidarseg general index -> train id (None: ignore)
NUSCENES_LEARNING_MAP: dict[int, int | None] = {
    0: None, 1: None, 2: 6, 3: 6, 4: 6, 5: None, 6: 6, 7: None, 8: None, 9: 0, 10: None, 11: None,
    12: 7, 13: None, 14: 1, 15: 2, 16: 2, 17: 3, 18: 4, 19: None, 20: None, 21: 5, 22: 8, 23: 9,
    24: 10, 25: 11, 26: 12, 27: 13, 28: 14, 29: None, 30: 15, 31: None,
}


@DATASETS.register_module()
class NuScenesDataset(DefaultDataset):
    """nuScenes lidarseg key frames; ``strength = intensity / 255``; ``sweeps`` picks the info file
    (sweeps are not aggregated, as upstream)."""

    dataset_name = "nuscenes"
    points_record_bytes = 5 * 4  # float32 x, y, z, intensity, ring

    def __init__(self, sweeps: int = 10, ignore_index: int = -1, **kwargs) -> None:
        self.sweeps = sweeps
        self.learning_map = build_lookup(NUSCENES_LEARNING_MAP, ignore_index)
        super().__init__(ignore_index=ignore_index, **kwargs)

    def info_path(self, split: str) -> str:
        return os.path.join(self.data_root, "info", f"nuscenes_infos_{self.sweeps}sweeps_{split}.pkl")

    def get_data_list(self) -> list[dict]:
        infos = []
        for split in self.splits:
            path = self.info_path(split)
            loaded = read_pickle(path)
            if not isinstance(loaded, Sequence) or not all(isinstance(i, dict) for i in loaded):
                raise ValueError(f"{path}: expected Pointcept's info format, a list of dicts "
                                 f"(got {type(loaded).__name__}; mmdet3d info files need converting)")
            for i, info in enumerate(loaded):
                missing = [k for k in ("lidar_path", "lidar_token") if k not in info]
                if missing:
                    raise KeyError(f"{path}: entry {i} lacks {missing}")
            infos += list(loaded)
        return infos

    def get_data_name(self, idx: int) -> str:
        return self.data_list[idx % len(self.data_list)]["lidar_token"]

    def get_data_path(self, idx: int) -> str:
        return os.path.join(self.data_root, "raw", self.data_list[idx % len(self.data_list)]["lidar_path"])

    def get_points_file(self, idx: int) -> str:
        return self.get_data_path(idx)

    def load_data(self, idx: int) -> dict[str, np.ndarray]:
        info = self.data_list[idx % len(self.data_list)]
        raw_root = os.path.join(self.data_root, "raw")
        lidar_path = self.get_data_path(idx)
        points = read_records(lidar_path, np.float32, 5)
        if "gt_segment_path" in info:
            label_path = os.path.join(raw_root, info["gt_segment_path"])
            raw = read_labels(label_path, np.uint8)
            check_count(len(points), len(raw), lidar_path, label_path)
            segment = apply_learning_map(raw, self.learning_map, label_path)
        else:
            segment = np.full(len(points), self.ignore_index, dtype=np.int64)
        return {"coord": points[:, :3].copy(), "strength": points[:, 3:4] / np.float32(255),
                "segment": segment}
