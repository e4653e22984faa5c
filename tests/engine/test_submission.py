"""SemSegTester(submission=True): SemanticKITTI and nuScenes-lidarseg test-server files from a test split of
simulated scans, read back (ids, counts, dtypes, layout); the writers' own checks."""
from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

import pointcept_distill.data  # noqa: F401  (registers datasets and transforms)
import pointcept_distill.models  # noqa: F401
from pointcept_distill.data import KITTI_LEARNING_MAP, KITTI_LEARNING_MAP_INV, build_dataset
from pointcept_distill.data.simulator import generate
from pointcept_distill.data.submission import NUSCENES_SUBMISSION_META, SUBMISSIONS, build_submission
from pointcept_distill.engine import TESTERS, SemSegTester, default_setup
from pointcept_distill.models import build_model
from pointcept_distill.utils.config import parse_options
from tiny_configs import tiny_config
from toy_components import ToySegmentor, toy_cfg


def _run(dataset: str, data_root: str, save_path: str, split: str, *options: str):
    """What ``scripts/test.sh ... -- test.submission=true data.test.split=<split> <options>`` runs
    (tools/test.py's ``TESTERS.build(cfg.test)``), on a random-weight tiny model."""
    cfg = tiny_config(dataset, data_root)
    cfg.merge_from_dict({"save_path": save_path, "num_worker_per_gpu": 0,
                         **parse_options(["test.submission=true", f"data.test.split={split}", *options])})
    cfg = default_setup(cfg)
    torch.manual_seed(0)
    tester = TESTERS.build(dict(cfg=cfg, model=build_model(cfg.model).eval(), **cfg.test))
    return tester, tester.test()


def _files(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_semantic_kitti_submission(tmp_path):
    root = tmp_path / "kitti"
    generate("semantic_kitti", str(root), 0, 2, seed=0, scale=0.1)
    seqs = root / "dataset" / "sequences"
    os.rename(seqs / "08", seqs / "11")           # an unlabelled test sequence: no labels/ folder
    shutil.rmtree(seqs / "11" / "labels")
    for seq in range(12, 22):                     # the rest of the test split, empty here
        os.makedirs(seqs / f"{seq}" / "velodyne")
    tester, summary = _run("semantic_kitti", str(root), str(tmp_path / "exp"), "test")
    submit = tmp_path / "exp" / "result" / "submit"
    assert _files(submit) == ["sequences/11/predictions/000000.label", "sequences/11/predictions/000001.label"]
    assert summary["num_scans"] == 2
    raw_ids = set(KITTI_LEARNING_MAP_INV.values()) - {-1}
    for frame in ("000000", "000001"):
        scan_bytes = os.path.getsize(seqs / "11" / "velodyne" / f"{frame}.bin")
        label_file = submit / "sequences" / "11" / "predictions" / f"{frame}.label"
        assert os.path.getsize(label_file) == scan_bytes // 16 * 4          # one uint32 per point of the scan
        labels = np.fromfile(label_file, dtype=np.uint32)
        assert set(np.unique(labels).tolist()) <= raw_ids                 # raw ids, never a train id like 0..7
        pred = np.load(tmp_path / "exp" / "result" / f"11_{frame}_pred.npy")
        np.testing.assert_array_equal(labels, [KITTI_LEARNING_MAP_INV[int(p)] for p in pred])
        back = np.array([KITTI_LEARNING_MAP[int(v)] for v in labels])      # what the benchmark reads back
        np.testing.assert_array_equal(back, pred)
    # a prediction that does not cover every point of the scan is refused
    with pytest.raises(ValueError, match="predictions for .* points"):
        tester.write_submission("11_000000", pred[:-1], {"num_points": len(pred)})


def _nuscenes_test_split(root) -> list[dict]:
    """The val infos as a test split: info file without labels, lidarseg files removed."""
    with open(root / "info" / "nuscenes_infos_10sweeps_val.pkl", "rb") as f:
        infos = pickle.load(f)
    for info in infos:
        os.remove(root / "raw" / info.pop("gt_segment_path"))
    with open(root / "info" / "nuscenes_infos_10sweeps_test.pkl", "wb") as f:
        pickle.dump(infos, f)
    return infos


def test_nuscenes_submission(tmp_path):
    root = tmp_path / "nuscenes"
    generate("nuscenes", str(root), 0, 2, seed=0, scale=0.1)
    infos = _nuscenes_test_split(root)
    _, summary = _run("nuscenes", str(root), str(tmp_path / "exp"), "test", "test.single_pass=true",
                      "data.val.split=test")
    submit = tmp_path / "exp" / "result" / "submit"
    tokens = [info["lidar_token"] for info in infos]
    assert _files(submit) == sorted([f"lidarseg/test/{t}_lidarseg.bin" for t in tokens] + ["test/submission.json"])
    assert json.loads((submit / "test" / "submission.json").read_text()) == {"meta": {
        "use_camera": False, "use_lidar": True, "use_radar": False, "use_map": False, "use_external": False}}
    for info in infos:
        points = os.path.getsize(root / "raw" / info["lidar_path"]) // 20     # float32 x5 per point
        path = submit / "lidarseg" / "test" / f"{info['lidar_token']}_lidarseg.bin"
        assert os.path.getsize(path) == points                               # one uint8 per point
        labels = np.fromfile(path, dtype=np.uint8)
        assert labels.min() >= 1 and labels.max() <= 16                      # the challenge's classes 1..16
        pred = np.load(tmp_path / "exp" / "result" / f"{info['lidar_token']}_pred.npy")
        np.testing.assert_array_equal(labels, pred + 1)
    assert summary["num_scans"] == 2


def test_nuscenes_val_split_goes_to_val_set_with_meta_options(tmp_path):
    root = tmp_path / "nuscenes"
    generate("nuscenes", str(root), 0, 1, seed=1, scale=0.1)
    dataset = build_dataset(dict(type="NuScenesDataset", split="val", data_root=str(root)))
    writer = build_submission(dataset, str(tmp_path / "submit"), dict(meta=dict(use_external=True)))
    writer.prepare()
    path = writer.write(dataset.get_data_name(0), np.array([0, 15, 3]))
    assert path.endswith(os.path.join("lidarseg", "val", f"{dataset.get_data_name(0)}_lidarseg.bin"))
    np.testing.assert_array_equal(np.fromfile(path, dtype=np.uint8), [1, 16, 4])
    meta = json.loads((tmp_path / "submit" / "val" / "submission.json").read_text())["meta"]
    assert meta == {**NUSCENES_SUBMISSION_META, "use_external": True}
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        writer.write("abc", np.array([0, 16]))                               # not a train id
    with pytest.raises(ValueError, match="integer"):
        writer.write("abc", np.array([0.0, 1.0]))
    with pytest.raises(KeyError, match="unknown meta"):
        build_submission(dataset, str(tmp_path / "s2"), dict(meta=dict(use_lidars=True)))


def test_kitti_writer_refuses_a_name_it_cannot_place(tmp_path):
    writer = SUBMISSIONS.get("semantic_kitti")(str(tmp_path), None)
    with pytest.raises(ValueError, match="<SS>_<FFFFFF>"):
        writer.write("scan_000001", np.zeros(3, dtype=np.int64))
    assert not os.listdir(tmp_path)


def test_dataset_without_a_format_fails_before_testing(tmp_path):
    cfg = default_setup(toy_cfg(tmp_path, data=dict(
        num_classes=4, ignore_index=-1, names=list("abcd"), train=dict(type="ToyPointDataset"),
        test=dict(type="ToyPointDataset", split="val", num_samples=2, test_mode=True))))
    with pytest.raises(KeyError, match="no benchmark submission format for ToyPointDataset"):
        SemSegTester(cfg, model=ToySegmentor().eval(), submission=True)
    assert not os.path.exists(tmp_path / "result")
