"""tools/visualize.py: BEV panels (pixel colours where predictions differ) and training curves."""
from __future__ import annotations

import os
import re

import matplotlib.pyplot as plt  # the viz extra, which `make test` installs: missing, the test fails
import numpy as np
import pytest
import torch

from pointcept_distill.data.simulator import generate
from pointcept_distill.inference import Segmenter
from pointcept_distill.models import build_model
from pointcept_distill.utils.config import Config
from pointcept_distill.utils.visualization import (CORRECT, DISAGREE, ERROR_COLORS, IGNORED, SHARED, WRONG,
                                                   parse_train_log)
from tool_modules import load_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
visualize = load_tool("visualize")

NAMES = ["road", "car", "tree", "building"]


def scene(n: int = 4000, seed: int = 0):
    rng = np.random.default_rng(seed)
    coord = np.concatenate([rng.uniform(-20, 20, (n, 2)), rng.uniform(-2, 2, (n, 1))], 1)
    gt = rng.integers(0, len(NAMES), n)
    gt[:100] = -1
    coord[:100, 0], coord[:100, 1] = -np.abs(coord[:100, 0]), np.abs(coord[:100, 1])  # unlabelled: top-left
    return coord, gt


def png(path: str) -> np.ndarray:
    return (plt.imread(path)[..., :3] * 255).round().astype(np.uint8)


def count(image: np.ndarray, color: np.ndarray) -> int:
    return int(np.all(image == color, axis=-1).sum())


def test_bev_error_panel_marks_where_predictions_differ(tmp_path):
    coord, gt = scene()
    labelled = gt.clip(0)
    student = labelled.copy()
    quadrant = (coord[:, 0] > 0) & (coord[:, 1] > 0)
    student[quadrant] = (labelled[quadrant] + 1) % len(NAMES)   # student wrong (or differs) top-right only
    teacher = labelled.copy()
    lower_left = (coord[:, 0] < 0) & (coord[:, 1] < 0) & (gt >= 0)
    teacher[lower_left] = (labelled[lower_left] + 2) % len(NAMES)  # teacher wrong bottom-left only
    lower_right = (coord[:, 0] > 0) & (coord[:, 1] < 0) & (gt >= 0)
    student[lower_right] = teacher[lower_right] = (labelled[lower_right] + 3) % len(NAMES)  # both wrong alike
    out = str(tmp_path / "bev.png")
    layout = visualize.render_bev(out, coord, gt, teacher, student, NAMES, panel_px=200, half_width=20, radius=0)

    image = png(out)
    assert image.shape[:2] == (layout["size"][1], layout["size"][0]) and layout["size"][0] == 800
    x0, y0, x1, y1 = layout["boxes"]["student errors"]
    errors = image[y0:y1, x0:x1]
    np.testing.assert_array_equal(errors, layout["rasters"]["student errors"])  # pixel-exact in the PNG
    gx0, gy0, gx1, gy1 = layout["boxes"]["ground truth"]
    assert not np.array_equal(errors, image[gy0:gy1, gx0:gx1])

    red, orange, grey, dark = (count(errors, ERROR_COLORS[c]) for c in (WRONG, DISAGREE, CORRECT, SHARED))
    assert red > 100 and orange > 100 and grey > 100 and dark > 100
    h = errors.shape[0] // 2
    assert count(errors[:h, h:], ERROR_COLORS[WRONG]) == red            # red only top-right
    assert count(errors[h:, :h], ERROR_COLORS[DISAGREE]) == orange      # orange only bottom-left
    assert count(errors[h:, h:], ERROR_COLORS[SHARED]) == dark          # dark red only bottom-right
    assert count(errors[:h, :h], ERROR_COLORS[IGNORED]) == count(errors, ERROR_COLORS[IGNORED]) > 0
    assert layout["legend"][:len(NAMES)] == NAMES

    same = str(tmp_path / "same.png")
    layout = visualize.render_bev(same, coord, gt, labelled, labelled, NAMES, panel_px=200, half_width=20)
    x0, y0, x1, y1 = layout["boxes"]["student errors"]
    clean = png(same)[y0:y1, x0:x1]
    assert count(clean, ERROR_COLORS[WRONG]) == 0 and count(clean, ERROR_COLORS[DISAGREE]) == 0


def _events_exp(path, with_events: bool) -> str:
    exp = str(path)
    os.makedirs(exp)
    log = []
    for epoch in (1, 2):
        for it in (1, 2, 3):
            loss = 3.0 - epoch - 0.1 * it
            log.append(f"[x] Train: [{epoch}/2][{it}/3] Data 0.1 (0.1) Batch 0.2 (0.2) Remain 0:00:01 "
                       f"loss_seg: {loss:.4f} loss: {loss + 0.5:.4f} Lr: 0.00100")
        log.append(f"[x] Val result: mIoU/mAcc/allAcc {0.2 * epoch:.4f}/{0.3 * epoch:.4f}/{0.4 * epoch:.4f}.")
    with open(os.path.join(exp, "train.log"), "w") as f:
        f.write("\n".join(log) + "\n")
    if with_events:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(exp)
        for tag, (steps, values) in parse_train_log(os.path.join(exp, "train.log")).items():
            for step, value in zip(steps, values):
                writer.add_scalar(tag, value + 1.0, int(step))  # shifted: tells the sources apart
        writer.close()
    return exp


def test_curves_command_line(tmp_path, capsys):
    exp = _events_exp(tmp_path / "exp", with_events=False)
    assert visualize.main(["curves", exp, "--out", str(tmp_path / "c.png")]) == 0
    assert "val/mIoU" in capsys.readouterr().out and os.path.isfile(tmp_path / "c.png")


@pytest.mark.parametrize("with_events", [True, False])
def test_curves_from_events_or_log(tmp_path, with_events):
    exp = _events_exp(tmp_path / "exp", with_events)
    out = str(tmp_path / "curves.png")
    series = visualize.render_curves(exp, out, width_px=900, height_px=300)
    assert png(out).shape[:2] == (300, 900)
    assert {"train_batch/loss", "train_batch/loss_seg", "val/mIoU", "val/mAcc", "val/allAcc"} <= set(series)
    steps, values = series["val/mIoU"]
    np.testing.assert_array_equal(steps, [1, 2])
    np.testing.assert_allclose(values, np.array([0.2, 0.4]) + (1.0 if with_events else 0.0), atol=1e-6)
    np.testing.assert_array_equal(series["train_batch/loss"][0], np.arange(1, 7))


def test_bev_from_dataset_scan_and_segmenters(tmp_path):
    data_root = str(tmp_path / "nuscenes")
    generate("nuscenes", data_root, 0, 1, seed=2, scale=0.1)
    cfg = Config.fromfile(os.path.join(ROOT, "configs", "nuscenes", "semseg-pt-v3m1-0-base.py"))
    cfg.merge_from_dict({"data.val.data_root": data_root, "model.backbone_out_channels": 8,
                         "model.backbone.enc_depths": (1,) * 5, "model.backbone.enc_channels": (8,) * 5,
                         "model.backbone.enc_num_head": (1,) * 5, "model.backbone.enc_patch_size": (64,) * 5,
                         "model.backbone.dec_depths": (1,) * 4, "model.backbone.dec_channels": (8,) * 4,
                         "model.backbone.dec_num_head": (1,) * 4, "model.backbone.dec_patch_size": (64,) * 4})
    segmenters = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        segmenters.append(Segmenter(cfg, build_model(cfg.model), torch.device("cpu")))
    out = str(tmp_path / "scan.png")
    layout = visualize.render_bev_scan(out, segmenters[0], segmenters[1], panel_px=120)
    assert png(out).shape[:2] == (layout["size"][1], 480)
    # the title names both models without an absolute path (the configs' absolute file names)
    assert os.path.isabs(segmenters[0].cfg.filename) and ROOT not in layout["title"]
    assert not re.search(r"(?:^|\s)/[^\s/]+/", layout["title"]) and layout["title"].count("semseg-pt-v3m1-0-base.py") == 2
    errors = layout["rasters"]["student errors"]
    assert count(errors, ERROR_COLORS[WRONG]) + count(errors, ERROR_COLORS[SHARED]) > 0  # random weights: wrong
    assert layout["legend"][:16] == segmenters[1].class_names
