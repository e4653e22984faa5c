"""tools/sim2real.py: its statistics and scores on hand-made points, its reading of real frames (the repository's
copies) and of bad folders, and the whole protocol end to end at a tiny size."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pointcept_distill.data.semantic_kitti import KITTI_LEARNING_MAP, KITTI_NAMES
from pointcept_distill.utils.misc import intersection_and_union
from tool_modules import load_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REAL = os.path.join(ROOT, "tests", "fixtures", "real", "semantic_kitti")
SEQ00 = os.path.join(REAL, "dataset", "sequences", "00")
sim2real = load_tool("sim2real")
NAMES = list(KITTI_NAMES)


def _real_train_ids() -> np.ndarray:
    """Training ids of the labelled points of the 3 real frames, mapped here from the raw ids (-1 dropped)."""
    raw = np.concatenate([np.fromfile(os.path.join(SEQ00, "labels", f), dtype=np.uint32) & 0xFFFF
                          for f in sorted(os.listdir(os.path.join(SEQ00, "labels")))])
    ids = np.array([-1 if KITTI_LEARNING_MAP[r] is None else KITTI_LEARNING_MAP[r] for r in raw.tolist()])
    return ids[ids >= 0]


def _copy_frame(root, frame: str = "000000", seq: str = "00") -> str:
    """One real frame (scan and labels) as sequence ``seq`` of a new SemanticKITTI root; the labels' path."""
    for sub, ext in (("velodyne", "bin"), ("labels", "label")):
        os.makedirs(root / "dataset" / "sequences" / seq / sub, exist_ok=True)
        shutil.copy(os.path.join(SEQ00, sub, f"{frame}.{ext}"), root / "dataset" / "sequences" / seq / sub)
    return str(root / "dataset" / "sequences" / seq / "labels" / f"{frame}.label")


# ------------------------------------------------------------------------------------------ statistics
def test_class_statistics_of_hand_made_points():
    # class 0 (car): 3 points, class 8 (road): 2 points
    segment = np.array([0, 0, 0, 8, 8])
    remission = np.array([0.0, 0.2, 0.4, 0.1, 0.3])
    coord = np.array([[3, 0, -4], [0, 6, -8], [0, 0, -2], [1, 0, 0], [0, 2, 0]], dtype=float)
    stats = sim2real.class_statistics(segment, remission, coord, NAMES)
    assert list(stats) == ["car", "road", "all"]          # classes present, in id order, then all points
    car, road, every = stats["car"], stats["road"], stats["all"]
    assert car["points"] == 3 and car["share"] == pytest.approx(3 / 5) and road["share"] == pytest.approx(2 / 5)
    assert car["remission_median"] == pytest.approx(0.2) and car["remission_zero"] == pytest.approx(1 / 3)
    # car heights sorted -8, -4, -2: p5 sits at 0.05 * 2 = 0.1 of the way from -8 to -4, p95 at 0.9 from -4 to -2
    assert car["z_p5"] == pytest.approx(-8 + 0.1 * 4) and car["z_p95"] == pytest.approx(-4 + 0.9 * 2)
    # car ranges |(3,0,-4)| = 5, |(0,6,-8)| = 10, |(0,0,-2)| = 2: sorted 2, 5, 10; p99 at 0.98 of the way 5 -> 10
    assert car["range_median"] == pytest.approx(5) and car["range_p99"] == pytest.approx(5 + 0.98 * 5)
    assert car["range_max"] == pytest.approx(10)
    assert road["remission_zero"] == 0 and road["remission_median"] == pytest.approx(0.2)
    assert road["z_p5"] == road["z_p95"] == 0 and road["range_max"] == pytest.approx(2)
    assert every["points"] == 5 and every["share"] == 1
    assert every["remission_zero"] == pytest.approx(1 / 5) and every["range_max"] == pytest.approx(10)
    assert every["range_median"] == pytest.approx(2)    # ranges 5, 10, 2, 1, 2


def test_segmentation_scores_count_only_the_classes_present():
    names = ["a", "b", "c", "d"]
    target = np.array([0, 0, 0, 0, 0, 1, 1, 2, -1])
    pred = np.array([0, 0, 1, 0, 3, 1, 1, 2, 3])
    # a: 5 targets, predicted at 3 of them and nowhere else -> 3 / 5; b: targets 5, 6, predicted at 2, 5, 6 -> 2 / 3;
    # c: the one target, predicted only there -> 1; d: predicted once on a labelled point, never a target: absent
    # (the ignored last point counts nowhere)
    scores = sim2real.segmentation_scores(*intersection_and_union(pred, target, 4, -1), names, major_share=0.2)
    assert scores["iou_per_class"] == pytest.approx({"a": 3 / 5, "b": 2 / 3, "c": 1.0})
    assert scores["points"] == 8 and scores["share_per_class"] == pytest.approx({"a": 5 / 8, "b": 2 / 8, "c": 1 / 8})
    assert scores["accuracy"] == pytest.approx(6 / 8)
    assert scores["baseline_accuracy"] == pytest.approx(5 / 8) and scores["baseline_class"] == "a"
    assert scores["miou_present"] == pytest.approx((3 / 5 + 2 / 3 + 1) / 3)
    assert scores["major_classes"] == ["a", "b"]          # c holds 1/8 < 0.2 of the points
    assert scores["miou_major"] == pytest.approx((3 / 5 + 2 / 3) / 2)
    default = sim2real.segmentation_scores(*intersection_and_union(pred, target, 4, -1), names)
    assert default["major_classes"] == ["a", "b", "c"] and default["miou_major"] == default["miou_present"]


def test_segmentation_scores_refuse_a_set_without_labelled_points():
    with pytest.raises(ValueError, match="no labelled point"):
        sim2real.segmentation_scores(np.zeros(3), np.zeros(3), np.zeros(3), ["a", "b", "c"])


def test_perfect_and_constant_predictions_of_the_real_frames(tmp_path):
    frames = sim2real.kitti_frames(REAL, ["00"])
    assert len(frames.data_list) == 3
    labelled = _real_train_ids()
    counts = np.bincount(labelled, minlength=len(NAMES))
    common = int(np.argmax(counts))
    for kind in ("perfect", "constant"):
        for i in range(3):
            segment = frames.load_data(i)["segment"]
            pred = np.where(segment >= 0, segment, 0) if kind == "perfect" else np.full(len(segment), common)
            os.makedirs(tmp_path / kind, exist_ok=True)
            np.save(tmp_path / kind / f"{frames.get_data_name(i)}_pred.npy", pred)
    perfect = sim2real.score_predictions(frames, str(tmp_path / "perfect"), NAMES)
    assert perfect["points"] == len(labelled)
    assert perfect["accuracy"] == 1 and perfect["miou_present"] == 1 and perfect["miou_major"] == 1
    assert set(perfect["iou_per_class"]) == {NAMES[c] for c in np.flatnonzero(counts)}
    assert perfect["baseline_accuracy"] == pytest.approx(counts.max() / len(labelled))
    assert perfect["baseline_accuracy"] < 1
    # the most frequent class everywhere: accuracy is the baseline, and its IoU is its share of the points
    constant = sim2real.score_predictions(frames, str(tmp_path / "constant"), NAMES)
    assert constant["accuracy"] == pytest.approx(constant["baseline_accuracy"])
    assert constant["iou_per_class"][NAMES[common]] == pytest.approx(counts[common] / len(labelled))
    assert constant["miou_present"] == pytest.approx(counts[common] / len(labelled) / np.count_nonzero(counts))


# ------------------------------------------------------------------------------------------ real frames
def test_point_sample_keeps_labelled_points_and_caps_each_frame():
    frames = sim2real.kitti_frames(REAL, ["00"])
    every = sim2real.point_sample(frames, 10 ** 7, seed=0)
    labelled = _real_train_ids()
    assert len(every["segment"]) == len(labelled)
    assert np.array_equal(np.bincount(every["segment"], minlength=19), np.bincount(labelled, minlength=19))
    assert every["coord"].shape == (len(labelled), 3) and every["strength"].shape[0] == len(labelled)
    few = sim2real.point_sample(frames, 300, seed=0)
    assert len(few["segment"]) == 300 and few["segment"].min() >= 0      # 100 labelled points of each frame


def test_labelled_sequences_skip_sequences_without_labels(tmp_path):
    _copy_frame(tmp_path, seq="03")
    os.makedirs(tmp_path / "dataset" / "sequences" / "11" / "velodyne")   # a test sequence: scans, no labels
    assert sim2real.labelled_sequences(str(tmp_path)) == ["03"]
    with pytest.raises(FileNotFoundError, match="no labelled sequence"):
        sim2real.labelled_sequences(str(tmp_path / "dataset" / "sequences" / "11"))


def test_a_missing_real_folder_ends_before_training(tmp_path):
    missing = tmp_path / "no_such_root"
    with pytest.raises(SystemExit, match=f"{missing}: no such folder"):
        sim2real.main(["--seed", "0", "--real", str(missing), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()                  # nothing simulated or trained


def test_a_label_file_of_another_length_is_named(tmp_path):
    label = _copy_frame(tmp_path / "real")
    labels = np.fromfile(label, dtype=np.uint32)
    labels[:-1].tofile(label)
    with pytest.raises(SystemExit, match=f"{label}: {len(labels) - 1} labels but .*000000.bin has {len(labels)}"):
        sim2real.main(["--seed", "0", "--real", str(tmp_path / "real"), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_settings_below_one_are_refused():
    with pytest.raises(SystemExit):
        sim2real.parse_args(["--seed", "0", "--epochs", "0"])


def test_the_default_protocol_is_420_steps_of_full_resolution_scans(tmp_path):
    args = sim2real.parse_args(["--seed", "0"])
    assert (args.scale, args.grid, args.train_frames, args.val_frames, args.epochs) == (1, 0.1, 120, 8, 7)
    cfg = sim2real.build_config(args.seed, args.epochs, args.train_frames, str(tmp_path), "sim", args.grid)
    assert cfg.batch_size == 2 and args.epochs * args.train_frames // cfg.batch_size == 420


def test_grid_sets_the_voxels_of_the_model_input_in_training_and_testing(tmp_path):
    args = sim2real.parse_args(["--seed", "0", "--grid", "0.2"])
    data = sim2real.build_config(args.seed, args.epochs, args.train_frames, str(tmp_path), "sim", args.grid).data
    grid_samples = {split: [t for t in data[split].transform if t.type == "GridSample"]
                    for split in ("train", "val", "test")}
    assert [t.grid_size for t in grid_samples["train"]] == [0.2]
    assert [t.grid_size for t in grid_samples["val"]] == [0.2]          # the single-pass test's pipeline
    assert data.test.test_cfg.voxelize.grid_size == 0.2                 # fragment voting's voxels
    assert [t.grid_size for t in grid_samples["test"]] == [0.025]       # pre-thinning, not the model's voxels
    with pytest.raises(SystemExit):
        sim2real.parse_args(["--seed", "0", "--grid", "0"])


def test_lr_sets_the_peak_rate_of_every_parameter_group(tmp_path):
    """``--lr`` reaches the optimizer's groups (the attention blocks' group too, which the config trains at a tenth)
    and the one-cycle schedule's peaks; without it the config's rates stay."""
    import pointcept_distill.models  # noqa: F401  (registers the model)
    from pointcept_distill.models import build_model
    from pointcept_distill.utils.optimizer import build_optimizer

    def group_lrs(lr):
        args = sim2real.parse_args(["--seed", "0"] + ([] if lr is None else ["--lr", str(lr)]))
        cfg = sim2real.build_config(args.seed, args.epochs, args.train_frames, str(tmp_path), "sim", args.grid, args.lr)
        optimizer = build_optimizer(cfg.optimizer, build_model(cfg.model), cfg.get("param_dicts"))
        return sorted({g["lr"] for g in optimizer.param_groups}), cfg.scheduler.max_lr

    assert group_lrs(None) == ([0.0002, 0.002], [0.002, 0.0002])
    assert group_lrs(0.01) == ([0.01], [0.01, 0.01])
    with pytest.raises(SystemExit):
        sim2real.parse_args(["--seed", "0", "--lr", "0"])


# ------------------------------------------------------------------------------------------ tables
def test_statistics_table_shows_each_class_of_either_set():
    sim = sim2real.class_statistics(np.array([0, 0]), np.array([0.5, 0.5]), np.zeros((2, 3)), NAMES)
    real = sim2real.class_statistics(np.array([8]), np.array([0.0]), np.array([[0, 0, -1.5]]), NAMES)
    rows = {line.split(" | ")[0].strip("| "): line for line in sim2real.statistics_table(sim, real).splitlines()}
    assert rows["car"].split(" | ")[1:3] == ["100.0 / -", "0.50 / -"]       # share %, remission median
    assert rows["road"].split(" | ")[1:4] == ["- / 100.0", "- / 0.00", "- / 100.0"]   # ... zero returns %
    assert list(rows)[-1] == "all" and rows["all"].split(" | ")[1] == "100.0 / 100.0"


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_end_to_end_at_a_tiny_size(tmp_path):
    report_file = tmp_path / "report" / "sim2real.json"
    cmd = [sys.executable, os.path.join(ROOT, "tools", "sim2real.py"), "--seed", "3", "--train-frames", "2",
           "--val-frames", "1", "--epochs", "1", "--scale", "0.05", "--out", str(tmp_path / "out"),
           "--json", str(report_file)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert report == json.loads((tmp_path / "out" / "sim2real.json").read_text())
    for key in ("accuracy", "baseline_accuracy", "miou_present", "miou_major"):
        assert 0 <= report[key] <= 1 and 0 <= report["sim_val"][key] <= 1, key
    labelled = _real_train_ids()
    counts = np.bincount(labelled, minlength=len(NAMES))
    assert report["points"] == len(labelled) and report["settings"]["frames"] == 3
    assert report["settings"]["grid"] == 0.1 and "grid 0.1 m" in proc.stdout      # the default voxel size
    assert report["baseline_accuracy"] == pytest.approx(counts.max() / len(labelled))
    assert set(report["iou_per_class"]) == {NAMES[c] for c in np.flatnonzero(counts)}
    major = [n for n, s in report["share_per_class"].items() if s >= 0.01]
    assert report["major_classes"] == major
    assert report["miou_major"] == pytest.approx(np.mean([report["iou_per_class"][n] for n in major]))
    assert report["miou_present"] == pytest.approx(np.mean(list(report["iou_per_class"].values())))
    for key in ("sim", "real"):
        stats = report["statistics"][key]
        assert stats["all"]["share"] == 1
        assert math.isclose(sum(s["share"] for n, s in stats.items() if n != "all"), 1, rel_tol=1e-9)
        for s in stats.values():
            assert 0 <= s["remission_zero"] <= 1 and s["z_p5"] <= s["z_p95"]
            assert 0 <= s["range_median"] <= s["range_p99"] <= s["range_max"]
    assert report["statistics"]["real"]["all"]["points"] == len(labelled)
    assert (tmp_path / "out" / "train" / "model" / "model_last.pth").is_file()
    assert len(list((tmp_path / "out" / "test" / "real" / "result").glob("00_*_pred.npy"))) == 3
    assert "| accuracy |" in proc.stdout and "| all |" in proc.stdout
