"""Writers of simulated sweeps in each dataset's exact on-disk layout and raw label ids.

- nuScenes: ``raw/samples/LIDAR_TOP/<log>__LIDAR_TOP__<usec>.pcd.bin`` (float32 x5, sensor frame x right,
  y forward; 32-point columns, ring 0 lowest), ``raw/lidarseg/v1.0-trainval/<token>_lidarseg.bin``
  (uint8 general ids) and Pointcept's ``info/nuscenes_infos_10sweeps_<split>.pkl`` (list of dicts).
- SemanticKITTI: ``dataset/sequences/<SS>/velodyne/<FFFFFF>.bin`` (float32 x4, x forward, y left,
  origin at the sensor; beam by beam) and ``labels/<FFFFFF>.label`` (uint32, instance << 16 | id).
- Waymo: ``<split>/<segment>/<timestamp>/{coord,strength,segment,pose}.npy`` (vehicle frame, z = 0 on
  the ground; strength = tanh(intensity); segment = type - 1 as int32).
"""
from __future__ import annotations

import os
import pickle

import numpy as np

from .classes import THINGS, SimClass
from .lidar import Scan
from .profiles import SensorProfile

__all__ = ["FrameWriter", "NuScenesWriter", "SemanticKITTIWriter", "WaymoWriter", "WRITERS",
           "vehicle_frame"]

KITTI_SEQUENCES = {"train": (0, 1, 2, 3, 4, 5, 6, 7, 9, 10), "val": (8,)}


def vehicle_frame(scan: Scan, sensor_height: float = 0.0) -> np.ndarray:
    """Points in the sensor's axes (x forward, y left, z up: tilted with the car), ``sensor_height`` added to z
    (0: the sensor's frame; its height over the ground: a vehicle frame with z = 0 on the ground)."""
    rel = (scan.points - scan.origin) @ scan.rotation                # rotation: sensor axes -> street axes
    rel[:, 2] += sensor_height
    return rel


def labelled(profile: SensorProfile, scan: Scan) -> np.ndarray:
    """(N,) whether a point lies within the profile's ``label_range`` of the sensor (all points without one)."""
    if profile.label_range is None:
        return np.ones(len(scan.points), dtype=bool)
    return np.linalg.norm(scan.points - scan.origin, axis=1) <= profile.label_range


def raw_labels(profile: SensorProfile, scan: Scan, within: np.ndarray | None = None) -> np.ndarray:
    """Raw dataset ids of the points (moving objects through ``profile.moving_ids``); points beyond the
    profile's ``label_range`` get the id of no class (unlabelled). ``within``: ``labelled(profile, scan)`` when
    the caller has it."""
    still, moving = profile.raw_table(False), profile.raw_table(True)
    raw = np.where(scan.moving, moving[scan.cls], still[scan.cls])
    return np.where(labelled(profile, scan) if within is None else within, raw, still[SimClass.NONE])


class FrameWriter:
    """Writes the frames of one split; ``close()`` writes any split-level index."""

    def __init__(self, profile: SensorProfile, root: str, split: str, rng: np.random.Generator) -> None:
        self.profile, self.root, self.split, self.rng = profile, root, split, rng
        self.count = 0

    def write(self, scan: Scan) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the split (default: nothing to index)."""


class NuScenesWriter(FrameWriter):
    split_names = {"train": "train", "val": "val"}

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.infos: list[dict] = []
        self.log = f"n015-2026-01-{1 + int(self.rng.integers(28)):02d}-12-00-00+0800"
        self.time_us = 1767225600000000 + int(self.rng.integers(10 ** 9))

    def write(self, scan: Scan) -> str:
        points = vehicle_frame(scan)
        order = np.lexsort((-scan.beam, scan.column))  # 32-point columns, lowest beam first
        ring = (self.profile.beams - 1 - scan.beam)[order]
        intensity = np.clip(np.round(scan.intensity * self.profile.intensity_gain), 0, 255)[order]
        xyz = np.stack([-points[:, 1], points[:, 0], points[:, 2]], 1)[order]
        record = np.concatenate([xyz, intensity[:, None], ring[:, None]], 1).astype(np.float32)
        token = "".join(f"{v:02x}" for v in self.rng.integers(0, 256, 16))
        self.time_us += 500000
        lidar_path = f"samples/LIDAR_TOP/{self.log}__LIDAR_TOP__{self.time_us}.pcd.bin"
        seg_path = f"lidarseg/v1.0-trainval/{token}_lidarseg.bin"
        for rel, data in ((lidar_path, record), (seg_path, raw_labels(self.profile, scan)[order]
                                                  .astype(np.uint8))):
            path = os.path.join(self.root, "raw", rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            data.tofile(path)
        self.infos.append(dict(lidar_path=lidar_path, lidar_token=token, gt_segment_path=seg_path,
                               token="".join(f"{v:02x}" for v in self.rng.integers(0, 256, 16)),
                               timestamp=self.time_us, sweeps=[], ref_from_car=np.eye(4),
                               car_from_global=np.eye(4)))
        self.count += 1
        return lidar_path

    def close(self) -> None:
        path = os.path.join(self.root, "info", f"nuscenes_infos_10sweeps_{self.split}.pkl")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            pickle.dump(self.infos, f)


class SemanticKITTIWriter(FrameWriter):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.sequences = KITTI_SEQUENCES[self.split]
        self.frames = {seq: 0 for seq in self.sequences}
        for seq in self.sequences:
            for sub in ("velodyne", "labels"):
                os.makedirs(self._dir(seq, sub), exist_ok=True)

    def _dir(self, seq: int, sub: str) -> str:
        return os.path.join(self.root, "dataset", "sequences", f"{seq:02d}", sub)

    def write(self, scan: Scan) -> str:
        seq = self.sequences[self.count % len(self.sequences)]
        frame = self.frames[seq]
        self.frames[seq] += 1
        self.count += 1
        points = vehicle_frame(scan)
        remission = np.round(np.clip(self.profile.intensity_gain * np.sqrt(scan.intensity), 0, 0.99), 2)
        record = np.concatenate([points, remission[:, None]], 1).astype(np.float32)
        within = labelled(self.profile, scan)
        things = np.isin(scan.cls, list(THINGS)) & within
        label = raw_labels(self.profile, scan, within).astype(np.uint32)
        label |= (np.where(things, scan.instance, 0).astype(np.uint32) & 0xFFFF) << 16
        scan_path = os.path.join(self._dir(seq, "velodyne"), f"{frame:06d}.bin")
        record.tofile(scan_path)
        label.tofile(os.path.join(self._dir(seq, "labels"), f"{frame:06d}.label"))
        return scan_path


class WaymoWriter(FrameWriter):
    split_names = {"train": "training", "val": "validation"}
    frames_per_segment = 5

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.segment = ""
        self.time_us = 0

    def write(self, scan: Scan) -> str:
        if self.count % self.frames_per_segment == 0:
            ident = int(self.rng.integers(10 ** 15, 10 ** 16))
            start = 1000 + self.count
            self.segment = f"segment-{ident}_{start}_000_{start + 20}_000_with_camera_labels"
            self.time_us = 1500000000000000 + int(self.rng.integers(10 ** 12))
        self.time_us += 100000
        folder = os.path.join(self.root, self.split_names[self.split], self.segment, str(self.time_us))
        os.makedirs(folder, exist_ok=True)
        pose = np.eye(4, dtype=np.float32)
        pose[:2, 3] = scan.origin[:2]
        coord = vehicle_frame(scan, scan.origin[2] - scan.ground_z)           # z = 0 on the ground under the car
        np.save(os.path.join(folder, "coord.npy"), coord.astype(np.float32))
        strength = np.tanh(self.profile.intensity_gain * scan.intensity)[:, None].astype(np.float32)
        np.save(os.path.join(folder, "strength.npy"), strength)
        np.save(os.path.join(folder, "segment.npy"), (raw_labels(self.profile, scan) - 1).astype(np.int32))
        np.save(os.path.join(folder, "pose.npy"), pose)
        self.count += 1
        return folder


WRITERS = {"nuscenes": NuScenesWriter, "semantic_kitti": SemanticKITTIWriter, "waymo": WaymoWriter}
