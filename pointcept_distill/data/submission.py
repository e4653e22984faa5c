"""Benchmark submissions: a test split's predictions in the file format of the benchmark's server.

One mechanism for every dataset: ``SUBMISSIONS`` maps a dataset class's ``dataset_name`` to a
``SubmissionWriter`` subclass, which says only how many classes it takes, where the file of a scan goes and
how train ids are encoded in it (plus any set-level file in ``prepare``). ``SubmissionWriter.write`` checks the
prediction (1-D train ids in ``[0, num_classes)``, one per original point) and writes the file atomically.
``SemSegTester(submission=True)`` (``-- test.submission=true``) calls it for every scan.

- SemanticKITTI (``semantic_kitti``): ``sequences/<SS>/predictions/<FFFFFF>.label``, uint32 raw SemanticKITTI ids
  (``KITTI_LEARNING_MAP_INV``: moving classes and the ids that merge into another class are never written), the
  layout of the semantic-kitti-api's ``evaluate_semantics.py`` and the CodaLab server.
- nuScenes-lidarseg (``nuscenes``): ``lidarseg/<eval_set>/<lidar_token>_lidarseg.bin``, uint8 class index of the
  challenge (train id + 1: 1..16, 0 being "ignore"), and ``<eval_set>/submission.json`` with the meta block
  ``{use_camera, use_lidar, use_radar, use_map, use_external}``; ``eval_set`` is ``val`` for the val split
  (what the devkit's ``eval_set=val`` reads, to check a submission locally) and ``test`` otherwise.

Waymo's segmentation submissions are protocol buffers of the waymo-open-dataset package: not written here.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np

from ..utils.registry import Registry
from .nuscenes import NUSCENES_NAMES
from .semantic_kitti import KITTI_LEARNING_MAP_INV, KITTI_NAMES

__all__ = ["SUBMISSIONS", "SubmissionWriter", "SemanticKITTISubmission", "NuScenesSubmission",
           "build_submission", "NUSCENES_SUBMISSION_META"]

SUBMISSIONS = Registry("submissions")

NUSCENES_SUBMISSION_META = dict(use_camera=False, use_lidar=True, use_radar=False, use_map=False,
                                use_external=False)


def _atomic_write(path: str, write: Any) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class SubmissionWriter:
    """Writes the submission files of one test set under ``root``.

    Subclasses set ``num_classes`` and implement ``relpath`` (the file of a scan, relative to ``root``) and
    ``encode`` (train ids -> the array written with ``tofile``); ``prepare`` writes any set-level file.

    Args:
        root: the submission folder (the tester's ``<save_path>/result/submit``).
        dataset: the test dataset (its ``splits`` may choose the set's name).
        **options: writer-specific options (none by default).
    """

    num_classes: int = 0

    def __init__(self, root: str, dataset: Any, **options: Any) -> None:
        if options:
            raise TypeError(f"{type(self).__name__}: unknown submission options {sorted(options)}")
        self.root = root
        self.splits = list(getattr(dataset, "splits", None) or [getattr(dataset, "split", "test")])

    def is_test_set(self) -> bool:
        """Whether the dataset's splits are the benchmark's (unlabelled) test set."""
        return self.splits == ["test"]

    def prepare(self) -> None:
        """Write the set-level files (once, on the main process); default: none."""

    def relpath(self, name: str) -> str:
        raise NotImplementedError

    def encode(self, pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def write(self, name: str, pred: np.ndarray) -> str:
        """Write scan ``name``'s prediction (train ids over every original point); returns the file."""
        pred = np.asarray(pred)
        if pred.ndim != 1 or not np.issubdtype(pred.dtype, np.integer):
            raise ValueError(f"{type(self).__name__}: scan {name}: expected 1-D integer train ids, got "
                             f"{pred.dtype} {pred.shape}")
        if pred.size and (pred.min() < 0 or pred.max() >= self.num_classes):
            raise ValueError(f"{type(self).__name__}: scan {name}: train ids must lie in [0, {self.num_classes}), "
                             f"got [{pred.min()}, {pred.max()}]")
        path = os.path.join(self.root, self.relpath(name))
        encoded = self.encode(pred)
        _atomic_write(path, encoded.tofile)
        return path


@SUBMISSIONS.register_module("semantic_kitti")
class SemanticKITTISubmission(SubmissionWriter):
    """``sequences/<SS>/predictions/<FFFFFF>.label``: uint32 raw ids (``learning_map_inv``) per point."""

    num_classes = len(KITTI_NAMES)
    lut = np.array([KITTI_LEARNING_MAP_INV[c] for c in range(len(KITTI_NAMES))], dtype=np.uint32)
    _name = re.compile(r"^(\d{2})_(\d{6})$")

    def is_test_set(self) -> bool:
        return all(s == "test" or (s.isdigit() and 11 <= int(s) <= 21) for s in self.splits)

    def relpath(self, name: str) -> str:
        match = self._name.match(name)
        if match is None:
            raise ValueError(f"SemanticKITTISubmission: scan name {name!r} is not '<SS>_<FFFFFF>'")
        seq, frame = match.groups()
        return os.path.join("sequences", seq, "predictions", f"{frame}.label")

    def encode(self, pred: np.ndarray) -> np.ndarray:
        return self.lut[pred]


@SUBMISSIONS.register_module("nuscenes")
class NuScenesSubmission(SubmissionWriter):
    """``lidarseg/<eval_set>/<token>_lidarseg.bin`` (uint8 train id + 1) and ``<eval_set>/submission.json``.

    Args:
        meta: overrides of the meta block (e.g. ``dict(use_external=True)`` for a model pretrained on other
            data), keys of ``NUSCENES_SUBMISSION_META`` only.
    """

    num_classes = len(NUSCENES_NAMES)

    def __init__(self, root: str, dataset: Any, meta: dict | None = None) -> None:
        super().__init__(root, dataset)
        unknown = set(meta or {}) - set(NUSCENES_SUBMISSION_META)
        if unknown:
            raise KeyError(f"NuScenesSubmission: unknown meta keys {sorted(unknown)} "
                           f"(known: {sorted(NUSCENES_SUBMISSION_META)})")
        self.meta = {**NUSCENES_SUBMISSION_META, **{k: bool(v) for k, v in (meta or {}).items()}}
        self.eval_set = "val" if self.splits == ["val"] else "test"

    def prepare(self) -> None:
        path = os.path.join(self.root, self.eval_set, "submission.json")

        def dump(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"meta": self.meta}, f, indent=2)
        _atomic_write(path, dump)

    def relpath(self, name: str) -> str:
        if not re.fullmatch(r"[0-9A-Za-z]+", name):
            raise ValueError(f"NuScenesSubmission: scan name {name!r} is not a lidar sample_data token")
        return os.path.join("lidarseg", self.eval_set, f"{name}_lidarseg.bin")

    def encode(self, pred: np.ndarray) -> np.ndarray:
        return (pred + 1).astype(np.uint8)


def build_submission(dataset: Any, root: str, options: dict | None = None) -> SubmissionWriter:
    """The writer of ``dataset``'s benchmark (by its ``dataset_name``) into ``root``; a dataset without one
    (Waymo, a concatenation of datasets) is an error naming those that have one."""
    name = getattr(dataset, "dataset_name", None)
    if name is None or name not in SUBMISSIONS:
        raise KeyError(f"test.submission: no benchmark submission format for {type(dataset).__name__}"
                       f"{f' ({name})' if name else ''}; formats exist for the datasets "
                       f"{sorted(SUBMISSIONS.module_dict)} (one dataset per test run)")
    return SUBMISSIONS.get(name)(root, dataset, **(options or {}))
