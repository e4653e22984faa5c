"""``CrossDatasetTester``: a checkpoint evaluated on another dataset than its training one.

The model's predictions and the target dataset's labels are both mapped into the common label space
(``data/label_space.py``); IoU is taken per common class, and mIoU over the classes both sides have (the
model's output classes that reach a common class, and the common classes the target labels). The model's
output space is read from its config:

- ``MultiHeadSegmentor``: the head ``head`` (default: the target's own head), its native classes;
- ``data.label_space == "common"``: the common classes;
- otherwise the native classes of the training dataset (``source``, default from ``data.train.type``).

The target's standard pipeline is used (``data/pipelines.py``): its validation pipeline with
``single_pass=True``, else its test pipeline with its test-time augmentation (fragment voting).

    sh scripts/test.sh -d nuscenes -n sim-tiny -- test.type=CrossDatasetTester test.target=waymo \
        test.target_root=data/sim/waymo [test.single_pass=True] [test.capture=graphs]

writes ``<save_path>/result/cross_<model>[-<head>]_to_<target>_<mode>.json``.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Mapping, Sequence

import numpy as np
from torch import nn
from torch.utils.data import DataLoader

from ..data.label_space import COMMON_NAMES, common_classes, common_lookup, to_common
from ..data.pipelines import DATASET_TYPES, data_config
from ..utils import comm
from ..utils.logger import get_root_logger
from ..utils.misc import intersection_and_union, semseg_metrics
from ..utils.progress import StageProgress
from .predictor import Predictor
from .test import TESTERS, SemSegTester

__all__ = ["CrossDatasetTester", "model_output_space", "cross_eval_table", "markdown_summary",
           "parse_roots"]


def model_output_space(cfg: Any, target: str, source: str | None = None,
                       head: str | None = None) -> dict:
    """What the model of ``cfg`` predicts: ``name``, ``lut`` (output id -> common id), ``classes`` (common
    ids it can predict), and for multi-head models ``head_index`` and ``slice`` (its union ids)."""
    if cfg.model.get("type") == "MultiHeadSegmentor":
        names, sizes = list(cfg.model.head_names), list(cfg.model.num_classes)
        head = head or target
        if head not in names:
            raise KeyError(f"CrossDatasetTester: the model has no head {head!r} (heads: {names}); "
                           f"pass test.head=<one of them>")
        i = names.index(head)
        start = sum(sizes[:i])
        return dict(name="joint-heads", head=head, lut=common_lookup(head), classes=common_classes(head),
                    head_index=i, slice=slice(start, start + sizes[i]))
    if cfg.data.get("label_space") == "common":
        datasets = list(cfg.data.get("datasets") or DATASET_TYPES)
        classes = sorted({c for d in datasets for c in common_classes(d)})
        return dict(name="joint-common", lut=np.arange(len(COMMON_NAMES)), classes=classes)
    if source is None:
        train_type = cfg.data.train.get("type")
        found = [name for name, spec in DATASET_TYPES.items() if spec[0] == train_type]
        if not found:
            raise KeyError(f"CrossDatasetTester: cannot tell the training dataset from data.train.type="
                           f"{train_type!r}; pass test.source=<{'|'.join(DATASET_TYPES)}>")
        source = found[0]
    return dict(name=source, lut=common_lookup(source), classes=common_classes(source))


@TESTERS.register_module()
class CrossDatasetTester(SemSegTester):
    """Evaluates ``cfg.weight`` on ``target`` (see the module docstring).

    Args:
        target: dataset to test on ("nuscenes", "semantic_kitti", "waymo").
        target_root: its data root.
        source: the training dataset of a single-dataset model (default: from ``data.train.type``).
        head: the head of a ``MultiHeadSegmentor`` to use (default: ``target``).
        grid_size: voxel size of the target pipeline.
        single_pass, verbose, model, test_loader, capture, capture_dtype: as ``SemSegTester``.

    Predictions are the parent's (``SemSegTester.predict``), in the model's output ids: for a multi-head
    model every point is scored by ``head``'s logits alone.
    """

    def __init__(self, cfg: Any, target: str, target_root: str, model: nn.Module | None = None,
                 test_loader: DataLoader | None = None, verbose: bool = False, single_pass: bool = False,
                 source: str | None = None, head: str | None = None, grid_size: float = 0.05,
                 capture: str | None = None, capture_dtype: str | None = None) -> None:
        if target not in DATASET_TYPES:
            raise KeyError(f"CrossDatasetTester: target={target!r}, expected one of {sorted(DATASET_TYPES)}")
        self.target, self.target_root, self.grid_size = target, target_root, grid_size
        self.space = model_output_space(cfg, target, source, head)
        super().__init__(cfg, model, test_loader, verbose, single_pass=single_pass, capture=capture,
                         capture_dtype=capture_dtype)

    def build_predictor(self, capture: str | None, capture_dtype: str | None) -> Predictor:
        """``SemSegTester``'s predictor, with a multi-head model's ``head`` for every point and its classes."""
        return Predictor(self.model, self.device, capture, capture_dtype,
                         dataset_index=self.space.get("head_index"), classes=self.space.get("slice"))

    def test_dataset_cfg(self) -> dict:
        return data_config(self.target, self.target_root, self.grid_size)["val" if self.single_pass else "test"]

    def test(self) -> dict | None:
        ignore = -1
        lut, num = self.space["lut"], len(COMMON_NAMES)
        self.model.eval()
        records: dict[str, np.ndarray] = {}
        total, started, self._last_progress = len(self.test_loader), time.perf_counter(), None
        for i, ((index, data),) in enumerate(self.test_loader):
            pred, labels = self.predict(data)
            pred_common = np.where(pred >= 0, lut[np.clip(pred, 0, len(lut) - 1)], ignore)
            name = self.scan_name(index, data)
            records[name] = np.stack(
                intersection_and_union(pred_common, to_common(labels, self.target, ignore), num, ignore))
            self.log_progress(i, total, started, name)
        merged: dict[str, np.ndarray] = {}
        for part in comm.gather(records):
            merged.update(part)
        summary = self._summarize_cross(merged) if comm.is_main_process() else None
        comm.synchronize()
        return summary

    def _summarize_cross(self, records: dict[str, np.ndarray]) -> dict:
        if not records:
            raise RuntimeError(f"CrossDatasetTester: no scans of {self.target} under {self.target_root}")
        inter, union, target = np.sum(list(records.values()), axis=0)
        both = sorted(set(self.space["classes"]) & set(common_classes(self.target)))
        shared = [c for c in both if target[c] > 0]  # classes absent from every test scan are left out
        if not shared:
            raise RuntimeError(f"CrossDatasetTester: no class of {self.space['name']} is labelled in the "
                               f"{self.target} scans")
        metrics = semseg_metrics(inter[shared], union[shared], target[shared])
        mode = "single_pass" if self.single_pass else "tta"
        summary = dict(model=self.space["name"], head=self.space.get("head"), target=self.target, mode=mode,
                       num_scans=len(records),
                       weight=self.cfg.get("weight"), mIoU=metrics["mIoU"], mAcc=metrics["mAcc"],
                       allAcc=metrics["allAcc"], shared_classes=[COMMON_NAMES[c] for c in shared],
                       absent_classes=[COMMON_NAMES[c] for c in both if c not in shared],
                       iou_per_class={COMMON_NAMES[c]: float(v) for c, v in zip(shared, metrics["iou_class"])})
        self.logger.info(f"Cross-dataset {summary['model']} -> {self.target} ({mode}): mIoU {metrics['mIoU']:.4f} "
                         f"over {len(shared)} shared classes")
        for name, iou in summary["iou_per_class"].items():
            self.logger.info(f"  {name}: iou {iou:.4f}")
        head = f"-{summary['head']}" if summary["head"] else ""
        path = os.path.join(self.cfg.save_path, "result", f"cross_{summary['model']}{head}_to_{self.target}_{mode}.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(f"{path}.tmp", "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
        os.replace(f"{path}.tmp", path)
        summary["path"] = path
        return summary


def cross_eval_table(cfg: Any, roots: Mapping[str, str], modes: Sequence[str] = ("single_pass", "tta"),
                     model: nn.Module | None = None, **tester_kwargs: Any) -> list[dict]:
    """``CrossDatasetTester`` summaries of one model (``cfg.weight``, loaded once, or ``model``) on every
    dataset of ``roots`` (name -> data root) in every mode ("single_pass", "tta")."""
    unknown = set(modes) - {"single_pass", "tta"}
    if unknown:
        raise ValueError(f"cross_eval_table: unknown modes {sorted(unknown)} (single_pass, tta)")
    summaries = []
    progress = StageProgress("cross_eval", len(roots) * len(modes), log=get_root_logger().info)
    for target, root in roots.items():
        for mode in modes:
            progress.start(f"{target} ({root}), {mode}")
            tester = CrossDatasetTester(cfg, target=target, target_root=root, model=model,
                                        single_pass=mode == "single_pass", **tester_kwargs)
            model = tester.model
            summaries.append(tester.test())
    return summaries


def markdown_summary(summaries: Sequence[dict]) -> str:
    """Two markdown tables: mIoU per target and mode, then IoU per common class ("-": not shared)."""
    targets = list(dict.fromkeys(s["target"] for s in summaries))
    modes = list(dict.fromkeys(s["mode"] for s in summaries))
    by = {(s["target"], s["mode"]): s for s in summaries}
    model = summaries[0]["model"] if summaries else "?"
    lines = [f"| {model} -> target | shared classes | " + " | ".join(f"mIoU ({m})" for m in modes) + " |",
             "|---|---|" + "---|" * len(modes)]
    for t in targets:
        first = next(by[(t, m)] for m in modes if (t, m) in by)
        cells = [f"{100 * by[(t, m)]['mIoU']:.1f}" if (t, m) in by else "-" for m in modes]
        lines.append(f"| {t} | {len(first['shared_classes'])} | " + " | ".join(cells) + " |")
    lines += ["", "| target | mode | " + " | ".join(COMMON_NAMES) + " |", "|---|---|" + "---|" * len(COMMON_NAMES)]
    for s in summaries:
        cells = [f"{100 * s['iou_per_class'][c]:.1f}" if c in s["iou_per_class"] else "-" for c in COMMON_NAMES]
        lines.append(f"| {s['target']} | {s['mode']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_roots(items: Sequence[str]) -> dict[str, str]:
    """Command-line ``["name=dir", ...]`` -> ``{name: dir}`` in order."""
    roots = {}
    for item in items:
        name, sep, root = item.partition("=")
        if not sep or not name or not root:
            raise ValueError(f"parse_roots: expected NAME=DATA_ROOT, got {item!r}")
        roots[name] = root
    return roots
