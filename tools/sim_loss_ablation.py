"""Which distillation loss helps or hurts, small enough for a CPU: one sim-tiny teacher, then its student alone,
with each loss alone and with all of them, every student from the same teacher checkpoint.

    python tools/sim_loss_ablation.py --generate data/sim-ablation --train-frames 32 --val-frames 4 --scale 0.5 \\
        --epochs 12 --width 2 --out exp/sim-ablation [--grad-weights 10,1]

Uses ``tools/cross_dataset_matrix.py``'s configs and settings (``configs/<source>/*-sim-tiny.py``, widened by
``--width``) on one source; scores are its mIoU over the common classes (single-pass and TTA). Prints a markdown
table and writes ``<out>/ablation.json`` and ``<out>/ablation.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(TOOLS), TOOLS]

import cross_dataset_matrix as matrix  # noqa: E402

LOSSES = ("logit_kd", "grad_kd", "topo_kd")


def variants(grad_weights: list[float]) -> dict[str, dict]:
    """Row name -> ``distill`` overrides (None switches a loss off)."""
    rows = {"student alone": {k: None for k in LOSSES}, "+logit KD": {"grad_kd": None, "topo_kd": None}}
    for weight in grad_weights:
        rows[f"+gradient-guided (λ {weight:g})"] = {"logit_kd": None, "topo_kd": None,
                                                     "grad_kd": {"loss_weight": weight}}
    rows["+topology"] = {"logit_kd": None, "grad_kd": None}
    for weight in grad_weights:
        rows[f"all three (λ {weight:g})"] = {"grad_kd": {"loss_weight": weight}}
    return rows


def select(rows: dict[str, dict], names: str | None) -> dict[str, dict]:
    """The rows named in ``names`` (comma-separated, e.g. "student alone,all three (λ 1)"), or all of them."""
    if not names:
        return rows
    wanted = [n.strip() for n in names.split(",")]
    unknown = [n for n in wanted if n not in rows]
    if unknown:
        raise SystemExit(f"sim_loss_ablation: --rows {unknown} unknown; rows are {list(rows)}")
    return {n: rows[n] for n in wanted}


def apply(distill, overrides: dict) -> None:
    for key, value in overrides.items():
        if value is None:
            distill[key] = None
        else:
            distill[key].update(value)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default="nuscenes", choices=matrix.DATASETS)
    p.add_argument("--grad-weights", default="10", help="gradient-guided loss weights to try, comma-separated")
    p.add_argument("--rows", default=None, help="train only these students (comma-separated row names)")
    args, rest = p.parse_known_args(argv)
    settings = matrix.parse_args([*rest, "--sources", args.source, "--targets", args.source, "--tta"])
    if settings.generate:
        root = os.path.join(settings.generate, args.source)
        matrix.generate(args.source, root, train=settings.train_frames, val=settings.val_frames, seed=settings.seed,
                        scale=settings.scale)
    else:
        root = matrix.parse_roots(settings.root)[args.source]
    roots = {args.source: root}
    modes = ["single_pass", "tta"]

    def run(name: str, kind: str, teacher: str | None = None, overrides: dict | None = None) -> tuple[str, dict]:
        folder = re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_")          # "+logit KD" -> "logit_KD"
        cfg = matrix.load_config(args.source, kind, os.path.join(settings.out, folder), settings, roots, teacher)
        if overrides is not None:
            apply(cfg.distill, overrides)
        weight = matrix.train(cfg)
        scores = matrix.evaluate(cfg, weight, roots, [args.source], modes)[args.source]
        print(f"[sim_loss_ablation] {name}: " + ", ".join(f"{m} {scores[m]['mIoU']:.4f}" for m in modes), flush=True)
        return weight, {m: scores[m]["mIoU"] for m in modes}

    results: dict[str, dict] = {}
    teacher, results["teacher"] = run("teacher", "semseg-pt-v3m1")
    rows = select(variants([float(w) for w in args.grad_weights.split(",")]), args.rows)
    for name, overrides in rows.items():
        _, results[name] = run(name, "distill-ptv3", teacher, overrides)
    lines = [f"| model (mIoU %, {args.source} val) | single-pass | TTA |", "|---|---|---|"]
    lines += [f"| {name} | {100 * r['single_pass']:.1f} | {100 * r['tta']:.1f} |" for name, r in results.items()]
    table = "\n".join(lines)
    print(table)
    os.makedirs(settings.out, exist_ok=True)
    with open(os.path.join(settings.out, "ablation.json"), "w", encoding="utf-8") as f:
        json.dump(dict(results=results, settings=vars(settings), source=args.source), f, indent=2)
    with open(os.path.join(settings.out, "ablation.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    return results


if __name__ == "__main__":
    main()
