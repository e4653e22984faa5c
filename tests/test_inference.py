"""pointcept_distill.inference: Segmenter on raw simulator scans, against the dataset path and a release."""
from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest
import torch

import pointcept_distill.data  # noqa: F401
from pointcept_distill.data import NUSCENES_NAMES, build_dataset, collate_fn
from pointcept_distill.data.simulator import generate
from pointcept_distill.data.transforms import Compose
from pointcept_distill.engine import CrossDatasetTester, SemSegTester
from pointcept_distill.engine.checkpoint import CheckpointError
from pointcept_distill.inference import Segmenter, sha256_file
from pointcept_distill.models import build_model
from pointcept_distill.utils.config import Config, OptionError
from payloads import WritesMarker
from tiny_configs import tiny_config
from tool_modules import load_tool


def tiny_checkpoint(tmp_path, dataset: str = "nuscenes") -> tuple[str, str, str]:
    """(config.py, weight, data_root): a tiny config with random weights and one simulated val frame."""
    data_root = str(tmp_path / "data" / dataset)
    generate(dataset, data_root, 0, 1, seed=1, scale=0.1)
    cfg = tiny_config(dataset, data_root)
    config = str(tmp_path / f"{dataset}.py")
    cfg.dump(config)
    torch.manual_seed(0)
    weight = str(tmp_path / f"{dataset}.pth")
    torch.save({"state_dict": build_model(cfg.model).state_dict()}, weight)
    return config, weight, data_root


@pytest.fixture(scope="module")
def nuscenes(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("inf"))


def raw_scan(data_root: str) -> np.ndarray:
    folder = os.path.join(data_root, "raw", "samples", "LIDAR_TOP")
    name = sorted(os.listdir(folder))[0]
    return np.fromfile(os.path.join(folder, name), dtype=np.float32).reshape(-1, 5)[:, :4]


def test_raw_scan_matches_the_dataset_pipeline(nuscenes):
    config, weight, data_root = nuscenes
    seg = Segmenter.from_checkpoint(config, weight, device="cpu")
    points = raw_scan(data_root)
    result = seg(points)
    n = len(points)
    assert result.labels.shape == (n,) and result.probs.shape == (n, len(NUSCENES_NAMES))
    assert result.class_names == list(NUSCENES_NAMES)
    np.testing.assert_allclose(result.probs.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(result.labels, result.probs.argmax(1))

    # the dataset's sample (intensity / 255) through the same val pipeline, scored voxel by voxel
    cfg = Config.fromfile(config)
    sample = build_dataset(cfg.data.val).get_data(0)
    np.testing.assert_allclose(sample["coord"], points[:, :3])
    data = Compose(cfg.data.val.transform)(sample, np.random.default_rng(0))
    batch = collate_fn([data])
    with torch.no_grad():
        logits = seg.model({k: batch[k] for k in ("coord", "grid_coord", "feat", "offset")})["seg_logits"]
    expected = torch.softmax(logits, 1)[batch["inverse"]].numpy()
    np.testing.assert_allclose(result.probs, expected, atol=1e-6)

    unscaled = seg(points, dataset="strength")  # the raw 0-255 value fed as is: a different input
    assert not np.allclose(unscaled.probs, result.probs, atol=1e-4)


def test_tta_scores_are_the_testers_vote(nuscenes):
    """Segmenter(tta=True), SemSegTester and CrossDatasetTester score a scan through one Predictor: the same
    per-point scores (softmax summed over the fragments holding a point, undivided) and labels."""
    config, weight, data_root = nuscenes
    seg = Segmenter.from_checkpoint(config, weight, device="cpu")
    points = raw_scan(data_root)
    result = seg(points, tta=True)
    assert result.probs.shape == (len(points), seg.num_classes)

    cfg = Config.fromfile(config)
    dataset = build_dataset(cfg.data.test)
    dataset.sample_rng = lambda idx: np.random.default_rng(0)  # the generator Segmenter uses
    data = dataset[0]
    assert len(data["fragment_list"]) >= len(cfg.data.test.test_cfg.aug_transform) == 2  # views x voxel parts
    held = np.zeros(len(data["segment"]))
    for fragment in data["fragment_list"]:
        held[np.asarray(fragment["index"])] += 1
    assert held.min() >= 2                                          # every view holds every point
    np.testing.assert_allclose(result.probs.sum(1), held[np.asarray(data["inverse"])], rtol=1e-5)

    semseg = SemSegTester(cfg, model=seg.model, test_loader=[])
    cross = CrossDatasetTester(cfg, target="nuscenes", target_root=data_root, model=seg.model, test_loader=[])
    for tester in (semseg, cross):
        np.testing.assert_array_equal(tester.predictor(data, vote=True).numpy(), result.probs)
        pred, _ = tester.predict(data)
        np.testing.assert_array_equal(pred, result.labels)


@pytest.mark.parametrize("dataset, convert", [("semantic_kitti", lambda x: x), ("waymo", np.tanh)])
def test_intensity_convention_follows_the_config(tmp_path, dataset, convert):
    config, weight, _ = tiny_checkpoint(tmp_path, dataset)
    seg = Segmenter.from_checkpoint(config, weight)
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.uniform(-20, 20, (500, 3)), rng.uniform(0, 2, (500, 1))], 1).astype(np.float32)
    points[:, 2] /= 10
    result = seg(points)
    direct = seg.predict(points[:, :3], convert(points[:, 3]))
    np.testing.assert_allclose(result.probs, direct.probs, atol=1e-6)
    assert len(result.class_names) == result.probs.shape[1] == seg.cfg.data.num_classes


def test_bad_input_values_are_refused_naming_the_input(nuscenes):
    config, weight, data_root = nuscenes
    seg = Segmenter.from_checkpoint(config, weight, device="cpu")
    points = raw_scan(data_root)
    nan = points.copy()
    nan[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"Segmenter input: 1 of \d+ points have non-finite coordinates .*index 3"):
        seg(nan)
    inf = points.copy()
    inf[0, 3] = np.inf
    with pytest.raises(ValueError, match=r"Segmenter input: 1 of \d+ points have a non-finite intensity"):
        seg(inf, dataset="waymo")  # tanh(inf) = 1 would hide it
    with pytest.raises(ValueError, match=r"Segmenter input: empty scan \(0 points\)"):
        seg(points[:0])
    far = points.copy()
    far[0, 0] = 1e4  # 200000 voxels of 5 cm: beyond 16 bits per axis
    for tta in (False, True):
        with pytest.raises(ValueError, match=r"Segmenter input: the scan spans .*below 65536"):
            seg(far, tta=tta)


def test_from_release_and_errors(nuscenes, tmp_path):
    config, weight, data_root = nuscenes
    release = load_tool("release")
    exp = tmp_path / "exp" / "nuscenes" / "tiny"
    (exp / "model").mkdir(parents=True)
    os.symlink(config, exp / "config.py")
    os.symlink(weight, exp / "model" / "model_best.pth")
    out = str(tmp_path / "release")
    release.make_release(str(exp), out, latency_runs=0)

    points = raw_scan(data_root)
    from_release = Segmenter.from_release(out, device="cpu")(points)
    from_ckpt = Segmenter.from_checkpoint(config, weight, device="cpu")(points)
    np.testing.assert_array_equal(from_release.labels, from_ckpt.labels)
    np.testing.assert_allclose(from_release.probs, from_ckpt.probs, atol=1e-6)

    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        Segmenter.from_release(out)(points[:, :3])
    with pytest.raises(ValueError, match="unknown dataset"):
        Segmenter.from_release(out)(points, dataset="kitti360")
    joint = Config.fromfile(config)
    joint.data.val = dict(type="ConcatDataset", datasets=[joint.data.val])
    with pytest.raises(KeyError, match="data.val.transform"):
        Segmenter(joint, build_model(joint.model), torch.device("cpu"))
    with open(os.path.join(out, "model.pth"), "ab") as f:
        f.write(b"\0")
    with pytest.raises(CheckpointError, match="model.pth"):
        Segmenter.from_release(out)


def _release_folder(folder, config: str, weight: str, sums: bool = True):
    """A hand-made release: config.py, model.pth and (``sums``) their SHA256SUMS."""
    os.makedirs(folder)
    shutil.copyfile(config, os.path.join(folder, "config.py"))
    shutil.copyfile(weight, os.path.join(folder, "model.pth"))
    if sums:
        _write_sums(folder, ["config.py", "model.pth"])
    return str(folder)


def _write_sums(folder, names):
    with open(os.path.join(folder, "SHA256SUMS"), "w") as f:
        f.writelines(f"{sha256_file(os.path.join(folder, n)) if os.path.isfile(os.path.join(folder, n)) else '0' * 64}"
                     f"  {n}\n" for n in names)


def test_from_release_refuses_unverifiable_releases(nuscenes, tmp_path):
    config, weight, _ = nuscenes
    good = _release_folder(tmp_path / "good", config, weight)
    assert Segmenter.from_release(good, device="cpu").num_classes == len(NUSCENES_NAMES)

    bare = _release_folder(tmp_path / "bare", config, weight, sums=False)
    with pytest.raises(CheckpointError, match=r"bare/SHA256SUMS.*does not exist"):
        Segmenter.from_release(bare)

    extra = _release_folder(tmp_path / "extra", config, weight)
    (tmp_path / "extra" / "notes.txt").write_text("not listed")
    with pytest.raises(CheckpointError, match=r"extra/SHA256SUMS does not list.*notes\.txt"):
        Segmenter.from_release(extra)

    (tmp_path / "outside.txt").write_text("outside")
    for name, bad in (("up", "../outside.txt"), ("abs", str(tmp_path / "outside.txt")),
                      ("sub", "sub/../../outside.txt")):
        folder = _release_folder(tmp_path / name, config, weight)
        _write_sums(folder, ["config.py", "model.pth", bad])
        with pytest.raises(CheckpointError, match=rf"{name}/SHA256SUMS lists '{re.escape(bad)}'.*outside the release"):
            Segmenter.from_release(folder)


def test_release_whose_weights_would_run_code_is_refused(nuscenes, tmp_path):
    """A release is data: even with matching SHA-256 sums, its model.pth is loaded without executing code."""
    config, weight, _ = nuscenes
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": torch.load(weight, weights_only=True)["state_dict"], "card": WritesMarker(marker)},
               evil)
    folder = _release_folder(tmp_path / "evil", config, str(evil))
    with pytest.raises(CheckpointError, match=r"model\.pth' is refused"):
        Segmenter.from_release(folder)
    assert not marker.exists()


def test_captured_segmenter_gives_the_eager_result(nuscenes):
    config, weight, data_root = nuscenes
    points = raw_scan(data_root)
    eager = Segmenter.from_checkpoint(config, weight, device="cpu")(points)
    seg = Segmenter.from_checkpoint(config, weight, device="cpu", capture="graphs")
    result = seg(points)
    np.testing.assert_allclose(result.probs, eager.probs, atol=1e-6)
    np.testing.assert_array_equal(result.labels, eager.labels)
    assert seg.predictor.captured.strides and seg.predictor.captured.model is seg.model
    with pytest.raises(ValueError, match="capture must be one of"):
        Segmenter.from_checkpoint(config, weight, device="cpu", capture="cudagraph")


@pytest.mark.parametrize("single_pass", [True, False])
def test_captured_tester_predicts_as_the_eager_one(nuscenes, tmp_path, single_pass):
    config, weight, _ = nuscenes
    preds = {}
    for capture in (None, "graphs"):
        cfg = Config.fromfile(config)
        cfg.weight, cfg.save_path, cfg.seed, cfg.num_worker_per_gpu = weight, str(tmp_path / str(capture)), 0, 0
        os.makedirs(cfg.save_path)
        tester = SemSegTester(cfg, single_pass=single_pass, capture=capture)
        assert (tester.predictor.captured is None) == (capture is None)
        summary = tester.test()
        preds[capture] = (summary["mIoU"], [np.load(p) for p in sorted((tmp_path / str(capture) / "result")
                                                                       .glob("*_pred.npy"))])
    assert preds["graphs"][0] == pytest.approx(preds[None][0])
    assert preds[None][1] and all(np.array_equal(a, b) for a, b in zip(preds["graphs"][1], preds[None][1]))


def test_options_are_checked_like_the_command_line(nuscenes):
    config, weight, _ = nuscenes
    with pytest.raises(OptionError, match="unknown config key 'epochs'.*closest known keys: 'epoch'") as err:
        Segmenter.from_checkpoint(config, weight, device="cpu", options={"epochs": 3})
    assert config in str(err.value)
    with pytest.raises(OptionError, match="batch_size"):
        Segmenter.from_checkpoint(config, weight, device="cpu", options={"batch_size": "abc"})
