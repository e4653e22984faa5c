"""tools/prepare_nuscenes.py on a small tree in the official nuScenes layout (JSON tables, samples/,
sweeps/, lidarseg/) that the test writes: the info files load through NuScenesDataset with the generated
points, labels, counts, splits and transforms."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

import pointcept_distill.data  # noqa: F401
from pointcept_distill.data import build_dataset
from pointcept_distill.data.nuscenes import NUSCENES_LEARNING_MAP
from tool_modules import load_tool

prep = load_tool("prepare_nuscenes")

LOG = "n015-2018-07-24-11-22-45+0800"


def quaternion(yaw: float, roll: float = 0.0) -> list[float]:
    """(w, x, y, z) of ``rot(yaw, roll)``: the product of the z and x half-angle quaternions."""
    cz, sz, cx, sx = np.cos(yaw / 2), np.sin(yaw / 2), np.cos(roll / 2), np.sin(roll / 2)
    return [cz * cx, cz * sx, sz * sx, sz * cx]


def rot(yaw: float, roll: float = 0.0) -> np.ndarray:
    """Rotation by ``roll`` about x, then by ``yaw`` about z."""
    c, s, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(roll), np.sin(roll)
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    return rz @ rx


def homogeneous(r: np.ndarray, t) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r, t
    return m


class Tree:
    """Writes a nuScenes-layout root; ``truth`` keeps what each LIDAR_TOP sample_data was made of."""

    def __init__(self, root, seed: int = 0) -> None:
        self.root, self.rng = str(root), np.random.default_rng(seed)
        self.truth: dict[str, dict] = {}    # sample_data token -> dict(points, labels, sensor_from_world, time)
        self.n = 0
        self.time = 1532402927000000
        self.car_from_sensor: dict[str, np.ndarray] = {}   # calibrated_sensor token -> 4x4
        self.version_name = ""

    def token(self) -> str:
        self.n += 1
        return f"{self.n:032x}"

    def write_version(self, version: str, scenes: list[tuple[str, int]], labelled: bool,
                      sweeps_between: int = 2, camera: bool = True) -> None:
        self.version_name = version
        t = {k: [] for k in ("scene", "sample", "sample_data", "ego_pose", "calibrated_sensor", "sensor",
                             "lidarseg", "category", "log")}
        lidar_sensor, cam_sensor = self.token(), self.token()
        t["sensor"] += [dict(token=lidar_sensor, channel="LIDAR_TOP", modality="lidar"),
                        dict(token=cam_sensor, channel="CAM_FRONT", modality="camera")]
        t["category"] = [dict(token=self.token(), name=n, description="", index=i)
                         for i, n in enumerate(prep.GENERAL_CLASSES)]
        log = self.token()
        t["log"].append(dict(token=log, logfile=LOG, vehicle="n015", location="singapore-onenorth"))
        for name, key_frames in scenes:
            scene_tok = self.token()
            # one calibration per scene (as per car): a yawed, slightly rolled lidar 1.8 m up
            angles = self.rng.uniform(-np.pi, np.pi), self.rng.uniform(-0.05, 0.05)
            calib = dict(token=self.token(), sensor_token=lidar_sensor,
                         translation=self.rng.uniform(-1, 1, 3).round(3).tolist(),
                         rotation=quaternion(*angles), camera_intrinsic=[])
            self.car_from_sensor[calib["token"]] = homogeneous(rot(*angles), calib["translation"])
            cam_calib = dict(token=self.token(), sensor_token=cam_sensor, translation=[1.7, 0.0, 1.5],
                             rotation=[0.5, -0.5, 0.5, -0.5],
                             camera_intrinsic=[[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])
            t["calibrated_sensor"] += [calib, cam_calib]
            samples, prev_sd, prev_cam = [], "", ""
            for k in range(key_frames):
                sample = dict(token=self.token(), timestamp=0, prev=samples[-1]["token"] if samples else "",
                              next="", scene_token=scene_tok)
                if samples:
                    samples[-1]["next"] = sample["token"]
                samples.append(sample)
                for j in range(sweeps_between + 1 if k else 1):
                    key = j == (sweeps_between if k else 0)
                    self.time += 50000
                    sd = self.lidar_frame(t, calib, sample["token"], key, labelled)
                    sd["prev"] = prev_sd
                    if prev_sd:
                        next(r for r in t["sample_data"] if r["token"] == prev_sd)["next"] = sd["token"]
                    prev_sd = sd["token"]
                    if key:
                        sample["timestamp"] = sd["timestamp"]
                if camera:
                    cam = dict(token=self.token(), sample_token=sample["token"], ego_pose_token=sd["ego_pose_token"],
                               calibrated_sensor_token=cam_calib["token"], timestamp=sd["timestamp"] + 10,
                               fileformat="jpg", is_key_frame=True, height=900, width=1600,
                               filename=f"samples/CAM_FRONT/{LOG}__CAM_FRONT__{sd['timestamp'] + 10}.jpg",
                               prev=prev_cam, next="")
                    prev_cam = cam["token"]
                    t["sample_data"].append(cam)
            t["scene"].append(dict(token=scene_tok, log_token=log, nbr_samples=key_frames, name=name,
                                   description="", first_sample_token=samples[0]["token"],
                                   last_sample_token=samples[-1]["token"]))
            t["sample"] += samples
        folder = os.path.join(self.root, version)
        os.makedirs(folder, exist_ok=True)
        for name, records in t.items():
            if name == "lidarseg" and not labelled:
                continue
            with open(os.path.join(folder, f"{name}.json"), "w") as f:
                json.dump(records, f)

    def lidar_frame(self, t: dict, calib: dict, sample_token: str, key: bool, labelled: bool) -> dict:
        yaw = self.rng.uniform(-np.pi, np.pi)
        pose = dict(token=self.token(), timestamp=self.time,
                    rotation=quaternion(yaw),
                    translation=(self.rng.uniform(-500, 500, 2).tolist() + [0.0]))
        t["ego_pose"].append(pose)
        sd = dict(token=self.token(), sample_token=sample_token, ego_pose_token=pose["token"],
                  calibrated_sensor_token=calib["token"], timestamp=self.time, fileformat="pcd",
                  is_key_frame=key, height=0, width=0, prev="", next="")
        folder = "samples" if key else "sweeps"
        sd["filename"] = f"{folder}/LIDAR_TOP/{LOG}__LIDAR_TOP__{self.time}.pcd.bin"
        t["sample_data"].append(sd)
        # points: made in the world frame, stored in this sensor's frame
        n = int(self.rng.integers(50, 120))
        world = np.concatenate([self.rng.uniform(-600, 600, (n, 2)), self.rng.uniform(-3, 5, (n, 1))], 1)
        world_from_sensor = homogeneous(rot(yaw), pose["translation"]) @ self.car_from_sensor[calib["token"]]
        sensor_from_world = np.linalg.inv(world_from_sensor)
        xyz = (sensor_from_world[:3, :3] @ world.T).T + sensor_from_world[:3, 3]
        record = np.concatenate([xyz, self.rng.integers(0, 256, (n, 1)), self.rng.integers(0, 32, (n, 1))], 1)
        record = record.astype(np.float32)
        path = os.path.join(self.root, sd["filename"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        record.tofile(path)
        truth = dict(points=record, world=world, sensor_from_world=sensor_from_world, time=self.time)
        if key and labelled:
            labels = self.rng.integers(0, 32, n).astype(np.uint8)
            rel = f"lidarseg/{self.version_name}/{sd['token']}_lidarseg.bin"
            os.makedirs(os.path.join(self.root, os.path.dirname(rel)), exist_ok=True)
            labels.tofile(os.path.join(self.root, rel))
            t["lidarseg"].append(dict(token=self.token(), sample_data_token=sd["token"], filename=rel))
            truth.update(labels=labels, label_path=rel)
        self.truth[sd["token"]] = truth
        return sd


def make_trainval(root, seed: int = 0) -> Tree:
    tree = Tree(root, seed)
    tree.write_version("v1.0-trainval", [("scene-0001", 3), ("scene-0002", 2), ("scene-0003", 3)], labelled=True)
    tree.write_version("v1.0-test", [("scene-0077", 2)], labelled=False, camera=False)
    return tree


def split_file(tmp_path, train, val=None, py=False, name="split") -> str:
    if py:   # the devkit's splits.py shape: module-level literal lists (plus code that must not run)
        path = tmp_path / "splits.py"
        path.write_text(f"import sys\ntrain = \\\n    {train!r}\n\nval = \\\n    {val!r}\n"
                        f"mini_train = []\nraise SystemExit('executed')\n")
    else:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"train": train, **({"val": val} if val is not None else {})}))
    return str(path)


def run(argv) -> int:
    return prep.main([str(a) for a in argv])


def key_frames_of(tree: Tree, version_dir: str, scene_names) -> list[str]:
    """LIDAR_TOP key-frame tokens of the named scenes, in sample-table order."""
    with open(os.path.join(tree.root, version_dir, "scene.json")) as f:
        scenes = {s["token"] for s in json.load(f) if s["name"] in scene_names}
    with open(os.path.join(tree.root, version_dir, "sample.json")) as f:
        samples = [s["token"] for s in json.load(f) if s["scene_token"] in scenes]
    with open(os.path.join(tree.root, version_dir, "sample_data.json")) as f:
        sds = [r for r in json.load(f) if r["is_key_frame"] and r["fileformat"] == "pcd"]
    by_sample = {r["sample_token"]: r["token"] for r in sds}
    return [by_sample[s] for s in samples]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nuscenes")
    tree = make_trainval(tmp / "nuscenes")
    out = tmp / "data"
    assert run(["--dataset-root", tree.root, "--output-root", out,
                "--split-file", split_file(tmp, ["scene-0001", "scene-0003"], ["scene-0002"], py=True)]) == 0
    return tree, str(out)


def test_splits_counts_points_and_labels_load_through_the_dataset(prepared):
    tree, out = prepared
    assert os.path.realpath(os.path.join(out, "raw")) == os.path.realpath(tree.root)
    table = np.array([-1 if v is None else v for _, v in sorted(NUSCENES_LEARNING_MAP.items())])
    expected_splits = {"train": key_frames_of(tree, "v1.0-trainval", {"scene-0001", "scene-0003"}),
                       "val": key_frames_of(tree, "v1.0-trainval", {"scene-0002"}),
                       "test": key_frames_of(tree, "v1.0-test", {"scene-0077"})}
    assert [len(v) for v in expected_splits.values()] == [6, 2, 2]
    for split, tokens in expected_splits.items():
        ds = build_dataset(dict(type="NuScenesDataset", data_root=out, split=split))
        assert len(ds) == len(tokens)
        for i, token in enumerate(tokens):
            truth = tree.truth[token]
            sample = ds.get_data(i)
            assert sample["name"] == token
            np.testing.assert_array_equal(sample["coord"], truth["points"][:, :3])
            np.testing.assert_allclose(sample["strength"][:, 0], truth["points"][:, 3] / 255, rtol=1e-6)
            if split == "test":
                assert (sample["segment"] == -1).all()
            else:
                np.testing.assert_array_equal(sample["segment"], table[truth["labels"]])
                assert ds.data_list[i]["gt_segment_path"] == truth["label_path"]
    both = build_dataset(dict(type="NuScenesDataset", data_root=out, split=["train", "val"]))
    assert len(both) == 8


def test_info_fields_and_transforms_match_the_generated_poses(prepared):
    tree, out = prepared
    with open(os.path.join(out, "info", "nuscenes_infos_10sweeps_train.pkl"), "rb") as f:
        infos = pickle.load(f)
    with open(os.path.join(tree.root, "v1.0-trainval", "sample.json")) as f:
        sample_tokens = {s["token"] for s in json.load(f)}
    for info in infos:
        truth = tree.truth[info["lidar_token"]]
        assert info["lidar_path"].startswith("samples/LIDAR_TOP/") and not os.path.isabs(info["lidar_path"])
        assert info["token"] in sample_tokens
        assert info["timestamp"] == pytest.approx(truth["time"] * 1e-6)
        assert info["cam_front_path"].startswith("samples/CAM_FRONT/")
        assert info["cam_intrinsic"].shape == (3, 3) and info["cam_intrinsic"][0, 0] == pytest.approx(1266.4)
        # ref_from_car @ car_from_global takes world points into the key frame's sensor frame
        ref_from_global = info["ref_from_car"] @ info["car_from_global"]
        np.testing.assert_allclose(ref_from_global, truth["sensor_from_world"], atol=1e-9)
        assert len(info["sweeps"]) == 9
        real = [s for s in info["sweeps"] if s["transform_matrix"] is not None]
        for sweep in real:
            st = tree.truth[sweep["sample_data_token"]]
            assert sweep["lidar_path"].split("/")[0] in ("sweeps", "samples")
            # Pointcept's formula, a difference of seconds since 1970: about 2e-7 s of rounding
            assert sweep["time_lag"] == pytest.approx((truth["time"] - st["time"]) * 1e-6, abs=1e-6)
            assert sweep["time_lag"] > 0
            # the sweep's stored points, moved by transform_matrix, land where the key frame sees them
            pts = np.concatenate([st["points"][:, :3].astype(np.float64), np.ones((len(st["points"]), 1))], 1)
            moved = (sweep["transform_matrix"] @ pts.T).T[:, :3]
            seen = (truth["sensor_from_world"][:3, :3] @ st["world"].T).T + truth["sensor_from_world"][:3, 3]
            np.testing.assert_allclose(moved, seen, atol=2e-3)   # float32 storage of points ~600 m away
            np.testing.assert_allclose(sweep["global_from_car"] @ sweep["car_from_current"],
                                       np.linalg.inv(st["sensor_from_world"]), atol=1e-6)
        times = [s["time_lag"] for s in real]
        assert times == sorted(times), "sweeps go back in time, newest first"
    # scene-0001 has 3 key frames with 2 sweeps between: frame 0 has no past, frame 2 has 6 earlier records
    first, third = infos[0], infos[2]
    assert first["sweeps"][0] == dict(lidar_path=first["lidar_path"], sample_data_token=first["lidar_token"],
                                       transform_matrix=None, time_lag=0)
    assert all(s["sample_data_token"] == first["lidar_token"] for s in first["sweeps"])
    chain = [s["sample_data_token"] for s in third["sweeps"]]
    assert len(set(chain[:6])) == 6 and chain[6:] == [chain[5]] * 3     # padded with the oldest
    assert chain[2] == infos[1]["lidar_token"] and chain[5] == first["lidar_token"]
    assert [s["lidar_path"].split("/")[0] for s in third["sweeps"][:6]] == \
        ["sweeps", "sweeps", "samples", "sweeps", "sweeps", "samples"]


def test_test_split_has_no_labels_and_mini_uses_the_official_mini_split(prepared, tmp_path):
    tree, out = prepared
    with open(os.path.join(out, "info", "nuscenes_infos_10sweeps_test.pkl"), "rb") as f:
        test = pickle.load(f)
    assert len(test) == 2 and all("gt_segment_path" not in i and "cam_front_path" not in i for i in test)
    mini = Tree(tmp_path / "mini", seed=1)
    mini.write_version("v1.0-mini", [("scene-0061", 2), ("scene-0103", 3), ("scene-0553", 1)], labelled=True)
    assert run(["--dataset-root", mini.root, "--output-root", tmp_path / "data", "--max-sweeps", 3]) == 0
    assert sorted(os.listdir(tmp_path / "data" / "info")) == ["nuscenes_infos_3sweeps_train.pkl",
                                                              "nuscenes_infos_3sweeps_val.pkl"]
    train = build_dataset(dict(type="NuScenesDataset", data_root=str(tmp_path / "data"), split="train", sweeps=3))
    val = build_dataset(dict(type="NuScenesDataset", data_root=str(tmp_path / "data"), split="val", sweeps=3))
    assert [train.get_data_name(i) for i in range(len(train))] == \
        key_frames_of(mini, "v1.0-mini", {"scene-0061", "scene-0553"})
    assert [val.get_data_name(i) for i in range(len(val))] == key_frames_of(mini, "v1.0-mini", {"scene-0103"})
    assert all(len(i["sweeps"]) == 2 for i in train.data_list)


def test_inconsistent_or_incomplete_downloads_are_refused(tmp_path, capsys):
    tree = make_trainval(tmp_path / "nuscenes", seed=2)
    split = split_file(tmp_path, ["scene-0001", "scene-0003"])
    out = tmp_path / "data"
    # trainval needs the official split
    assert run(["--dataset-root", tree.root, "--output-root", out]) == 2
    assert "--split-file" in capsys.readouterr().err
    # a split file of another dataset version
    assert run(["--dataset-root", tree.root, "--output-root", out,
                "--split-file", split_file(tmp_path, ["scene-0999"], name="other")]) == 2
    assert "none of the 1 train scenes" in capsys.readouterr().err
    # a label file that is not one label per point
    victim = key_frames_of(tree, "v1.0-trainval", {"scene-0002"})[1]
    label = os.path.join(tree.root, tree.truth[victim]["label_path"])
    with open(label, "ab") as f:
        f.write(b"\x00")
    assert run(["--dataset-root", tree.root, "--output-root", out, "--split-file", split]) == 2
    err = capsys.readouterr().err
    assert tree.truth[victim]["label_path"] in err and "labels but" in err
    assert not os.path.exists(out / "info")
    # a partial download: scene-0002's key frame missing; --skip-incomplete drops that scene only
    with open(os.path.join(tree.root, "v1.0-trainval", "sample_data.json")) as f:
        path = next(r["filename"] for r in json.load(f) if r["token"] == victim)
    os.remove(os.path.join(tree.root, path))
    assert run(["--dataset-root", tree.root, "--output-root", out, "--split-file", split]) == 2
    assert path in capsys.readouterr().err
    assert run(["--dataset-root", tree.root, "--output-root", out, "--split-file", split,
                "--skip-incomplete"]) == 0
    ds = build_dataset(dict(type="NuScenesDataset", data_root=str(out), split="train"))
    assert len(ds) == 6
    with open(out / "info" / "nuscenes_infos_10sweeps_val.pkl", "rb") as f:
        assert pickle.load(f) == []
