"""Every real frame in tests/fixtures/real read through the dataset classes (tests/fixtures/README.md)."""
import os
import pickle

import numpy as np
import pytest

from pointcept_distill.data import build_dataset
from pointcept_distill.data.pipelines import train_transform

KITTI_COUNTS = {"00_000000": 124668, "00_000001": 124605, "00_000002": 124478}
# train-id histograms: the raw counts in tests/fixtures/README.md through the learning map
KITTI_HIST = {
    "00_000000": {-1: 4886, 0: 4234, 7: 88, 8: 35281, 9: 3268, 10: 26360, 12: 18268, 13: 370,
                  14: 27123, 15: 1192, 16: 2964, 17: 532, 18: 102},
    "00_000001": {-1: 4799, 0: 4387, 7: 73, 8: 34101, 9: 3831, 10: 26040, 12: 19180, 13: 386,
                  14: 27116, 15: 1242, 16: 2765, 17: 585, 18: 100},
    "00_000002": {-1: 4542, 0: 4725, 7: 72, 8: 32892, 9: 4617, 10: 25524, 12: 20123, 13: 402,
                  14: 26987, 15: 1251, 16: 2585, 17: 665, 18: 93},
}
NUSCENES_TINY = "n015-2018-08-02-17-16-37+0800__LIDAR_TOP__1533201470948018.pcd.bin"
NUSCENES_FULL = "n015-2018-07-24-11-22-45+0800__LIDAR_TOP__1532402927647951.pcd.bin"


def histogram(segment: np.ndarray) -> dict[int, int]:
    ids, counts = np.unique(segment, return_counts=True)
    return dict(zip(ids.tolist(), counts.tolist()))


def test_semantic_kitti_full_scans(real_root):
    ds = build_dataset(dict(type="SemanticKITTIDataset", split="00",
                            data_root=str(real_root / "semantic_kitti")))
    assert len(ds) == 3
    for i in range(3):
        sample = ds[i]
        assert len(sample["coord"]) == KITTI_COUNTS[sample["name"]]
        assert histogram(sample["segment"]) == KITTI_HIST[sample["name"]]
        assert 0 <= sample["strength"].min() and sample["strength"].max() < 1
        road = sample["segment"] == 8
        assert -2.0 < np.median(sample["coord"][road, 2]) < -1.6


def test_semantic_kitti_full_scan_through_train_pipeline(real_root):
    ds = build_dataset(dict(type="SemanticKITTIDataset", split="00", seed=0,
                            data_root=str(real_root / "semantic_kitti"),
                            transform=train_transform("semantic_kitti")))
    out = ds[0]
    assert out["feat"].shape == (len(out["coord"]), 4) and 50000 < len(out["coord"]) < 124668


def test_semantic_kitti_mmdet3d_tiny(real_root, tmp_path):
    (tmp_path / "dataset" / "sequences").mkdir(parents=True)
    os.symlink(real_root / "semantic_kitti" / "mmdet3d_tiny" / "sequences" / "00",
               tmp_path / "dataset" / "sequences" / "00")
    sample = build_dataset(dict(type="SemanticKITTIDataset", split="00", data_root=str(tmp_path)))[0]
    # raw 0:2, 50:25, 52:1, 70:17, 71:3, 80:2 -> train ids
    assert histogram(sample["segment"]) == {-1: 3, 12: 25, 14: 17, 15: 3, 17: 2}


def nuscenes_root(tmp_path, real_root, raw: str, info: dict):
    (tmp_path / "info").mkdir()
    os.symlink(real_root / "nuscenes" / raw, tmp_path / "raw")
    with open(tmp_path / "info" / "nuscenes_infos_10sweeps_val.pkl", "wb") as f:
        pickle.dump([info], f)
    return build_dataset(dict(type="NuScenesDataset", split="val", data_root=str(tmp_path)))


def test_nuscenes_mmdet3d_tiny_via_pointcept_info(real_root, tmp_path):
    token = "5f6c1e0a0c3b444b97e78d2aa3fa34d2"
    ds = nuscenes_root(tmp_path, real_root, "mmdet3d_tiny", dict(
        lidar_path=f"samples/LIDAR_TOP/{NUSCENES_TINY}", lidar_token=token,
        gt_segment_path=f"lidarseg/v1.0-trainval/{token}_lidarseg.bin"))
    sample = ds[0]
    assert sample["name"] == token and len(sample["coord"]) == 40
    assert histogram(sample["segment"]) == {-1: 9, 3: 2, 10: 15, 13: 1, 14: 12, 15: 1}
    intensity = sample["strength"][:, 0] * 255
    np.testing.assert_allclose(intensity, np.round(intensity), atol=1e-3)
    assert 1 <= intensity.min() and intensity.max() <= 79.01


def test_nuscenes_unlabeled_full_frame(real_root, tmp_path):
    ds = nuscenes_root(tmp_path, real_root, "unlabeled_full_frame", dict(
        lidar_path=f"samples/LIDAR_TOP/{NUSCENES_FULL}", lidar_token="9d9bf11fb0e144c8b446d54a8a00184f"))
    sample = ds[0]
    assert len(sample["coord"]) == 34688
    assert (sample["segment"] == -1).all()
    assert 0 <= sample["strength"].min() and sample["strength"].max() <= 1
