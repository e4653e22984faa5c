"""Evaluate one checkpoint on several datasets in the common label space and print a summary table.

    python tools/cross_eval.py --config-file exp/nuscenes/sim-tiny/config.py \\
        --weight exp/nuscenes/sim-tiny/model/model_best.pth \\
        --root nuscenes=data/sim/nuscenes --root semantic_kitti=data/sim/semantic_kitti \\
        --root waymo=data/sim/waymo [--modes single_pass tta] [--save-path DIR] [--json FILE]

For each target dataset and mode it runs ``CrossDatasetTester`` (one process), writes
``<save-path>/result/cross_*.json`` and prints the markdown tables (mIoU over the shared classes, and IoU
per common class). A single ``scripts/test.sh`` run does one target:
``sh scripts/test.sh -d DATASET -n NAME -- test.type=CrossDatasetTester test.target=T test.target_root=DIR``.
"""
from __future__ import annotations

import argparse
import json
import os

import pointcept_distill.data  # noqa: F401  (registers datasets and transforms)
import pointcept_distill.models  # noqa: F401  (registers models and losses)
from pointcept_distill.engine.cross_eval import cross_eval_table, markdown_summary, parse_roots
from pointcept_distill.engine.defaults import default_config_parser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, help="the model's config (e.g. exp/.../config.py)")
    parser.add_argument("--weight", required=True, help="checkpoint to evaluate")
    parser.add_argument("--root", action="append", required=True, help="TARGET=DATA_ROOT, repeatable")
    parser.add_argument("--modes", nargs="+", default=["single_pass", "tta"], choices=["single_pass", "tta"])
    parser.add_argument("--save-path", default=None, help="where result/ goes (default: the config's folder)")
    parser.add_argument("--source", default=None, help="training dataset of a single-dataset model")
    parser.add_argument("--head", default=None, help="head of a multi-head model (default: the target's)")
    parser.add_argument("--json", default=None, help="also write every summary to this file")
    args = parser.parse_args()
    save_path = args.save_path or os.path.dirname(os.path.abspath(args.config_file))
    cfg = default_config_parser(args.config_file, {"weight": args.weight, "save_path": save_path}, dump=False)
    summaries = cross_eval_table(cfg, parse_roots(args.root), args.modes, source=args.source, head=args.head)
    print(markdown_summary(summaries))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summaries, f, indent=2)


if __name__ == "__main__":
    main()
