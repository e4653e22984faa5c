import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pointcept_distill.data import build_dataset
from pointcept_distill.data.simulator import PROFILES, generate, simulate_frame

REPO = Path(__file__).parents[3]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_deterministic_given_seed(tmp_path, profile):
    generate(profile, str(tmp_path / "a"), 2, 1, seed=3, scale=0.05)
    generate(profile, str(tmp_path / "b"), 2, 1, seed=3, scale=0.05)
    generate(profile, str(tmp_path / "c"), 2, 1, seed=4, scale=0.05)
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert a == b and len(a) >= 3
    assert a != c


def test_nuscenes_layout(sim_root):
    root = sim_root("nuscenes")
    infos = pickle.loads((root / "info" / "nuscenes_infos_10sweeps_train.pkl").read_bytes())
    assert isinstance(infos, list) and len(infos) == 3
    info = infos[0]
    assert info["lidar_path"].startswith("samples/LIDAR_TOP/") and info["lidar_path"].endswith(".pcd.bin")
    assert info["gt_segment_path"] == f"lidarseg/v1.0-trainval/{info['lidar_token']}_lidarseg.bin"
    points = np.fromfile(root / "raw" / info["lidar_path"], np.float32).reshape(-1, 5)
    labels = np.fromfile(root / "raw" / info["gt_segment_path"], np.uint8)
    assert len(labels) == len(points) and labels.max() <= 31
    assert points[:32, 4].tolist() == list(range(32))  # 32-point columns, ring 0 first
    assert np.array_equal(points[:, 3], np.round(points[:, 3])) and points[:, 3].max() <= 255


def test_semantic_kitti_layout(sim_root):
    seqs = sim_root("semantic_kitti") / "dataset" / "sequences"
    assert sorted(p.name for p in seqs.iterdir()) == ["00", "01", "02", "03", "04", "05", "06", "07",
                                                      "08", "09", "10"]
    scan = np.fromfile(seqs / "00" / "velodyne" / "000000.bin", np.float32).reshape(-1, 4)
    label = np.fromfile(seqs / "00" / "labels" / "000000.label", np.uint32)
    assert len(scan) == len(label) and 0 <= scan[:, 3].min() and scan[:, 3].max() <= 0.99
    semantic, instance = label & 0xFFFF, label >> 16
    things = np.isin(semantic, [10, 11, 13, 15, 18, 20, 30, 31, 32] + list(range(252, 260)))
    assert (instance[~things] == 0).all() and (instance[things] > 0).all()


def test_waymo_layout(sim_root):
    frames = sorted((sim_root("waymo") / "training").glob("*/*"))
    assert len(frames) == 3 and frames[0].parent.name.startswith("segment-")
    coord = np.load(frames[0] / "coord.npy")
    segment = np.load(frames[0] / "segment.npy")
    strength = np.load(frames[0] / "strength.npy")
    assert coord.dtype == np.float32 and segment.dtype == np.int32 and strength.shape == (len(coord), 1)
    assert segment.min() >= -1 and segment.max() <= 21 and 0 <= strength.min() and strength.max() < 1
    assert np.load(frames[0] / "pose.npy").shape == (4, 4)


def test_profiles_differ_like_the_sensors():
    heights, rings = {}, {}
    for name in PROFILES:
        scan = simulate_frame(name, seed=0, scale=0.2)
        ground = scan.cls == 1  # road
        heights[name] = np.median(scan.origin[2] - scan.points[ground, 2])
        rings[name] = len(np.unique(scan.beam))
    assert rings == {"nuscenes": 32, "semantic_kitti": 64, "waymo": 64}
    # the mounting height per scan is within 0.10 m of the profile's; the road's crown and curve add a few cm
    assert abs(heights["nuscenes"] - 1.84) < 0.15 and abs(heights["semantic_kitti"] - 1.73) < 0.15
    assert abs(heights["waymo"] - 2.1) < 0.15
    elev = {n: (max(p.elevations_deg), min(p.elevations_deg)) for n, p in PROFILES.items()}
    assert elev["nuscenes"][1] < -30 and elev["semantic_kitti"][1] < -24 and elev["waymo"][1] > -18


def test_full_size_point_counts(tmp_path):
    generate("nuscenes", str(tmp_path / "n"), 1, 0, seed=0)
    ds = build_dataset(dict(type="NuScenesDataset", split="train", data_root=str(tmp_path / "n")))
    sample = ds[0]
    assert len(sample["coord"]) == 34688  # 1084 columns x 32 rings, as a real sweep
    assert 25000 < int((sample["segment"] != -1).sum()) < 34688
    for name in ("semantic_kitti", "waymo"):
        assert len(simulate_frame(name, seed=0).points) > 100000


def test_make_synthetic_cli(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "tools" / "make_synthetic.py"), "--profile", "waymo",
                          "--out", str(tmp_path), "--train", "1", "--val", "1", "--seed", "2",
                          "--scale", "0.05"], capture_output=True, text=True, check=True)
    assert "frames/s" in out.stdout
    assert "[make_synthetic] train 1/1 frames (all: 1/2)" in out.stdout           # progress, each split's end
    assert "[make_synthetic] val 1/1 frames (all: 2/2), about 0:00:00 left" in out.stdout
    ds = build_dataset(dict(type="WaymoDataset", split=["training", "validation"], data_root=str(tmp_path)))
    assert len(ds) == 2
