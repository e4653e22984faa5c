"""Bad values are caught where a scan enters (the dataset read), with an error naming the scan file: non-finite
coordinates or intensities, empty scans, coordinates beyond what the serialization depth holds; Waymo labels
that are missing in a labelled split or stored as floats."""
import os
import pickle
import shutil

import numpy as np
import pytest

from pointcept_distill.data import build_dataset
from pointcept_distill.data.pipelines import val_transform


def kitti_scan(root, points: np.ndarray, transform=None):
    base = root / "dataset" / "sequences" / "00"
    (base / "velodyne").mkdir(parents=True, exist_ok=True)
    (base / "labels").mkdir(exist_ok=True)
    np.asarray(points, np.float32).tofile(base / "velodyne" / "000000.bin")
    np.full(len(points), 40, np.uint32).tofile(base / "labels" / "000000.label")
    return build_dataset(dict(type="SemanticKITTIDataset", data_root=str(root), split="00", transform=transform))


def nuscenes_scan(root, points: np.ndarray, transform=None):
    (root / "raw" / "samples" / "LIDAR_TOP").mkdir(parents=True)
    (root / "info").mkdir()
    lidar = "samples/LIDAR_TOP/x__LIDAR_TOP__1.pcd.bin"
    np.asarray(points, np.float32).tofile(root / "raw" / lidar)
    with open(root / "info" / "nuscenes_infos_10sweeps_val.pkl", "wb") as f:
        pickle.dump([{"lidar_path": lidar, "lidar_token": "tok"}], f)
    return build_dataset(dict(type="NuScenesDataset", data_root=str(root), split="val", transform=transform))


def test_nan_coordinate_names_the_scan(tmp_path):
    points = np.zeros((4, 4))
    points[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"000000\.bin: 1 of 4 points have non-finite coordinates .*index 2"):
        kitti_scan(tmp_path, points)[0]


def test_inf_intensity_names_the_scan(tmp_path):
    points = np.zeros((3, 5))
    points[0, 3] = np.inf
    with pytest.raises(ValueError, match=r"1\.pcd\.bin: 1 of 3 points have a non-finite intensity .*index 0"):
        nuscenes_scan(tmp_path, points)[0]


def test_empty_scan_names_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"000000\.bin: empty scan \(0 points\)"):
        kitti_scan(tmp_path, np.zeros((0, 4)))[0]


def test_coordinates_beyond_the_serialization_depth_name_the_scan(tmp_path):
    # nuScenes' pipeline does not clip: 5 km at 5 cm voxels is 100000 voxels, above the 16 bits per axis
    points = np.zeros((3, 5))
    points[1, 0] = 5000.0
    ds = nuscenes_scan(tmp_path / "far", points, transform=val_transform("nuscenes"))
    with pytest.raises(ValueError, match=r"1\.pcd\.bin: .*grid coordinates up to \d+ .*below 65536"):
        ds[0]
    near = nuscenes_scan(tmp_path / "near", points * 0.1, transform=val_transform("nuscenes"))
    assert 9000 < int(near[0]["grid_coord"].max()) < 65536


def test_far_points_that_the_pipeline_clips_are_accepted(tmp_path):
    points = np.zeros((3, 4))
    points[:, 0] = [1.0, 5000.0, 2.0]  # the middle one is clamped to SemanticKITTI's PointClip range
    sample = kitti_scan(tmp_path, points, transform=val_transform("semantic_kitti"))[0]
    assert float(sample["coord"][:, 0].max()) == pytest.approx(35.2)


def _waymo_copy(sim_root, tmp_path, split="validation"):
    shutil.copytree(sim_root("waymo") / "validation", tmp_path / split)
    return build_dataset(dict(type="WaymoDataset", data_root=str(tmp_path), split=split))


def test_waymo_frame_without_labels_in_a_labelled_split_is_an_error(sim_root, tmp_path):
    ds = _waymo_copy(sim_root, tmp_path / "labelled")
    os.remove(os.path.join(ds.data_list[0], "segment.npy"))
    with pytest.raises(FileNotFoundError, match=r"segment\.npy: no such file.*'validation' is a labelled split"):
        ds[0]
    unlabelled = _waymo_copy(sim_root, tmp_path / "test", split="testing")
    os.remove(os.path.join(unlabelled.data_list[0], "segment.npy"))
    assert (unlabelled[0]["segment"] == -1).all()


def test_waymo_float_labels_are_an_error(sim_root, tmp_path):
    ds = _waymo_copy(sim_root, tmp_path)
    path = os.path.join(ds.data_list[0], "segment.npy")
    np.save(path, np.load(path).astype(np.float32) + 0.5)
    with pytest.raises(ValueError, match=r"segment\.npy: labels stored as float32; expected integers"):
        ds[0]
