"""Pictures: a bird's-eye view of a scan (ground truth | teacher | student | student errors) and training curves.

    python tools/visualize.py bev --config exp/demo/student/config.py --index 0 \\
        --teacher releases/demo-teacher --student releases/demo-student --out bev.png
    python tools/visualize.py bev --scan scan.pcd.bin --labels scan_lidarseg.bin --dataset nuscenes \\
        --teacher T_CONFIG --teacher-weight T.pth --student releases/demo-student --out bev.png
    python tools/visualize.py curves exp/nuscenes/student --out curves.png

Teacher and student are release folders, or configs with ``--teacher-weight`` / ``--student-weight``.
Error panel: grey where the student is right and the teacher agrees; red where the student is wrong and
the teacher predicts another class, dark red where the student is wrong with the teacher's label; orange
where the student is right (or the point unlabelled) and the teacher predicts another class. Red and
orange together are where student and teacher disagree.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Sequence

import numpy as np

import pointcept_distill.data  # noqa: F401  (registers datasets and transforms)
from pointcept_distill.data import build_dataset
from pointcept_distill.inference import INTENSITY_CONVERSIONS, Segmenter
from pointcept_distill.utils.config import Config, apply_options, parse_options
from pointcept_distill.utils.misc import display_path, intersection_and_union, semseg_metrics
from pointcept_distill.utils.visualization import (ERROR_COLORS, ERROR_NAMES, bev_extent, bev_raster,
                                                   class_palette, colorize, error_codes, read_scalars)

__all__ = ["render_bev", "render_bev_scan", "render_curves", "load_segmenter", "load_scan"]

TITLE_PX, LEGEND_ROW_PX, LEGEND_COLS = 28, 20, 6
PANELS = ("ground truth", "teacher", "student", "student errors")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _score(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int) -> str:
    if not np.any(gt != ignore_index):
        return ""
    metrics = semseg_metrics(*intersection_and_union(pred, gt, num_classes, ignore_index))
    present = np.unique(gt[gt != ignore_index])
    miou = float(np.mean(np.asarray(metrics["iou_class"])[present]))
    return f" (acc {100 * metrics['allAcc']:.1f}, mIoU {100 * miou:.1f})"


def render_bev(out_png: str, coord: np.ndarray, gt: np.ndarray, teacher: np.ndarray, student: np.ndarray,
               class_names: Sequence[str], ignore_index: int = -1, panel_px: int = 400, radius: int = 1,
               half_width: float | None = None, title: str | None = None) -> dict:
    """Write a PNG of four top views side by side and a legend below; return the layout.

    Args:
        out_png: the file to write (its folder is created).
        coord: (N, 3) points; gt, teacher, student: (N,) train ids (``gt`` may hold ``ignore_index``).
        class_names: names of the K classes (legend).
        panel_px: side of each square panel in pixels; the PNG is ``4 * panel_px`` wide.
        radius: each point is drawn as a (2 radius + 1)^2 pixel square.
        half_width: metres from the sensor to a panel's edge (default: 98% of the points inside).
        title: a line above the panels.

    Returns:
        ``rasters`` (panel name -> (panel_px, panel_px, 3) uint8 image, pixel-exact in the PNG),
        ``boxes`` (panel name -> (x0, y0, x1, y1) pixels in the PNG), ``size`` (width, height),
        ``legend`` (labels in order).
    """
    plt = _pyplot()
    from matplotlib.patches import Patch
    gt, teacher, student = (np.asarray(a).reshape(-1) for a in (gt, teacher, student))
    names = list(class_names)
    palette = class_palette(len(names))
    half_width = half_width or bev_extent(coord)
    colors = {PANELS[0]: colorize(gt, palette, ignore_index), PANELS[1]: colorize(teacher, palette),
              PANELS[2]: colorize(student, palette),
              PANELS[3]: ERROR_COLORS[error_codes(gt, teacher, student, ignore_index)]}
    rasters = {name: bev_raster(coord, c, half_width, panel_px, radius) for name, c in colors.items()}
    legend = names + list(ERROR_NAMES)
    top = TITLE_PX * (2 if title else 1)
    rows = math.ceil(len(legend) / LEGEND_COLS)
    width, height = 4 * panel_px, top + panel_px + rows * LEGEND_ROW_PX + 12
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    boxes = {}
    subtitles = {PANELS[0]: PANELS[0], PANELS[3]: PANELS[3] + f" ({half_width:.0f} m to the edge)",
                 PANELS[1]: PANELS[1] + _score(teacher, gt, len(names), ignore_index),
                 PANELS[2]: PANELS[2] + _score(student, gt, len(names), ignore_index)}
    for i, name in enumerate(PANELS):
        boxes[name] = (i * panel_px, top, (i + 1) * panel_px, top + panel_px)
        ax = fig.add_axes((i * panel_px / width, 1 - (top + panel_px) / height, panel_px / width, panel_px / height))
        ax.imshow(rasters[name], interpolation="nearest", aspect="auto")
        ax.set_axis_off()
        fig.text((i + 0.5) * panel_px / width, 1 - (top - 6) / height, subtitles[name], ha="center", va="bottom",
                 fontsize=9)
    if title:
        fig.text(0.5, 1 - 6 / height, title, ha="center", va="top", fontsize=11)
    handles = [Patch(facecolor=c / 255, edgecolor="none") for c in [*palette, *ERROR_COLORS]]
    fig.legend(handles, legend, loc="lower center", ncol=LEGEND_COLS, fontsize=8, frameon=False,
               handlelength=1.2, columnspacing=1.0, borderaxespad=0.2)
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return dict(rasters=rasters, boxes=boxes, size=(width, height), legend=legend, title=title)


def load_segmenter(spec: str | Segmenter, weight: str | None = None, device: str | None = None) -> Segmenter:
    """A ``Segmenter`` from a release folder, or a config file with ``weight``."""
    if isinstance(spec, Segmenter):
        return spec
    if weight:
        return Segmenter.from_checkpoint(spec, weight, device)
    if not os.path.isdir(spec):
        raise FileNotFoundError(f"load_segmenter: {spec} is not a release folder (pass a weight with a config)")
    return Segmenter.from_release(spec, device)


def load_scan(path: str, labels: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A raw scan ((N, 4+) float32 from ``.npy``, or a flat float32 ``.bin``: 5 columns for ``*.pcd.bin``,
    else 4) and optional train-id labels (``.npy``)."""
    if path.endswith(".npy"):
        points = np.load(path).astype(np.float32)
    else:
        points = np.fromfile(path, dtype=np.float32).reshape(-1, 5 if path.endswith(".pcd.bin") else 4)
    if labels is None:
        return points, None
    if not labels.endswith(".npy"):
        raise ValueError(f"load_scan: {labels}: labels must be train ids in a .npy file")
    return points, np.load(labels).reshape(-1).astype(np.int64)


def _model_label(spec: str | Segmenter, seg: Segmenter) -> str:
    """A release folder or config as the picture names it: relative, never an absolute path."""
    return str(display_path(spec if isinstance(spec, str) else seg.cfg.filename))


def render_bev_scan(out_png: str, teacher: str | Segmenter, student: str | Segmenter, config: str | None = None,
                    index: int = 0, scan: np.ndarray | None = None, labels: np.ndarray | None = None,
                    dataset: str | None = None, teacher_weight: str | None = None,
                    student_weight: str | None = None, device: str | None = None, options: dict | None = None,
                    **kwargs) -> dict:
    """``render_bev`` of scan ``index`` of a config's ``data.val`` dataset (labels as the dataset maps them),
    or of a raw ``scan`` (N, 4) with train-id ``labels``, segmented by teacher and student.

    ``config`` defaults to the student's; ``options`` override it (e.g. ``data.val.data_root``); ``dataset``
    names the intensity convention of a raw scan (see ``pointcept_distill.inference``)."""
    student_seg = load_segmenter(student, student_weight, device)
    teacher_seg = load_segmenter(teacher, teacher_weight, device)
    if scan is None:
        cfg = Config.fromfile(config) if config else Config(student_seg.cfg.to_dict(), student_seg.cfg.filename)
        if options:
            apply_options(cfg, options)
        data = build_dataset(cfg.data.val).get_data(index)
        coord, gt, name = data["coord"], data["segment"], f"{data['name']} ({data['dataset']})"
        t_pred = teacher_seg.predict(coord, data["strength"]).labels
        s_pred = student_seg.predict(coord, data["strength"]).labels
        ignore = int(cfg.data.get("ignore_index", -1))
    else:
        coord, name, ignore = scan[:, :3], "scan", -1
        gt = labels if labels is not None else np.full(len(scan), -1, dtype=np.int64)
        t_pred, s_pred = teacher_seg(scan, dataset).labels, student_seg(scan, dataset).labels
    kwargs.setdefault("title", f"{name}: teacher {_model_label(teacher, teacher_seg)} vs student "
                               f"{_model_label(student, student_seg)}")
    return render_bev(out_png, coord, gt, t_pred, s_pred, student_seg.class_names, ignore, **kwargs)


def render_curves(exp_dir: str, out_png: str, width_px: int = 1200, height_px: int = 420) -> dict:
    """A PNG of the experiment's training losses (per iteration) and validation mIoU / mAcc / allAcc (per
    epoch), read from its TensorBoard events or ``train.log``; returns the plotted series by tag."""
    plt = _pyplot()
    scalars = read_scalars(exp_dir)
    losses = {t: v for t, v in scalars.items() if t.startswith("train_batch/loss")}
    val = {t: v for t, v in scalars.items()
           if t.startswith("val/") and t.rsplit("/", 1)[-1] in ("mIoU", "mAcc", "allAcc")}
    if not losses and not val:
        raise ValueError(f"render_curves: no train_batch/loss* or val/mIoU scalars in {exp_dir}")
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(width_px / 100, height_px / 100), dpi=100)
    for tag, (steps, values) in sorted(losses.items()):
        ax_loss.plot(steps, values, label=tag.split("/", 1)[1], linewidth=1, marker="o" if len(steps) < 30 else None,
                     markersize=3)
    ax_loss.set(xlabel="iteration", ylabel="loss", title="training losses")
    for tag, (steps, values) in sorted(val.items()):
        ax_val.plot(steps, 100 * values, marker="o", markersize=3, label=tag.split("/", 1)[1], linewidth=1)
    ax_val.set(xlabel="epoch", ylabel="%", title="validation")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(os.path.basename(os.path.normpath(exp_dir)), fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return {**losses, **val}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    bev = sub.add_parser("bev", help="ground truth | teacher | student | errors, from above")
    bev.add_argument("--out", required=True)
    bev.add_argument("--teacher", required=True, help="release folder or config (with --teacher-weight)")
    bev.add_argument("--student", required=True, help="release folder or config (with --student-weight)")
    bev.add_argument("--teacher-weight")
    bev.add_argument("--student-weight")
    bev.add_argument("--config", help="dataset config (default: the student's)")
    bev.add_argument("--index", type=int, default=0, help="scan index in data.val")
    bev.add_argument("--scan", help="raw scan (.bin/.pcd.bin/.npy) instead of a dataset scan")
    bev.add_argument("--labels", help="train-id labels of --scan (.npy)")
    bev.add_argument("--dataset", choices=sorted(INTENSITY_CONVERSIONS), help="intensity convention of --scan")
    bev.add_argument("--options", nargs="+", default=[], help="KEY=VALUE overrides of the dataset config")
    bev.add_argument("--device")
    bev.add_argument("--panel-px", type=int, default=400)
    curves = sub.add_parser("curves", help="training losses and validation mIoU")
    curves.add_argument("exp_dir")
    curves.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.mode == "curves":
        tags = render_curves(args.exp_dir, args.out)
        print(f"wrote {args.out}: {', '.join(sorted(tags))}")
        return 0
    scan, labels = load_scan(args.scan, args.labels) if args.scan else (None, None)
    layout = render_bev_scan(args.out, args.teacher, args.student, args.config, args.index, scan, labels,
                             args.dataset, args.teacher_weight, args.student_weight, args.device,
                             parse_options(args.options), panel_px=args.panel_px)
    print(f"wrote {args.out} ({layout['size'][0]}x{layout['size'][1]} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
