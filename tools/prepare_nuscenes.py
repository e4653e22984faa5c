"""Write Pointcept's nuScenes info files from the official nuScenes download (numpy + json only).

    python tools/prepare_nuscenes.py --dataset-root /data/sets/nuscenes --output-root data/nuscenes \\
        --split-file splits.py                       # v1.0-trainval (+ v1.0-test when present)
    python tools/prepare_nuscenes.py --dataset-root /data/sets/nuscenes-mini --output-root data/nuscenes \\
        --version mini                               # v1.0-mini, its official mini_train / mini_val

Reads the ``v1.0-*`` JSON tables (scene, sample, sample_data, calibrated_sensor, sensor, ego_pose,
lidarseg, category) of ``--dataset-root``, which also holds ``samples/``, ``sweeps/`` and ``lidarseg/``,
and writes ``<output-root>/info/nuscenes_infos_<N>sweeps_{train,val,test}.pkl``: Pointcept's info format
(a pickled list of dicts, one per LIDAR_TOP key frame, paths relative to the nuScenes root), which
``NuScenesDataset`` reads through ``<output-root>/raw`` (made a symlink to ``--dataset-root`` if absent).

Per key frame: ``lidar_path``, ``lidar_token``, ``token`` (sample), ``timestamp`` (seconds),
``ref_from_car``, ``car_from_global`` (4x4), ``cam_front_path`` + ``cam_intrinsic`` (when the tables
have CAM_FRONT), ``sweeps`` (``N - 1`` earlier LIDAR_TOP sweeps, newest first, each with ``lidar_path``,
``sample_data_token``, ``transform_matrix`` (sweep sensor -> key-frame sensor), ``global_from_car``,
``car_from_current``, ``time_lag`` in seconds; padded as Pointcept pads them at a scene start) and, for
trainval/mini, ``gt_segment_path`` (the lidarseg file). Not written: the detection box fields
(``gt_boxes*``, ``gt_names``, ``num_*_pts``) and ``cams``; no segmentation dataset reads them.

Splits: nuScenes' official train/val scene lists are not shipped here. For v1.0-trainval pass
``--split-file``: nuscenes-devkit's ``python-sdk/nuscenes/utils/splits.py`` (read as text, its
``train``/``val`` lists; not imported or run) or a JSON file ``{"train": [...], "val": [...]}`` of scene
names. As in Pointcept, the scenes named in ``train`` go to ``_train.pkl`` and every other scene of
the version to ``_val.pkl``; v1.0-test key frames go to ``_test.pkl`` (no labels). v1.0-mini uses the
official ``mini_train``/``mini_val`` names below unless ``--split-file`` is given.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import pickle
import sys
from typing import Iterable

import numpy as np

# nuScenes' official v1.0-mini split (nuscenes-devkit ``nuscenes.utils.splits``)
MINI_TRAIN = ("scene-0061", "scene-0553", "scene-0655", "scene-0757", "scene-0796", "scene-1077",
              "scene-1094", "scene-1100")
MINI_VAL = ("scene-0103", "scene-0916")

# lidarseg general class names in ``category.json`` index order, which NUSCENES_LEARNING_MAP assumes
GENERAL_CLASSES = (
    "noise", "animal", "human.pedestrian.adult", "human.pedestrian.child",
    "human.pedestrian.construction_worker", "human.pedestrian.personal_mobility",
    "human.pedestrian.police_officer", "human.pedestrian.stroller", "human.pedestrian.wheelchair",
    "movable_object.barrier", "movable_object.debris", "movable_object.pushable_pullable",
    "movable_object.trafficcone", "static_object.bicycle_rack", "vehicle.bicycle", "vehicle.bus.bendy",
    "vehicle.bus.rigid", "vehicle.car", "vehicle.construction", "vehicle.emergency.ambulance",
    "vehicle.emergency.police", "vehicle.motorcycle", "vehicle.trailer", "vehicle.truck",
    "flat.driveable_surface", "flat.other", "flat.sidewalk", "flat.terrain", "static.manmade",
    "static.other", "static.vegetation", "vehicle.ego")

LIDAR, CAMERA = "LIDAR_TOP", "CAM_FRONT"
POINT_BYTES = 5 * 4   # float32 x, y, z, intensity, ring


class PrepareError(RuntimeError):
    """The download is incomplete or inconsistent; the message names what and where."""


# --------------------------------------------------------------------------------------------- geometry
def rotation(q_wxyz: Iterable[float]) -> np.ndarray:
    """3x3 rotation of a (w, x, y, z) quaternion, normalised first as nuScenes' records are."""
    w, x, y, z = np.asarray(q_wxyz, dtype=np.float64) / np.linalg.norm(np.asarray(q_wxyz, np.float64))
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def pose_matrix(record: dict, inverse: bool = False) -> np.ndarray:
    """4x4 float64 of a calibrated_sensor/ego_pose record (child -> parent frame), or its inverse."""
    r, t = rotation(record["rotation"]), np.asarray(record["translation"], dtype=np.float64)
    m = np.eye(4)
    if inverse:
        m[:3, :3], m[:3, 3] = r.T, -r.T @ t
    else:
        m[:3, :3], m[:3, 3] = r, t
    return m


# ----------------------------------------------------------------------------------------------- tables
def load_table(version_dir: str, name: str, required: bool = True) -> list[dict] | None:
    path = os.path.join(version_dir, f"{name}.json")
    if not os.path.isfile(path):
        if required:
            raise PrepareError(f"{path}: missing (extract the metadata archive of this version "
                               f"into the dataset root)")
        return None
    with open(path) as f:
        table = json.load(f)
    if not isinstance(table, list):
        raise PrepareError(f"{path}: expected a JSON list of records")
    return table


class Tables:
    """The records one version needs, indexed by token; ``key_frames[sample][channel]`` = sample_data."""

    def __init__(self, root: str, version: str, labelled: bool) -> None:
        self.version, self.dir = version, os.path.join(root, version)
        if not os.path.isdir(self.dir):
            raise PrepareError(f"{self.dir}: no such folder (the {version} metadata)")
        self.scenes = load_table(self.dir, "scene")
        self.samples = load_table(self.dir, "sample")
        self.sample_data = {r["token"]: r for r in load_table(self.dir, "sample_data")}
        self.ego_pose = {r["token"]: r for r in load_table(self.dir, "ego_pose")}
        self.calibration = {r["token"]: r for r in load_table(self.dir, "calibrated_sensor")}
        sensors = {r["token"]: r for r in load_table(self.dir, "sensor")}
        self.channel = {tok: sensors[r["sensor_token"]]["channel"] for tok, r in self.calibration.items()}
        self.key_frames: dict[str, dict[str, dict]] = {}
        for sd in self.sample_data.values():
            if sd["is_key_frame"]:
                self.key_frames.setdefault(sd["sample_token"], {})[
                    self.channel[sd["calibrated_sensor_token"]]] = sd
        self.lidarseg: dict[str, str] = {}
        if labelled:
            table = load_table(self.dir, "lidarseg", required=False)
            if table is None:
                raise PrepareError(f"{os.path.join(self.dir, 'lidarseg.json')}: missing; extract "
                                   f"nuScenes-lidarseg (lidarseg/ and its v1.0-* tables) into the root")
            self.lidarseg = {r["sample_data_token"]: r["filename"] for r in table}
            check_categories(self.dir, load_table(self.dir, "category", required=False) or [])

    def sensor(self, sample: dict, channel: str) -> dict | None:
        return self.key_frames.get(sample["token"], {}).get(channel)


def check_categories(version_dir: str, categories: list[dict]) -> None:
    """Warn when ``category.json``'s lidarseg indices differ from the order the learning map assumes."""
    indexed = {c["index"]: c["name"] for c in categories if "index" in c}
    wrong = [(i, n, GENERAL_CLASSES[i] if i < len(GENERAL_CLASSES) else None)
             for i, n in sorted(indexed.items()) if i >= len(GENERAL_CLASSES) or GENERAL_CLASSES[i] != n]
    if wrong:
        print(f"warning: {version_dir}/category.json: lidarseg index -> name differs from the order "
              f"NUSCENES_LEARNING_MAP assumes at {wrong[:5]}; check the labels", file=sys.stderr)


# ----------------------------------------------------------------------------------------------- splits
def read_split_file(path: str, mini: bool) -> tuple[list[str], list[str] | None]:
    """(train scene names, val scene names or None) from a JSON file or nuscenes-devkit's splits.py."""
    keys = ("mini_train", "mini_val") if mini else ("train", "val")
    if path.endswith(".py"):
        # read the module's top-level ``name = [...]`` literals; nothing is imported or executed
        with open(path) as f:
            tree = ast.parse(f.read(), filename=path)
        found = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name) and node.targets[0].id in keys:
                try:
                    found[node.targets[0].id] = list(ast.literal_eval(node.value))
                except ValueError:
                    raise PrepareError(f"{path}: {node.targets[0].id} is not a literal list") from None
        data = {"train": found.get(keys[0]), "val": found.get(keys[1])}
    else:
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise PrepareError(f"{path}: expected a JSON object with 'train' (and 'val') scene lists")
    train, val = data.get("train"), data.get("val")
    if not train or not all(isinstance(s, str) for s in train):
        raise PrepareError(f"{path}: no list of train scene names ({keys[0] if path.endswith('.py') else 'train'})")
    return list(train), (list(val) if val is not None else None)


def assign_scenes(tables: Tables, train: list[str], val: list[str] | None) -> dict[str, str]:
    """scene token -> 'train' or 'val': the named train scenes, every other scene to val (Pointcept)."""
    names = {s["name"] for s in tables.scenes}
    if not names & set(train):
        raise PrepareError(f"{tables.dir}: none of the {len(train)} train scenes of the split is in "
                           f"scene.json (wrong split file for {tables.version}?)")
    unlisted = sorted(names - set(train) - set(val or ()))
    if val is not None and unlisted:
        print(f"warning: {len(unlisted)} scenes of {tables.version} are in neither split list "
              f"(e.g. {unlisted[:3]}); they go to val as in Pointcept", file=sys.stderr)
    return {s["token"]: "train" if s["name"] in set(train) else "val" for s in tables.scenes}


# ------------------------------------------------------------------------------------------------ infos
def sweep_list(tables: Tables, ref_sd: dict, ref_from_car: np.ndarray, car_from_global: np.ndarray,
               max_sweeps: int) -> list[dict]:
    """The ``max_sweeps - 1`` previous LIDAR_TOP sample_data (sweeps and earlier key frames), newest
    first; at a scene start the list is padded as Pointcept pads it: the key frame itself with
    ``transform_matrix=None`` when nothing precedes it, else copies of the oldest sweep found."""
    ref_time = 1e-6 * ref_sd["timestamp"]
    sweeps: list[dict] = []
    current = ref_sd
    while len(sweeps) < max_sweeps - 1:
        if not current["prev"]:
            if sweeps:
                sweeps.append(dict(sweeps[-1]))
            else:
                sweeps.append(dict(lidar_path=ref_sd["filename"], sample_data_token=ref_sd["token"],
                                   transform_matrix=None, time_lag=0))
            continue
        current = tables.sample_data[current["prev"]]
        global_from_car = pose_matrix(tables.ego_pose[current["ego_pose_token"]])
        car_from_current = pose_matrix(tables.calibration[current["calibrated_sensor_token"]])
        sweeps.append(dict(
            lidar_path=current["filename"], sample_data_token=current["token"],
            transform_matrix=ref_from_car @ car_from_global @ global_from_car @ car_from_current,
            global_from_car=global_from_car, car_from_current=car_from_current,
            time_lag=ref_time - 1e-6 * current["timestamp"]))
    return sweeps


def frame_info(tables: Tables, sample: dict, max_sweeps: int, labelled: bool) -> dict:
    sd = tables.sensor(sample, LIDAR)
    if sd is None:
        raise PrepareError(f"{tables.dir}: sample {sample['token']} has no {LIDAR} key frame")
    ref_from_car = pose_matrix(tables.calibration[sd["calibrated_sensor_token"]], inverse=True)
    car_from_global = pose_matrix(tables.ego_pose[sd["ego_pose_token"]], inverse=True)
    info = dict(lidar_path=sd["filename"], lidar_token=sd["token"])
    cam = tables.sensor(sample, CAMERA)
    if cam is not None:
        info["cam_front_path"] = cam["filename"]
        info["cam_intrinsic"] = np.array(tables.calibration[cam["calibrated_sensor_token"]]["camera_intrinsic"])
    info.update(token=sample["token"], sweeps=sweep_list(tables, sd, ref_from_car, car_from_global, max_sweeps),
                ref_from_car=ref_from_car, car_from_global=car_from_global, timestamp=1e-6 * sd["timestamp"])
    if labelled:
        if sd["token"] not in tables.lidarseg:
            raise PrepareError(f"{tables.dir}/lidarseg.json: no label file for key frame {sd['token']} "
                               f"({sd['filename']})")
        info["gt_segment_path"] = tables.lidarseg[sd["token"]]
    return info


def check_files(root: str, info: dict) -> str | None:
    """Why this key frame's files are unusable (missing, or labels not one per point), or None."""
    lidar = os.path.join(root, info["lidar_path"])
    if not os.path.isfile(lidar):
        return f"{lidar}: missing"
    size = os.path.getsize(lidar)
    if size % POINT_BYTES:
        return f"{lidar}: {size} bytes is not a whole number of 5-float32 points"
    if "gt_segment_path" in info:
        label = os.path.join(root, info["gt_segment_path"])
        if not os.path.isfile(label):
            return f"{label}: missing"
        if os.path.getsize(label) != size // POINT_BYTES:
            return f"{label}: {os.path.getsize(label)} labels but {lidar} has {size // POINT_BYTES} points"
    return None


def collect(root: str, tables: Tables, scene_split: dict[str, str], max_sweeps: int, labelled: bool,
            skip_incomplete: bool) -> dict[str, list[dict]]:
    """Infos per split in sample-table order; an unusable key frame raises, or with ``skip_incomplete``
    drops its whole scene (a partial download)."""
    frames: list[tuple[str, dict]] = []
    problems: dict[str, str] = {}
    for sample in tables.samples:   # the sample table's order, as Pointcept's infos
        info = frame_info(tables, sample, max_sweeps, labelled)
        problem = check_files(root, info)
        if problem and sample["scene_token"] not in problems:
            problems[sample["scene_token"]] = problem
        frames.append((sample["scene_token"], info))
    if problems:
        first = next(iter(problems.values()))
        if not skip_incomplete:
            raise PrepareError(f"{tables.version}: {len(problems)} scenes have unusable key frames, e.g. "
                               f"{first} (--skip-incomplete drops those scenes)")
        print(f"{tables.version}: skipped {len(problems)} incomplete scenes, e.g. {first}", file=sys.stderr)
    out: dict[str, list[dict]] = {}
    for scene, info in frames:
        if scene not in problems:
            out.setdefault(scene_split[scene], []).append(info)
    return out


def write_pickle(path: str, infos: list[dict]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        pickle.dump(infos, f)
    os.replace(tmp, path)


def link_raw(dataset_root: str, output_root: str) -> str:
    raw = os.path.join(output_root, "raw")
    if not os.path.lexists(raw):
        os.symlink(os.path.abspath(dataset_root), raw)
        return f"{raw} -> {os.path.abspath(dataset_root)}"
    if os.path.realpath(raw) != os.path.realpath(dataset_root):
        print(f"warning: {raw} exists and is not {dataset_root}; the infos' paths are relative to "
              f"{dataset_root}", file=sys.stderr)
    return f"{raw} (kept)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-root", required=True, help="the nuScenes root (samples/, sweeps/, v1.0-*)")
    parser.add_argument("--output-root", required=True, help="the data_root of the config, e.g. data/nuscenes")
    parser.add_argument("--version", choices=("trainval", "mini"), default=None,
                        help="trainval (v1.0-trainval + v1.0-test when present) or mini; default: "
                             "trainval if v1.0-trainval exists, else mini")
    parser.add_argument("--split-file", default=None,
                        help="nuscenes-devkit's splits.py or a JSON {'train': [...], 'val': [...]} of scene names; "
                             "required for trainval")
    parser.add_argument("--max-sweeps", type=int, default=10, help="sweeps per frame, key frame included")
    parser.add_argument("--skip-incomplete", action="store_true",
                        help="drop scenes whose key-frame files are missing (a partial download) instead of failing")
    parser.add_argument("--no-link", action="store_true", help="do not create <output-root>/raw")
    args = parser.parse_args(argv)
    if args.max_sweeps < 1:
        parser.error("--max-sweeps must be at least 1")
    version = args.version or ("trainval" if os.path.isdir(os.path.join(args.dataset_root, "v1.0-trainval"))
                               else "mini")
    try:
        if args.split_file:
            train, val = read_split_file(args.split_file, mini=version == "mini")
        elif version == "mini":
            train, val = list(MINI_TRAIN), list(MINI_VAL)
        else:
            raise PrepareError("v1.0-trainval needs --split-file: nuScenes' official train/val scene lists "
                               "(nuscenes-devkit python-sdk/nuscenes/utils/splits.py, read as text, or a JSON "
                               "{'train': [...], 'val': [...]}); see docs/real_data.md")
        plan = [(f"v1.0-{version}", True)]
        if version == "trainval" and os.path.isdir(os.path.join(args.dataset_root, "v1.0-test")):
            plan.append(("v1.0-test", False))
        written: dict[str, list[dict]] = {}
        for folder, labelled in plan:
            for split in (("train", "val") if labelled else ("test",)):   # written even when empty
                written.setdefault(split, [])
            tables = Tables(args.dataset_root, folder, labelled)
            scene_split = (assign_scenes(tables, train, val) if labelled
                           else {s["token"]: "test" for s in tables.scenes})
            for split, infos in collect(args.dataset_root, tables, scene_split, args.max_sweeps, labelled,
                                        args.skip_incomplete).items():
                written.setdefault(split, []).extend(infos)
    except PrepareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for split in ("train", "val", "test"):
        if split in written:
            path = os.path.join(args.output_root, "info", f"nuscenes_infos_{args.max_sweeps}sweeps_{split}.pkl")
            write_pickle(path, written[split])
            print(f"{split}: {len(written[split])} key frames -> {path}")
    if not args.no_link:
        print(f"raw: {link_raw(args.dataset_root, args.output_root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
