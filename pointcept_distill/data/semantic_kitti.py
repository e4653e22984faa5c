"""``SemanticKITTIDataset``: ``data_root/dataset/sequences/<SS>/{velodyne/*.bin, labels/*.label}``.

Splits: train = 00-07, 09, 10; val = 08; test = 11-21. As an extension a split entry may also be one
sequence id (``"00"``). Every sequence of the requested splits must exist: a missing one raises naming
all missing folders (upstream fails with a bare listing error). A sequence without a ``labels`` folder
(the test sequences) gets ``ignore_index`` labels (upstream gives class 0); one with a ``labels``
folder must have a label file per scan.
"""
from __future__ import annotations

import os

import numpy as np

from .builder import DATASETS
from .defaults import DefaultDataset
from .io import apply_learning_map, build_lookup, check_count, read_labels, read_records

__all__ = ["SemanticKITTIDataset", "KITTI_NAMES", "KITTI_LEARNING_MAP", "KITTI_LEARNING_MAP_INV",
           "KITTI_SPLITS"]

KITTI_NAMES = ("car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist",
               "motorcyclist", "road", "parking", "sidewalk", "other-ground", "building", "fence",
               "vegetation", "trunk", "terrain", "pole", "traffic-sign")

KITTI_SPLITS = {"train": (0, 1, 2, 3, 4, 5, 6, 7, 9, 10), "val": (8,), "test": tuple(range(11, 22))}

# raw semantic id (lower 16 bits) -> train id (None: ignore)
KITTI_LEARNING_MAP: dict[int, int | None] = {
    0: None, 1: None, 10: 0, 11: 1, 13: 4, 15: 2, 16: 4, 18: 3, 20: 4, 30: 5, 31: 6, 32: 7,
    40: 8, 44: 9, 48: 10, 49: 11, 50: 12, 51: 13, 52: None, 60: 8, 70: 14, 71: 15, 72: 16, 80: 17,
    81: 18, 99: None, 252: 0, 253: 6, 254: 5, 255: 7, 256: 4, 257: 4, 258: 3, 259: 4,
}

# train id -> raw id written in submissions
KITTI_LEARNING_MAP_INV = {-1: -1, 0: 10, 1: 11, 2: 15, 3: 18, 4: 20, 5: 30, 6: 31, 7: 32, 8: 40, 9: 44,
                          10: 48, 11: 49, 12: 50, 13: 51, 14: 70, 15: 71, 16: 72, 17: 80, 18: 81}


@DATASETS.register_module()
class SemanticKITTIDataset(DefaultDataset):
    """SemanticKITTI scans; ``strength`` = remission as stored; ``name`` = ``"<SS>_<FFFFFF>"``."""

    dataset_name = "semantic_kitti"
    points_record_bytes = 4 * 4  # float32 x, y, z, remission

    def __init__(self, ignore_index: int = -1, **kwargs) -> None:
        self.learning_map = build_lookup(KITTI_LEARNING_MAP, ignore_index)
        super().__init__(ignore_index=ignore_index, **kwargs)

    def sequences(self) -> list[int]:
        seqs = []
        for split in self.splits:
            if split in KITTI_SPLITS:
                seqs += KITTI_SPLITS[split]
            elif split.isdigit():
                seqs.append(int(split))
            else:
                raise ValueError(f"SemanticKITTIDataset: unknown split {split!r} "
                                 f"(use {sorted(KITTI_SPLITS)} or a sequence id like '08')")
        return seqs

    def get_data_list(self) -> list[str]:
        root = os.path.join(self.data_root, "dataset", "sequences")
        folders = [os.path.join(root, f"{seq:02d}", "velodyne") for seq in self.sequences()]
        missing = [f for f in folders if not os.path.isdir(f)]
        if missing:
            raise FileNotFoundError(f"SemanticKITTIDataset: split {self.split!r} needs sequence folders "
                                    f"that are missing: {', '.join(missing)}")
        return [os.path.join(f, name) for f in folders for name in sorted(os.listdir(f))]

    def get_data_name(self, idx: int) -> str:
        path = self.data_list[idx % len(self.data_list)]
        seq = os.path.basename(os.path.dirname(os.path.dirname(path)))
        return f"{seq}_{os.path.splitext(os.path.basename(path))[0]}"

    def get_points_file(self, idx: int) -> str:
        return self.get_data_path(idx)

    def load_data(self, idx: int) -> dict[str, np.ndarray]:
        scan_path = self.data_list[idx % len(self.data_list)]
        scan = read_records(scan_path, np.float32, 4)
        seq_dir = os.path.dirname(os.path.dirname(scan_path))
        label_path = os.path.join(seq_dir, "labels",
                                  os.path.splitext(os.path.basename(scan_path))[0] + ".label")
        if os.path.isdir(os.path.join(seq_dir, "labels")):
            raw = read_labels(label_path, np.uint32)
            check_count(len(scan), len(raw), scan_path, label_path)
            segment = apply_learning_map(raw & 0xFFFF, self.learning_map, label_path)
        else:
            segment = np.full(len(scan), self.ignore_index, dtype=np.int64)
        return {"coord": scan[:, :3].copy(), "strength": scan[:, 3:4].copy(), "segment": segment}
