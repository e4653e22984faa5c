"""Bad files give errors that name the file."""
import os
import pickle
import shutil

import numpy as np
import pytest

from pointcept_distill.data import build_dataset
from payloads import WritesMarker


def kitti(root, seq="00"):
    return build_dataset(dict(type="SemanticKITTIDataset", data_root=str(root), split=seq))


def write_kitti(root, points: np.ndarray, labels: np.ndarray | None, seq="00"):
    base = root / "dataset" / "sequences" / seq
    (base / "velodyne").mkdir(parents=True, exist_ok=True)
    points.astype(np.float32).tofile(base / "velodyne" / "000000.bin")
    if labels is not None:
        (base / "labels").mkdir(exist_ok=True)
        labels.astype(np.uint32).tofile(base / "labels" / "000000.label")
    return base


def test_bin_size_not_whole_records(tmp_path):
    base = write_kitti(tmp_path, np.zeros((5, 4)), np.full(5, 40))
    with open(base / "velodyne" / "000000.bin", "ab") as f:
        f.write(b"\0" * 6)
    with pytest.raises(ValueError, match=r"000000\.bin: size 86 B is not a whole number of 16 B"):
        kitti(tmp_path)[0]


def test_label_count_differs_from_points(tmp_path):
    write_kitti(tmp_path, np.zeros((5, 4)), np.full(4, 40))
    with pytest.raises(ValueError, match=r"000000\.label: 4 labels but .*000000\.bin has 5 points"):
        kitti(tmp_path)[0]


def test_label_outside_learning_map(tmp_path):
    write_kitti(tmp_path, np.zeros((3, 4)), np.array([40, 41, 40]))
    with pytest.raises(ValueError, match=r"000000\.label: label ids \[41\] are not in the learning map"):
        kitti(tmp_path)[0]


def test_missing_label_file_in_labelled_sequence(tmp_path):
    base = write_kitti(tmp_path, np.zeros((3, 4)), np.full(3, 40))
    os.remove(base / "labels" / "000000.label")
    with pytest.raises(FileNotFoundError, match=r"labels/000000\.label: no such file"):
        kitti(tmp_path)[0]


def test_unlabelled_sequence_gets_ignore(tmp_path):
    write_kitti(tmp_path, np.zeros((3, 4)), None, seq="11")
    assert kitti(tmp_path, "11")[0]["segment"].tolist() == [-1, -1, -1]


def nuscenes_root(root, n_points: int, labels: np.ndarray | None, extra_bytes: int = 0):
    (root / "raw" / "samples" / "LIDAR_TOP").mkdir(parents=True)
    (root / "raw" / "lidarseg" / "v1.0-trainval").mkdir(parents=True)
    (root / "info").mkdir()
    lidar = "samples/LIDAR_TOP/x__LIDAR_TOP__1.pcd.bin"
    points = np.zeros((n_points, 5), np.float32).tobytes() + b"\0" * extra_bytes
    (root / "raw" / lidar).write_bytes(points)
    info = {"lidar_path": lidar, "lidar_token": "tok"}
    if labels is not None:
        info["gt_segment_path"] = "lidarseg/v1.0-trainval/tok_lidarseg.bin"
        labels.astype(np.uint8).tofile(root / "raw" / info["gt_segment_path"])
    with open(root / "info" / "nuscenes_infos_10sweeps_val.pkl", "wb") as f:
        pickle.dump([info], f)
    return build_dataset(dict(type="NuScenesDataset", data_root=str(root), split="val"))


def test_nuscenes_bad_record_size(tmp_path):
    with pytest.raises(ValueError, match=r"1\.pcd\.bin: size 84 B is not a whole number of 20 B"):
        nuscenes_root(tmp_path, 4, None, extra_bytes=4)[0]


def test_nuscenes_label_id_outside_map(tmp_path):
    with pytest.raises(ValueError, match=r"tok_lidarseg\.bin: label ids \[32\]"):
        nuscenes_root(tmp_path, 2, np.array([24, 32]))[0]


def test_nuscenes_missing_label_file(tmp_path):
    ds = nuscenes_root(tmp_path, 2, np.array([24, 24]))
    os.remove(tmp_path / "raw" / "lidarseg" / "v1.0-trainval" / "tok_lidarseg.bin")
    with pytest.raises(FileNotFoundError, match=r"tok_lidarseg\.bin: no such file"):
        ds[0]


def test_nuscenes_mmdet3d_info_is_rejected_with_hint(tmp_path):
    (tmp_path / "info").mkdir()
    with open(tmp_path / "info" / "nuscenes_infos_10sweeps_val.pkl", "wb") as f:
        pickle.dump({"metainfo": {}, "data_list": []}, f)
    with pytest.raises(ValueError, match=r"nuscenes_infos_10sweeps_val\.pkl: expected Pointcept's info"):
        build_dataset(dict(type="NuScenesDataset", data_root=str(tmp_path), split="val"))


def test_nuscenes_info_that_would_run_code_is_refused(tmp_path):
    """The info pickle is data: only dicts, lists, strings, numbers and numpy arrays are built from it."""
    marker = tmp_path / "marker"
    (tmp_path / "info").mkdir()
    with open(tmp_path / "info" / "nuscenes_infos_10sweeps_val.pkl", "wb") as f:
        pickle.dump([{"lidar_path": "x.bin", "lidar_token": "tok", "note": WritesMarker(marker)}], f)
    with pytest.raises(ValueError, match=r"nuscenes_infos_10sweeps_val\.pkl: refused .*'pathlib\.Path\.write_text'"):
        build_dataset(dict(type="NuScenesDataset", data_root=str(tmp_path), split="val"))
    assert not marker.exists()


def test_nuscenes_info_with_numpy_values_loads(tmp_path):
    """What Pointcept's info files hold besides plain types: numpy arrays (float, bool, str) and scalars."""
    info = {"lidar_path": "x.bin", "lidar_token": "tok", "ref_from_car": np.eye(4), "timestamp": np.float64(1.5),
            "gt_names": np.array(["car", "pedestrian"]), "valid_flag": np.array([True, False]),
            "sweeps": [{"transform_matrix": None, "time_lag": 0.05}], "num_lidar_pts": np.int64(3)}
    (tmp_path / "info").mkdir()
    with open(tmp_path / "info" / "nuscenes_infos_10sweeps_val.pkl", "wb") as f:
        pickle.dump([info], f)
    loaded = build_dataset(dict(type="NuScenesDataset", data_root=str(tmp_path), split="val")).data_list[0]
    assert np.array_equal(loaded["ref_from_car"], np.eye(4)) and loaded["gt_names"].tolist() == ["car", "pedestrian"]
    assert loaded["timestamp"] == 1.5 and loaded["valid_flag"].dtype == bool and loaded["sweeps"][0]["time_lag"] == 0.05


def test_waymo_missing_coord_and_bad_segment(sim_root, tmp_path):
    src = sim_root("waymo") / "validation"
    shutil.copytree(src, tmp_path / "validation")
    ds = build_dataset(dict(type="WaymoDataset", data_root=str(tmp_path), split="validation"))
    frame = ds.data_list[0]
    segment = np.load(os.path.join(frame, "segment.npy"))
    np.save(os.path.join(frame, "segment.npy"), np.full_like(segment, 22))
    with pytest.raises(ValueError, match=r"segment\.npy: label ids \[22\]"):
        ds[0]
    os.remove(os.path.join(frame, "coord.npy"))
    with pytest.raises(FileNotFoundError, match=r"coord\.npy: no such file"):
        ds[0]
