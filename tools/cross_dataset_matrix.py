"""Train-on-X / test-on-Y matrix on the simulator's three profiles, for a teacher and a distilled student.

For each source (nuscenes, semantic_kitti, waymo, joint) it trains the ``*-sim-tiny`` teacher of
``configs/<source>/``, distils its ``distill-ptv3-sim-tiny`` student from it, and evaluates both on every
target with ``CrossDatasetTester`` (common label space, mIoU over the classes both sides label). The
``joint`` row is the joint model (one head per dataset: each target is scored with its own head), so
comparing it with the diagonal is joint against single-dataset training. One process, one device.

    python tools/cross_dataset_matrix.py --generate data/sim-matrix --train-frames 8 --val-frames 2 \\
        --scale 0.25 --epochs 6 --width 2 --out exp/matrix [--tta]
    python tools/cross_dataset_matrix.py --root nuscenes=DIR --root semantic_kitti=DIR --root waymo=DIR ...

``--gpus 0,1,2,3`` trains the sources in parallel, one process per source on one of those GPUs (round robin),
and merges their results (each process writes ``<out>/<source>/matrix.json``).

Prints markdown matrices and writes ``<out>/matrix.json`` and ``<out>/matrix.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import pointcept_distill.data  # noqa: F401  (registers datasets and transforms)
import pointcept_distill.distill  # noqa: F401  (registers the distillation trainer and losses)
import pointcept_distill.models  # noqa: F401  (registers models and losses)
from pointcept_distill.data.simulator import generate
from pointcept_distill.engine import TRAINERS, default_config_parser, default_setup
from pointcept_distill.engine.cross_eval import cross_eval_table, parse_roots
from pointcept_distill.utils.progress import StageProgress, wait_with_progress

DATASETS = ("nuscenes", "semantic_kitti", "waymo")
SOURCES = DATASETS + ("joint",)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _widen(model: dict, k: int) -> None:
    """Multiply every channel width of a PT-v3m1 segmentor config by ``k`` (head counts unchanged)."""
    backbone = model["backbone"]
    backbone["enc_channels"] = tuple(c * k for c in backbone["enc_channels"])
    backbone["dec_channels"] = tuple(c * k for c in backbone["dec_channels"])
    model["backbone_out_channels"] = model["backbone_out_channels"] * k


def _set_roots(cfg, source: str, roots: dict[str, str]) -> None:
    if cfg.data.train.type == "ConcatDataset":
        for split in ("train", "val"):
            for sub, name in zip(cfg.data[split].datasets, cfg.data.datasets):
                sub.data_root = roots[name]
        cfg.data.test.data_root = roots[cfg.data.datasets[0]]
    else:
        for split in ("train", "val", "test"):
            cfg.data[split].data_root = roots[source]


def load_config(source: str, kind: str, save_path: str, args: argparse.Namespace, roots: dict[str, str],
                teacher_weight: str | None = None):
    """The ``kind`` ("semseg-pt-v3m1" or "distill-ptv3") sim-tiny config of ``source`` with the run's settings."""
    path = os.path.join(REPO, "configs", source, f"{kind}-sim-tiny.py")
    options = dict(save_path=save_path, epoch=args.epochs, eval_epoch=args.epochs, evaluate=False,
                   num_worker=args.workers, seed=args.seed, enable_amp=args.amp)
    if args.batch_size:
        options["batch_size"] = args.batch_size
    cfg = default_config_parser(path, options, dump=False)
    cfg.hooks = [h for h in cfg.hooks if h.type not in ("PreciseEvaluator", "SemSegEvaluator",
                                                         "MultiDatasetEvaluator")]
    _set_roots(cfg, source, roots)
    _widen(cfg.model, args.width)
    if teacher_weight is not None:
        _widen(cfg.teacher, args.width)
        cfg.teacher_weight = teacher_weight
    cfg.dump(os.path.join(save_path, "config.py"))
    return cfg


def train(cfg) -> str:
    cfg = default_setup(cfg)
    TRAINERS.build(dict(type=cfg.train.type, cfg=cfg)).train()
    return os.path.join(cfg.save_path, "model", "model_last.pth")


def evaluate(cfg, weight: str, roots: dict[str, str], targets: list[str], modes: list[str]) -> dict:
    """``{target: {mode: {mIoU, shared_classes, iou_per_class}}}`` of the checkpoint ``weight``."""
    cfg.weight = weight
    out: dict[str, dict] = {}
    for s in cross_eval_table(cfg, {t: roots[t] for t in targets}, modes):
        out.setdefault(s["target"], {})[s["mode"]] = {k: s[k] for k in ("mIoU", "shared_classes", "iou_per_class")}
    return out


def markdown(results: dict, targets: list[str], modes: list[str]) -> str:
    """One matrix per model kind and mode: rows train-on, columns test-on, mIoU (%)."""
    blocks = []
    for kind, rows in results.items():
        for mode in modes:
            lines = [f"**{kind}**, {mode}: mIoU (%) over the classes both datasets label", "",
                     "| train \\ test | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
            for source, cols in rows.items():
                cells = [f"{100 * cols[t][mode]['mIoU']:.1f}" if t in cols else "-" for t in targets]
                lines.append(f"| {source} | " + " | ".join(cells) + " |")
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def run_sources(args: argparse.Namespace, roots: dict[str, str], modes: list[str],
                start: float) -> tuple[dict, dict]:
    """Train and evaluate every model of ``args.sources`` here, one after another."""
    results: dict[str, dict] = {"teacher": {}} if args.no_distill else {"teacher": {}, "student": {}}
    stages: dict[str, float] = {}
    kinds = [("teacher", "semseg-pt-v3m1")] + ([] if args.no_distill else [("student", "distill-ptv3")])
    progress = StageProgress("cross_dataset_matrix", 2 * len(args.sources) * len(kinds))
    for source in args.sources:
        folder = os.path.join(args.out, source)
        teacher = None
        for kind, config in kinds:
            tick = time.perf_counter()
            progress.start(f"{source} {kind}: train ({args.epochs} epochs)")
            cfg = load_config(source, config, os.path.join(folder, kind), args, roots, teacher)
            weight = train(cfg)
            progress.start(f"{source} {kind}: evaluate on {', '.join(args.targets)} ({', '.join(modes)})")
            results[kind][source] = evaluate(cfg, weight, roots, args.targets, modes)
            teacher = weight
            seconds = stages[f"{source}/{kind}"] = time.perf_counter() - tick
            print(f"[cross_dataset_matrix] {source} {kind}: trained and evaluated in {seconds:.1f} s "
                  f"({time.perf_counter() - start:.1f} s so far)", flush=True)
    progress.done()
    return results, stages


def run_on_gpus(args: argparse.Namespace, roots: dict[str, str]) -> tuple[dict, dict]:
    """One process per source (``--sources S --out <out>/S``), each on one GPU of ``--gpus``; results merged."""
    gpus = args.gpus.split(",")
    settings = [f"--epochs={args.epochs}", f"--width={args.width}", f"--seed={args.seed}", f"--workers={args.workers}",
                *(f"--root={name}={root}" for name, root in roots.items()), "--targets", *args.targets,
                *([f"--batch-size={args.batch_size}"] if args.batch_size else []),
                *(flag for flag, on in (("--amp", args.amp), ("--tta", args.tta), ("--no-distill", args.no_distill))
                  if on)]
    procs = {}
    for i, source in enumerate(args.sources):
        folder = os.path.join(args.out, source)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "matrix.log")
        with open(path, "w", encoding="utf-8") as log:  # the child keeps its copy
            procs[source] = (subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), *settings, "--sources", source, "--out", folder],
                stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)], "PYTHONUNBUFFERED": "1"}), path)
    print(f"[cross_dataset_matrix] {len(procs)} sources in parallel on GPUs {args.gpus} (logs: "
          f"{args.out}/<source>/matrix.log); progress every 30 s", flush=True)
    codes = wait_with_progress(procs, every=30.0)
    failed = [s for s, code in codes.items() if code != 0]
    if failed:
        raise SystemExit(f"cross_dataset_matrix: the runs of {failed} failed; see {args.out}/<source>/matrix.log")
    results: dict[str, dict] = {}
    stages: dict[str, float] = {}
    for source in args.sources:
        with open(os.path.join(args.out, source, "matrix.json"), encoding="utf-8") as f:
            part = json.load(f)
        for kind, rows in part["results"].items():
            results.setdefault(kind, {}).update(rows)
        stages.update(part["seconds_per_stage"])
    return results, stages


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--root", action="append", help="DATASET=DATA_ROOT of existing data (all three)")
    data.add_argument("--generate", metavar="DIR", help="simulate the three profiles under DIR/<profile>")
    parser.add_argument("--train-frames", type=int, default=4, help="simulated training frames per profile")
    parser.add_argument("--val-frames", type=int, default=2, help="simulated validation frames per profile")
    parser.add_argument("--scale", type=float, default=0.15, help="simulator azimuth scale (points per frame)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of every model")
    parser.add_argument("--width", type=int, default=1, help="channel multiplier of the sim-tiny models")
    parser.add_argument("--batch-size", type=int, default=None, help="override the configs' batch size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA)")
    parser.add_argument("--workers", type=int, default=0,
                        help="data-loading processes (0: in the main process; on a GPU machine 4-8 keep the tiny "
                             "models from waiting for their augmentations)")
    parser.add_argument("--tta", action="store_true", help="also evaluate with test-time augmentation")
    parser.add_argument("--no-distill", action="store_true", help="teachers only")
    parser.add_argument("--gpus", default=None,
                        help="comma-separated GPU ids: train the sources in parallel, one process each (round robin)")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    parser.add_argument("--targets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--out", default="exp/matrix", help="experiment folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    if args.generate:
        roots = {p: os.path.join(args.generate, p) for p in DATASETS}
        for profile, root in roots.items():
            print(f"[cross_dataset_matrix] simulating {args.train_frames}+{args.val_frames} {profile} frames into "
                  f"{root}", flush=True)
            generate(profile, root, train=args.train_frames, val=args.val_frames, seed=args.seed, scale=args.scale)
    else:
        roots = parse_roots(args.root)
    needed = set(args.targets) | (set(args.sources) - {"joint"}) | (set(DATASETS) if "joint" in args.sources else set())
    missing = sorted(needed - set(roots))
    if missing:
        raise SystemExit(f"cross_dataset_matrix: no --root for {missing}")
    modes = ["single_pass"] + (["tta"] if args.tta else [])
    if args.gpus:
        results, stages = run_on_gpus(args, roots)
    else:
        results, stages = run_sources(args, roots, modes, start)
    table = markdown(results, args.targets, modes)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    report = dict(results=results, settings=vars(args), roots=roots, seconds=time.perf_counter() - start,
                  seconds_per_stage=stages)
    with open(os.path.join(args.out, "matrix.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(args.out, "matrix.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    return report


if __name__ == "__main__":
    main()
