"""Sim-to-real: a model trained on simulated SemanticKITTI scans, tested on real SemanticKITTI frames (issue #20).

    python tools/sim2real.py --seed 0                           # the repository's 3 real frames
    python tools/sim2real.py --seed 1 --real ../shared/data/real/semantic_kitti --json exp/sim2real/seed1.json

Protocol (fixed; the defaults follow from the step times below):
1. the simulator writes ``--train-frames`` SemanticKITTI scans and ``--val-frames`` validation scans from ``--seed``
   at the real sensor's full resolution (``--scale 1``), so that training and test density are the same, to
   ``<out>/data``;
2. ``configs/semantic_kitti/semseg-pt-v3m1-sim-tiny.py`` (batch 2) trains on them with seed ``--seed`` for
   ``--epochs`` epochs (the engine's trainer) on a ``--grid`` voxel grid of 0.1 m instead of the config's 0.05 m
   (a step costs the sparse convolutions' gathers over the voxels: 3.1-3.5 s at 0.1 m against 7.5 s at 0.05 m for
   batch 2 on 2 cores; 120 scans x 7 epochs = 420 steps, about 25 minutes of training on 2 idle cores);
   at the config's learning rates (0.002, the attention blocks 0.0002; ``--lr``: one peak rate for every parameter);
   BatchNorm statistics are recomputed with the final weights (``PreciseBN``, one pass over the training scans)
   and the last checkpoint is the model (no selection);
3. ``SemSegTester`` predicts every point single-pass, on the simulated validation scans and on every labelled
   frame of ``--real`` (at its own density, voxelised on the same ``--grid``) (a SemanticKITTI root:
   ``dataset/sequences/<SS>/{velodyne,labels}``; default: the repository's copies of 3 real frames), whose raw
   labels ``SemanticKITTIDataset`` maps to the 19 training classes (unlabelled and outlier points ignored).

Prints, for the real frames beside the simulated validation scans: the IoU of each class present, their mean
(``miou_present``) and the mean over the classes with >= 1 % of the labelled points (``miou_major``), accuracy
beside the accuracy of predicting the most frequent class everywhere (``baseline_accuracy``); then per class,
simulated training points against real points: share of the points, remission (median, share of zero returns),
height z (p5, p95) and range from the sensor (median, p99, max).

Writes ``<out>/sim2real.json`` (and ``--json FILE``): the real frames' ``accuracy``, ``baseline_accuracy``,
``baseline_class``, ``miou_present``, ``miou_major``, ``major_classes``, ``iou_per_class``, ``share_per_class``
and ``points``; ``sim_val`` (the same keys for the simulated validation scans); ``statistics`` (``sim`` and
``real``: per class and ``all``, the keys of ``point_summary``); ``settings`` and ``minutes``. Every run starts
afresh: the ``data``, ``train`` and ``test`` folders of ``--out`` are replaced.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

CONFIG = os.path.join(REPO, "configs", "semantic_kitti", "semseg-pt-v3m1-sim-tiny.py")
DEFAULT_REAL = os.path.join(REPO, "tests", "fixtures", "real", "semantic_kitti")
MAJOR_SHARE = 0.01          # a class with at least this share of the labelled points counts in miou_major
# the statistics of a set of points are taken from at most this many points (a random sample of every frame beyond
# it), so that a whole real sequence fits in memory; the default sets are far below it and use every point
STATS_POINTS = 2_000_000


# ------------------------------------------------------------------------------------------------ frames
def labelled_sequences(root: str) -> list[str]:
    """The ids of the sequences under ``<root>/dataset/sequences`` that have a ``labels`` folder."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: no such folder (a SemanticKITTI root holds dataset/sequences/<SS>)")
    folder = os.path.join(root, "dataset", "sequences")
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    seqs = [s for s in names if s.isdigit() and os.path.isdir(os.path.join(folder, s, "labels"))]
    if not seqs:
        raise FileNotFoundError(f"{folder}: no labelled sequence (<SS>/velodyne with <SS>/labels)")
    return seqs


def kitti_frames(root: str, split: str | list[str]):
    """The frames of ``split`` under ``root`` as the project's ``SemanticKITTIDataset`` reads them (raw labels
    mapped to the 19 training classes, ignored points -1), without transforms."""
    from pointcept_distill.data.semantic_kitti import SemanticKITTIDataset
    return SemanticKITTIDataset(split=split, data_root=root)


def point_sample(frames, max_points: int, seed: int) -> dict[str, np.ndarray]:
    """``coord``, ``strength`` (remission) and ``segment`` of the labelled points of every frame, at most
    ``max_points // frames`` random points of each. Reading a frame checks it: a label file whose length is
    not the scan's point count raises naming both files."""
    rng = np.random.default_rng(seed)
    cap = max(1, max_points // len(frames.data_list))
    parts = []
    for i in range(len(frames.data_list)):
        data = frames.load_data(i)
        keep = np.flatnonzero(data["segment"] != frames.ignore_index)
        if len(keep) > cap:
            keep = np.sort(rng.choice(keep, cap, replace=False))
        parts.append({k: data[k][keep] for k in ("coord", "strength", "segment")})
    if not sum(len(p["segment"]) for p in parts):
        raise ValueError(f"{frames.data_root}: no labelled point in its {len(parts)} frame(s)")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# -------------------------------------------------------------------------------------------- statistics
def point_summary(remission: np.ndarray, z: np.ndarray, dist: np.ndarray, share: float) -> dict[str, float]:
    """What the statistics table shows of one group of points."""
    return dict(share=float(share), points=int(len(z)), remission_median=float(np.median(remission)),
                remission_zero=float(np.mean(remission == 0)), z_p5=float(np.percentile(z, 5)),
                z_p95=float(np.percentile(z, 95)), range_median=float(np.median(dist)),
                range_p99=float(np.percentile(dist, 99)), range_max=float(np.max(dist)))


def class_statistics(segment: np.ndarray, remission: np.ndarray, coord: np.ndarray,
                     names: list[str]) -> dict[str, dict]:
    """``point_summary`` of each class present in ``segment`` (training ids of labelled points, named by
    ``names``, in id order) and of ``all`` points; range is the distance from the sensor (a SemanticKITTI scan's
    origin)."""
    segment, remission = np.asarray(segment).reshape(-1), np.asarray(remission).reshape(-1)
    dist = np.linalg.norm(coord, axis=1)
    groups = {names[c]: segment == c for c in np.unique(segment)}
    groups["all"] = np.ones(len(segment), dtype=bool)
    return {name: point_summary(remission[m], coord[m, 2], dist[m], m.mean()) for name, m in groups.items()}


def segmentation_scores(intersection: np.ndarray, union: np.ndarray, target: np.ndarray,
                        names: list[str], major_share: float = MAJOR_SHARE) -> dict:
    """Scores from per-class intersection, union and target counts (``intersection_and_union`` summed over
    frames): accuracy, the accuracy of predicting the most frequent class everywhere, the IoU of each class
    present (target > 0) and the mean IoU over them and over those with >= ``major_share`` of the points."""
    total = int(np.sum(target))
    if total == 0:
        raise ValueError("segmentation_scores: no labelled point to score")
    present = np.flatnonzero(target > 0)
    share = np.asarray(target) / total
    major = present[share[present] >= major_share]
    iou = np.asarray(intersection)[present] / np.asarray(union)[present]   # union >= target > 0
    iou_of = dict(zip(present.tolist(), iou.tolist()))
    return dict(accuracy=float(np.sum(intersection) / total), baseline_accuracy=float(np.max(target) / total),
                baseline_class=names[int(np.argmax(target))], miou_present=float(np.mean(iou)),
                miou_major=float(np.mean([iou_of[c] for c in major.tolist()])),
                major_classes=[names[c] for c in major], iou_per_class={names[c]: iou_of[c] for c in present},
                share_per_class={names[c]: float(share[c]) for c in present}, points=total)


def score_predictions(frames, result_dir: str, names: list[str]) -> dict:
    """``segmentation_scores`` of the tester's predictions (``<result_dir>/<frame>_pred.npy``) of ``frames``."""
    from pointcept_distill.utils.misc import intersection_and_union
    counts = np.zeros((3, len(names)), dtype=np.int64)   # intersection, union, target
    for i in range(len(frames.data_list)):
        pred = np.load(os.path.join(result_dir, f"{frames.get_data_name(i)}_pred.npy"))
        counts += intersection_and_union(pred, frames.load_data(i)["segment"], len(names), frames.ignore_index)
    return segmentation_scores(*counts, names)


# ------------------------------------------------------------------------------------- training, testing
def model_voxelizers(data) -> list:
    """The ``GridSample`` transforms of a config's ``data`` that voxelise the model's input (those returning
    ``grid_coord``): in the train and validation pipelines and the test-time ``voxelize``. The test pipeline's
    pre-thinning returns no ``grid_coord`` and is not one of them."""
    transforms = [*data.train.transform, *data.val.transform, *data.test.transform, data.test.test_cfg.voxelize]
    return [t for t in transforms if t.type == "GridSample" and t.get("return_grid_coord", False)]


def build_config(seed: int, epochs: int, train_frames: int, out: str, sim_root: str, grid: float,
                 lr: float | None = None):
    """The sim-tiny config on ``sim_root`` for ``epochs`` epochs, its model's input voxelised on a ``grid`` (m)
    grid for training and testing, without per-epoch evaluation, with PreciseBN before the checkpoint is saved;
    ``lr``: the peak learning rate of every parameter (None: the config's, 0.002 and 0.0002 for the blocks)."""
    from pointcept_distill.engine import default_config_parser
    options = dict(save_path=os.path.join(out, "train"), seed=seed, epoch=epochs, eval_epoch=epochs,
                   evaluate=False, num_worker=0)
    cfg = default_config_parser(CONFIG, options, dump=False)
    for split in ("train", "val", "test"):
        cfg.data[split].data_root = sim_root
    for voxelize in model_voxelizers(cfg.data):
        voxelize.grid_size = grid
    cfg.hooks = [h for h in cfg.hooks if h.type not in ("PreciseEvaluator", "SemSegEvaluator")]
    saver = next(i for i, h in enumerate(cfg.hooks) if h.type == "CheckpointSaver")
    cfg.hooks.insert(saver, dict(type="PreciseBN", num_iter=max(1, train_frames // cfg.batch_size)))
    if lr is not None:
        cfg.optimizer.lr = lr
        cfg.scheduler.max_lr = [lr] * len(cfg.scheduler.max_lr)
        cfg.param_dicts = [dict(group, lr=lr) for group in cfg.param_dicts]
    return cfg


def train(cfg) -> str:
    """Train ``cfg`` with the engine's trainer; the last checkpoint's path."""
    import pointcept_distill.data  # noqa: F401  (registers datasets and transforms)
    import pointcept_distill.models  # noqa: F401
    from pointcept_distill.engine import TRAINERS, default_setup
    cfg = default_setup(cfg)
    cfg.dump(os.path.join(cfg.save_path, "config.py"))
    TRAINERS.build(dict(type=cfg.train.type, cfg=cfg)).train()
    return os.path.join(cfg.save_path, "model", "model_last.pth")


def predict_frames(cfg, model, frames, folder: str):
    """``SemSegTester`` single-pass (the config's validation pipeline) over the data root and split of ``frames``:
    ``<folder>/result/<frame>_pred.npy``. ``model`` None loads ``cfg.weight``; the model used is returned."""
    from pointcept_distill.engine.test import SemSegTester
    os.makedirs(folder, exist_ok=True)
    cfg.save_path = folder
    cfg.data.val.data_root, cfg.data.val.split = frames.data_root, frames.split
    tester = SemSegTester(cfg, model=model, single_pass=True)
    tester.test()
    return tester.model


# --------------------------------------------------------------------------------------------- tables
def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def scores_table(real: dict, sim_val: dict) -> str:
    """Per-class IoU of the classes present in the real frames, then the means and accuracies."""
    lines = ["| class | share of real points % | IoU real % | IoU simulated val % |", "|---|---|---|---|"]
    for name, iou in real["iou_per_class"].items():
        lines.append(f"| {name} | {pct(real['share_per_class'][name])} | {pct(iou)} | "
                     f"{pct(sim_val['iou_per_class'].get(name))} |")
    major = f"mIoU over the {len(real['major_classes'])} classes with >= {pct(MAJOR_SHARE)} % of the points"
    lines += [f"| mIoU over the {len(real['iou_per_class'])} classes present | | {pct(real['miou_present'])} | "
              f"{pct(sim_val['miou_present'])} |",
              f"| {major} | | {pct(real['miou_major'])} | {pct(sim_val['miou_major'])} |",
              f"| accuracy | | {pct(real['accuracy'])} | {pct(sim_val['accuracy'])} |",
              f"| baseline accuracy: the most frequent class everywhere ({real['baseline_class']} in the real "
              f"frames) | | {pct(real['baseline_accuracy'])} | {pct(sim_val['baseline_accuracy'])} |"]
    return "\n".join(lines)


def statistics_table(sim: dict, real: dict) -> str:
    """Simulated against real statistics (``sim / real`` in each cell) of every class present in either set."""
    columns = [("share %", "share", pct), ("remission median", "remission_median", num),
               ("zero remission %", "remission_zero", pct), ("z p5 (m)", "z_p5", num), ("z p95 (m)", "z_p95", num),
               ("range median (m)", "range_median", num), ("range p99 (m)", "range_p99", num),
               ("range max (m)", "range_max", num)]
    lines = ["| class (sim / real) | " + " | ".join(c[0] for c in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    names = [n for n in sim if n != "all"] + [n for n in real if n not in sim] + ["all"]
    for name in names:
        cells = [f"{fmt(sim[name][key]) if name in sim else '-'} / {fmt(real[name][key]) if name in real else '-'}"
                 for _, key, fmt in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, required=True, help="seed of the simulated scans and of the training run")
    p.add_argument("--real", default=DEFAULT_REAL,
                   help="SemanticKITTI root of the real frames (default: the repository's copies)")
    p.add_argument("--json", default=None, help="also write the report to this file")
    p.add_argument("--out", default=None, help="working folder (default: exp/sim2real/seed<N>)")
    p.add_argument("--train-frames", type=int, default=120, help="simulated training scans")
    p.add_argument("--val-frames", type=int, default=8, help="simulated validation scans")
    p.add_argument("--epochs", type=int, default=7, help="training epochs (passes over the training scans)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="simulator azimuth factor (1: the real sensor's points per scan)")
    p.add_argument("--grid", type=float, default=0.1,
                   help="voxel size (m) of the model's input, in training and testing")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate of every parameter (default: the config's, 0.002 and 0.0002 for the "
                        "attention blocks); choose it on simulated validation scans, never on the real frames")
    args = p.parse_args(argv)
    if args.train_frames < 1 or args.val_frames < 1 or args.epochs < 1:
        p.error("--train-frames, --val-frames and --epochs must be >= 1")
    if args.grid <= 0 or (args.lr is not None and args.lr <= 0):
        p.error("--grid and --lr must be > 0")
    args.out = args.out or os.path.join(REPO, "exp", "sim2real", f"seed{args.seed}")
    return args


def load_real(root: str, seed: int):
    """The labelled real frames under ``root`` and their ``point_sample``; reading every frame here checks them
    before the training rather than after it (a bad folder or file ends the tool with its name)."""
    try:
        frames = kitti_frames(root, labelled_sequences(root))
        return frames, point_sample(frames, STATS_POINTS, seed)
    except (OSError, ValueError) as err:
        raise SystemExit(f"sim2real: --real {root}: {err}") from err


def evaluate(cfg, sim_root: str, real_frames, out: str, names: list[str]) -> tuple[dict, dict]:
    """``segmentation_scores`` of the trained model (``cfg.weight``) on the real frames and on the simulated
    validation scans."""
    sim_frames = kitti_frames(sim_root, "val")
    folders = {key: os.path.join(out, "test", key) for key in ("sim_val", "real")}
    model = predict_frames(cfg, None, sim_frames, folders["sim_val"])
    predict_frames(cfg, model, real_frames, folders["real"])
    return (score_predictions(real_frames, os.path.join(folders["real"], "result"), names),
            score_predictions(sim_frames, os.path.join(folders["sim_val"], "result"), names))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from pointcept_distill.data.semantic_kitti import KITTI_NAMES
    from pointcept_distill.data.simulator import generate
    from pointcept_distill.utils.misc import atomic_write
    names = list(KITTI_NAMES)
    started = time.perf_counter()
    real_frames, real_points = load_real(args.real, args.seed)
    for sub in ("data", "train", "test"):
        shutil.rmtree(os.path.join(args.out, sub), ignore_errors=True)
    sim_root = os.path.join(args.out, "data", "semantic_kitti")
    print(f"[sim2real] {len(real_frames.data_list)} real frames read; simulating {args.train_frames} + "
          f"{args.val_frames} scans (seed {args.seed}) to {sim_root}", flush=True)
    generate("semantic_kitti", sim_root, train=args.train_frames, val=args.val_frames, seed=args.seed,
             scale=args.scale)
    minutes = dict(data=(time.perf_counter() - started) / 60)
    print(f"[sim2real] training for {args.epochs} epochs in {os.path.join(args.out, 'train')}", flush=True)
    cfg = build_config(args.seed, args.epochs, args.train_frames, args.out, sim_root, args.grid, args.lr)
    cfg.weight = train(cfg)
    minutes["train"] = (time.perf_counter() - started) / 60 - minutes["data"]
    print("[sim2real] testing on the simulated validation scans and the real frames", flush=True)
    real, sim_val = evaluate(cfg, sim_root, real_frames, args.out, names)
    sim_points = point_sample(kitti_frames(sim_root, "train"), STATS_POINTS, args.seed)
    statistics = {key: class_statistics(p["segment"], p["strength"], p["coord"], names)
                  for key, p in (("sim", sim_points), ("real", real_points))}
    minutes["total"] = (time.perf_counter() - started) / 60
    print(f"\n[sim2real] seed {args.seed}: sim-tiny trained on {args.train_frames} simulated scans ({args.epochs} "
          f"epochs, scale {args.scale}, grid {args.grid} m, lr {args.lr or 'of the config'}, "
          f"{minutes['train']:.1f} min), tested on {len(real_frames.data_list)} real frames of {args.real}\n\n"
          f"{scores_table(real, sim_val)}\n\n{statistics_table(statistics['sim'], statistics['real'])}", flush=True)
    report = dict(real, sim_val=sim_val, statistics=statistics, minutes=minutes,
                  settings=dict(seed=args.seed, real=os.path.abspath(args.real), frames=len(real_frames.data_list),
                                train_frames=args.train_frames, val_frames=args.val_frames, epochs=args.epochs,
                                scale=args.scale, grid=args.grid, lr=args.lr,
                                config=os.path.relpath(CONFIG, REPO)))
    for path in filter(None, (os.path.join(args.out, "sim2real.json"), args.json)):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        atomic_write(path, lambda tmp: write_json(report, tmp))
    return report


def write_json(report: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
