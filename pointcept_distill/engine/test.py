"""``TESTERS`` and ``SemSegTester``: Pointcept's semantic-segmentation test protocol, or one pass per scan.

Fragment mode (default, Pointcept's): each scan of ``cfg.data.test`` (``test_mode=True``) arrives as
``fragment_list`` (every augmentation view, split by test-mode GridSample); every fragment is one forward
pass, softmax probabilities are summed per point (voting, ``engine.predictor.Predictor``), the argmax is
mapped back to every original point through ``inverse`` and scored against ``origin_segment``.

Single-pass mode (``test = dict(type="SemSegTester", single_pass=True)``): each scan of ``cfg.data.val``
(the validation pipeline: one GridSample, ``inverse``) is one forward pass, mapped back the same way.

Both write ``result/<scan>_pred.npy`` (train ids per original point) and ``result/summary.json``
(per-class IoU and accuracy, mIoU, mAcc, allAcc, seconds per scan). Unlike Pointcept, existing
``_pred.npy`` files are never loaded unless ``reuse_pred=True`` (and then with a warning).

``submission=True`` (``-- test.submission=true``) also writes each scan's prediction in its benchmark's
format under ``result/submit/`` (``pointcept_distill.data.submission``: SemanticKITTI ``.label`` files,
nuScenes-lidarseg ``.bin`` files and ``submission.json``); a prediction that does not cover every point of
the scan's file is an error. Progress (``Test: [i/N] <scan> Remain h:mm:ss``) is logged after the
first and the last scan and at most every 10 s in between (every scan with ``verbose``).
"""
from __future__ import annotations

import datetime
import glob
import json
import os
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..utils import comm
from ..utils.logger import get_root_logger
from ..utils.misc import intersection_and_union, semseg_metrics
from ..utils.registry import Registry
from ..utils.tensors import to_numpy
from .checkpoint import CheckpointError, is_none_path, load_checkpoint, remap_state_dict
from .dataloader import EpochSampler, SeededSamples, unpack_collate
from .defaults import default_device
from .predictor import Predictor

__all__ = ["TESTERS", "TesterBase", "SemSegTester"]

TESTERS = Registry("testers")


class TesterBase:
    """Builds the model (loading ``cfg.weight`` strictly) and a one-scan-at-a-time test loader.

    Args:
        cfg: the run config.
        model: an already loaded model (``PreciseEvaluator`` passes the trainer's); logs then go to the
            existing log file, otherwise to ``save_path/test.log``.
        test_loader: a ready loader; by default one is built from ``cfg.data.test``.
        verbose: log every scan.
    """

    def __init__(self, cfg: Any, model: nn.Module | None = None, test_loader: DataLoader | None = None,
                 verbose: bool = False) -> None:
        self.cfg, self.verbose = cfg, verbose
        self.logger = get_root_logger(None if model is not None else os.path.join(cfg.save_path, "test.log"))
        self.device = default_device()
        self.model = model if model is not None else self.build_model()
        self.test_loader = test_loader if test_loader is not None else self.build_test_loader()

    def build_model(self) -> nn.Module:
        from ..models import build_model
        weight = self.cfg.get("weight")
        if is_none_path(weight) or not os.path.isfile(weight):
            raise CheckpointError(f"=> No checkpoint found at '{weight}' (set weight=<file>)")
        model = build_model(self.cfg.model).to(self.device)
        ckpt = load_checkpoint(weight)
        try:
            model.load_state_dict(remap_state_dict(ckpt["state_dict"], False), strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"weight '{weight}' does not match cfg.model: {err}") from err
        self.logger.info(f"=> Loaded weight '{weight}' (epoch {ckpt.get('epoch')})")
        n_params = sum(p.numel() for p in model.parameters())
        self.logger.info(f"Num params: {n_params}")
        return model

    def test_dataset_cfg(self) -> dict:
        return self.cfg.data.test

    def build_test_loader(self) -> DataLoader:
        from ..data.builder import build_dataset
        dataset = build_dataset(self.test_dataset_cfg())
        seed = int(self.cfg.get("seed") or 0)
        sampler = EpochSampler(len(dataset), shuffle=False, seed=seed,
                               rank=comm.get_rank(), world_size=comm.get_world_size(), pad=False)
        workers = min(1, int(self.cfg.get("num_worker_per_gpu", 0) or 0))
        return DataLoader(SeededSamples(dataset, seed), batch_size=1, sampler=sampler, num_workers=workers,
                          collate_fn=unpack_collate)

    def test(self) -> dict | None:
        raise NotImplementedError


@TESTERS.register_module()
class SemSegTester(TesterBase):
    """Semantic-segmentation tester (see the module docstring for both modes).

    Args:
        single_pass: one forward pass per scan over ``cfg.data.val`` instead of fragment voting.
        reuse_pred: load existing ``result/<scan>_pred.npy`` instead of predicting (logged per scan).
        capture: None (eager), "graphs" or "compiled": run the model through ``CapturedSegmentor``
            (fixed-capacity batches replayed from CUDA graphs; same predictions, faster on a GPU).
        capture_dtype: autocast of the captured model ("bfloat16", "float16"), or None for float32.
            Both are passed to the tester's ``Predictor`` (``self.predictor``), which scores every scan.
        submission: also write the benchmark's submission files (see the module docstring).
        submission_options: options of the dataset's format, e.g. ``dict(meta=dict(use_external=True))`` for
            nuScenes (``-- test.submission_options.meta.use_external=true``).
    """

    def __init__(self, cfg: Any, model: nn.Module | None = None, test_loader: DataLoader | None = None,
                 verbose: bool = False, single_pass: bool = False, reuse_pred: bool = False,
                 capture: str | None = None, capture_dtype: str | None = None,
                 submission: bool = False, submission_options: dict | None = None) -> None:
        self.single_pass, self.reuse_pred = single_pass, reuse_pred
        super().__init__(cfg, model, test_loader, verbose)
        self.predictor = self.build_predictor(capture, capture_dtype)
        self.submission = self.build_submission(submission_options) if submission else None

    def build_predictor(self, capture: str | None, capture_dtype: str | None) -> Predictor:
        """The ``Predictor`` that scores every scan (subclasses add what their model needs, e.g. a head)."""
        return Predictor(self.model, self.device, capture, capture_dtype, num_classes=self.cfg.data.num_classes)

    def dataset(self) -> Any:
        """The test dataset (unwrapped from the loader's seeding wrapper)."""
        return getattr(self.test_loader.dataset, "dataset", self.test_loader.dataset)

    def build_submission(self, options: dict | None) -> Any:
        from ..data.submission import build_submission
        writer = build_submission(self.dataset(), os.path.join(self.cfg.save_path, "result", "submit"),
                                  dict(options or {}))
        if writer.num_classes != self.cfg.data.num_classes:
            raise ValueError(f"test.submission: the {type(writer).__name__} format takes {writer.num_classes} "
                             f"classes, the model predicts data.num_classes={self.cfg.data.num_classes}")
        if not writer.is_test_set():
            self.logger.warning(f"test.submission: the test split is {writer.splits}, not the benchmark's test "
                                f"split (data.test.split=test): the files are for a local check only")
        return writer

    def test_dataset_cfg(self) -> dict:
        return self.cfg.data.val if self.single_pass else self.cfg.data.test

    def scan_name(self, index: int, data: dict) -> str:
        if isinstance(data.get("name"), str):
            return data["name"]
        dataset = self.dataset()
        if hasattr(dataset, "get_data_name"):
            return str(dataset.get_data_name(index))
        return f"scan_{index:06d}"

    def predict(self, data: dict) -> tuple[np.ndarray, np.ndarray]:
        """Prediction (the argmax of the predictor's scores) and labels, both over the scan's original points."""
        pred = to_numpy(self.predictor(data, vote=not self.single_pass).argmax(1))
        return pred, to_numpy(data["origin_segment"] if "inverse" in data else data["segment"])

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def test(self) -> dict | None:
        cfg, logger = self.cfg, self.logger
        num_classes, ignore = cfg.data.num_classes, cfg.data.get("ignore_index", -1)
        names = list(cfg.data.get("names") or [str(c) for c in range(num_classes)])
        result_dir = os.path.join(cfg.save_path, "result")
        os.makedirs(result_dir, exist_ok=True)
        stale = glob.glob(os.path.join(result_dir, "*_pred.npy"))
        if stale and not self.reuse_pred and comm.is_main_process():
            logger.warning(f"{len(stale)} predictions of an earlier run are in {result_dir}: they are not "
                           f"reused and will be overwritten (reuse_pred=True to reuse them)")
        mode = "single_pass" if self.single_pass else "fragment_voting"
        logger.info(f">>>>>>>>>>>>>>>> Start Evaluation ({mode}) >>>>>>>>>>>>>>>>")
        self.model.eval()
        if self.submission is not None:
            submit_root = self.submission.root
            if comm.is_main_process() and os.path.isdir(submit_root) and any(os.scandir(submit_root)):
                logger.warning(f"{submit_root} holds files of an earlier run: same-named ones are replaced, "
                               f"others stay (remove the folder before packing a submission)")
            if comm.is_main_process():
                self.submission.prepare()
        records: dict[str, dict] = {}
        total, started, self._last_progress = len(self.test_loader), time.perf_counter(), None
        for i, ((index, data),) in enumerate(self.test_loader):
            name = self.scan_name(index, data)
            pred_file = os.path.join(result_dir, f"{name}_pred.npy")
            if self.reuse_pred and os.path.isfile(pred_file):
                logger.warning(f"{name}: reusing the existing prediction {pred_file}")
                pred = np.load(pred_file)
                labels = to_numpy(data["origin_segment"] if "origin_segment" in data else data["segment"])
                seconds = float("nan")
            else:
                self._sync()
                start = time.perf_counter()
                pred, labels = self.predict(data)
                self._sync()
                seconds = time.perf_counter() - start
                np.save(pred_file, pred)
            if self.submission is not None:
                self.write_submission(name, pred, data)
            inter, union, target = intersection_and_union(pred, labels, num_classes, ignore)
            records[name] = dict(intersection=inter, union=union, target=target, seconds=seconds)
            if self.verbose:
                scan = semseg_metrics(inter, union, target)
                logger.info(f"Test: {name} [{i + 1}/{total}]-{len(labels)} Time {seconds:.3f}s "
                            f"mIoU {scan['mIoU']:.4f} allAcc {scan['allAcc']:.4f} "
                            f"Remain {self.remaining(i, total, started)}")
            else:
                self.log_progress(i, total, started, name)
        merged: dict[str, dict] = {}
        for part in comm.gather(records):
            merged.update(part)
        summary = self._summarize(merged, names, mode) if comm.is_main_process() else None
        comm.synchronize()
        return summary

    @staticmethod
    def remaining(i: int, total: int, started: float) -> datetime.timedelta:
        """Time left after scan ``i`` (0-based) of ``total``, at the mean pace so far."""
        elapsed = time.perf_counter() - started
        return datetime.timedelta(seconds=int(elapsed / (i + 1) * (total - i - 1)))

    def log_progress(self, i: int, total: int, started: float, name: str, every: float = 10.0) -> None:
        """``Test: [i/N] <scan> Remain h:mm:ss`` after the first and last scan and at most every ``every`` s."""
        now = time.perf_counter()
        last = getattr(self, "_last_progress", None)
        if i == 0 or i + 1 == total or last is None or now - last >= every:
            self._last_progress = now
            self.logger.info(f"Test: [{i + 1}/{total}] {name} Remain {self.remaining(i, total, started)}")

    def write_submission(self, name: str, pred: np.ndarray, data: dict) -> None:
        """The scan's submission file; it must hold one prediction per point of the scan's file."""
        expected = data.get("num_points")
        if expected is not None and len(pred) != int(expected):
            raise ValueError(f"test.submission: scan {name}: {len(pred)} predictions for {int(expected)} points; "
                             f"the test transform must keep every point or map back to all of them "
                             f"(GridSample(return_inverse=True) with Copy(segment -> origin_segment))")
        path = self.submission.write(name, pred)
        if self.verbose:
            self.logger.info(f"Submission: {path}")

    def _summarize(self, records: dict[str, dict], names: list[str], mode: str) -> dict:
        logger = self.logger
        if not records:
            raise RuntimeError(f"SemSegTester: the test set of {self.cfg.save_path} is empty")
        inter, union, target = (np.sum([r[k] for r in records.values()], axis=0)
                                for k in ("intersection", "union", "target"))
        metrics = semseg_metrics(inter, union, target)
        timed = [r["seconds"] for r in records.values() if not np.isnan(r["seconds"])]
        seconds = float(np.mean(timed)) if timed else float("nan")
        if not np.any(target):
            logger.warning("No labelled point in the test set (an unlabelled test split?): the metrics below are 0")
        logger.info(f"Val result: mIoU/mAcc/allAcc {metrics['mIoU']:.4f}/{metrics['mAcc']:.4f}/"
                    f"{metrics['allAcc']:.4f}")
        for c, name in enumerate(names):
            logger.info(f"Class_{c} - {name} Result: iou/accuracy "
                        f"{metrics['iou_class'][c]:.4f}/{metrics['acc_class'][c]:.4f}")
        logger.info(f"Seconds per scan: {seconds:.4f} over {len(timed)} scan(s)")
        summary = dict(mode=mode, weight=self.cfg.get("weight"), num_scans=len(records),
                       mIoU=metrics["mIoU"], mAcc=metrics["mAcc"], allAcc=metrics["allAcc"],
                       iou_per_class={n: float(v) for n, v in zip(names, metrics["iou_class"])},
                       acc_per_class={n: float(v) for n, v in zip(names, metrics["acc_class"])},
                       seconds_per_scan=seconds)
        path = os.path.join(self.cfg.save_path, "result", "summary.json")
        with open(f"{path}.tmp", "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
        os.replace(f"{path}.tmp", path)
        logger.info(f"Summary written to {path}")
        logger.info("<<<<<<<<<<<<<<<<< End Evaluation <<<<<<<<<<<<<<<<<")
        return summary
