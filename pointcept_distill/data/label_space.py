"""The common label space of nuScenes, SemanticKITTI and Waymo, the mapping tables into it, and the
transforms of joint training.

Two ways to train on the three datasets together (``joint_data_config``):

- ``"common"``: every label is mapped into the 14 ``COMMON_NAMES`` (``MapToCommon``); one head.
- ``"heads"``: every dataset keeps its own classes, laid out one after the other in a *union* space
  (nuScenes 0-15, SemanticKITTI 16-34, Waymo 35-56 for the default order); each point carries the index
  of its dataset (``TagDataset``) and a multi-head segmentor scores it with its dataset's head only.

Every training class of each dataset has a common counterpart (``TO_COMMON``); what is lost is said in
``MERGES`` and the common classes a dataset cannot label are ``missing_classes(dataset)``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .builder import TRANSFORMS
from .nuscenes import NUSCENES_NAMES
from .pipelines import DATASET_TYPES, test_cfg, test_transform, train_transform, val_transform
from .semantic_kitti import KITTI_NAMES
from .transforms import DEFAULT_INDEX_KEYS, Transform
from .waymo import WAYMO_NAMES

__all__ = ["COMMON_NAMES", "NATIVE_NAMES", "TO_COMMON", "MERGES", "LABEL_SPACES", "common_lookup",
           "to_common", "common_classes", "missing_classes", "shared_classes", "union_offsets",
           "union_names", "MapToCommon", "TagDataset", "joint_data_config"]

COMMON_NAMES = ("car", "truck", "bus", "other_vehicle", "two_wheeler", "pedestrian", "road", "sidewalk",
                "other_ground", "terrain", "manmade", "vegetation", "pole_sign", "barrier_cone")

NATIVE_NAMES: dict[str, tuple[str, ...]] = {
    "nuscenes": NUSCENES_NAMES, "semantic_kitti": KITTI_NAMES, "waymo": WAYMO_NAMES}

LABEL_SPACES = ("heads", "common")

# native training class -> common class (None would mean ignore; every class has a counterpart)
TO_COMMON: dict[str, dict[str, str | None]] = {
    "nuscenes": {
        "barrier": "barrier_cone", "bicycle": "two_wheeler", "bus": "bus", "car": "car",
        "construction_vehicle": "other_vehicle", "motorcycle": "two_wheeler", "pedestrian": "pedestrian",
        "traffic_cone": "barrier_cone", "trailer": "other_vehicle", "truck": "truck",
        "driveable_surface": "road", "other_flat": "other_ground", "sidewalk": "sidewalk",
        "terrain": "terrain", "manmade": "manmade", "vegetation": "vegetation"},
    "semantic_kitti": {
        "car": "car", "bicycle": "two_wheeler", "motorcycle": "two_wheeler", "truck": "truck",
        "other-vehicle": "other_vehicle", "person": "pedestrian", "bicyclist": "two_wheeler",
        "motorcyclist": "two_wheeler", "road": "road", "parking": "road", "sidewalk": "sidewalk",
        "other-ground": "other_ground", "building": "manmade", "fence": "manmade",
        "vegetation": "vegetation", "trunk": "vegetation", "terrain": "terrain", "pole": "pole_sign",
        "traffic-sign": "pole_sign"},
    "waymo": {
        "Car": "car", "Truck": "truck", "Bus": "bus", "Other Vehicle": "other_vehicle",
        "Motorcyclist": "two_wheeler", "Bicyclist": "two_wheeler", "Pedestrian": "pedestrian",
        "Sign": "pole_sign", "Traffic Light": "pole_sign", "Pole": "pole_sign",
        "Construction Cone": "barrier_cone", "Bicycle": "two_wheeler", "Motorcycle": "two_wheeler",
        "Building": "manmade", "Vegetation": "vegetation", "Tree Trunk": "vegetation", "Curb": "sidewalk",
        "Road": "road", "Lane Marker": "road", "Other Ground": "other_ground", "Walkable": "terrain",
        "Sidewalk": "sidewalk"},
}

# what the mapping cannot express (documented in README.md, "Joint training and cross-dataset evaluation")
MERGES: dict[str, str] = {
    "nuscenes": "poles, signs, traffic lights, fences and walls are inside 'manmade', so nuScenes has no "
                "'pole_sign'; riders are labelled with their bicycle/motorcycle",
    "semantic_kitti": "buses and trams are inside 'other-vehicle', so SemanticKITTI has no 'bus'; cones "
                      "and barriers are 'other-object' (ignored) or 'fence', so it has no 'barrier_cone'; "
                      "'parking' counts as road (nuScenes' driveable surface includes it)",
    "waymo": "Waymo has no barrier class ('barrier_cone' holds its cones only); 'Curb' counts as sidewalk "
             "and 'Walkable' (grass, walkways) as terrain",
}


def _check(dataset: str) -> None:
    if dataset not in NATIVE_NAMES:
        raise KeyError(f"label_space: unknown dataset {dataset!r} (known: {sorted(NATIVE_NAMES)})")


def common_lookup(dataset: str) -> np.ndarray:
    """(K_native,) int64: the common id of each native training id, -1 where none."""
    _check(dataset)
    table = TO_COMMON[dataset]
    return np.array([COMMON_NAMES.index(table[n]) if table[n] is not None else -1
                     for n in NATIVE_NAMES[dataset]], dtype=np.int64)


def to_common(labels: np.ndarray, dataset: str, ignore_index: int = -1) -> np.ndarray:
    """Native training ids (``ignore_index`` kept) -> common ids (``ignore_index`` where none)."""
    lut = common_lookup(dataset)
    labels = np.asarray(labels)
    valid = (labels >= 0) & (labels < len(lut)) & (labels != ignore_index)
    bad = (labels != ignore_index) & ~valid
    if bad.any():
        raise ValueError(f"to_common: {dataset} labels {np.unique(labels[bad])[:10].tolist()} are outside "
                         f"0..{len(lut) - 1}")
    out = np.full(labels.shape, ignore_index, dtype=np.int64)
    mapped = lut[labels[valid]]
    out[valid] = np.where(mapped >= 0, mapped, ignore_index)
    return out


def common_classes(dataset: str) -> list[int]:
    """Sorted common ids that some native class of ``dataset`` maps to."""
    return sorted({int(c) for c in common_lookup(dataset) if c >= 0})


def missing_classes(dataset: str) -> list[str]:
    """Common classes that ``dataset`` does not label."""
    have = set(common_classes(dataset))
    return [n for i, n in enumerate(COMMON_NAMES) if i not in have]


def shared_classes(a: str, b: str) -> list[int]:
    """Common ids both datasets label: the classes a cross-dataset mIoU is taken over."""
    return sorted(set(common_classes(a)) & set(common_classes(b)))


def union_offsets(datasets: Sequence[str]) -> list[int]:
    """First union id of each dataset's classes (``"heads"`` layout), in ``datasets`` order."""
    offsets, total = [], 0
    for name in datasets:
        _check(name)
        offsets.append(total)
        total += len(NATIVE_NAMES[name])
    return offsets


def union_names(datasets: Sequence[str]) -> list[str]:
    """Class names of the union space: ``"<dataset>/<class>"``."""
    return [f"{d}/{n}" for d in datasets for n in NATIVE_NAMES[d]]


def _label_keys(data: dict) -> list[str]:
    return [k for k in ("segment", "origin_segment") if k in data]


@TRANSFORMS.register_module()
class MapToCommon(Transform):
    """Map ``segment`` (and ``origin_segment``) of a sample into ``COMMON_NAMES``, by its ``dataset`` key."""

    def __init__(self, ignore_index: int = -1) -> None:
        self.ignore_index = ignore_index

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict:
        self.require(data, "dataset", "segment")
        out = dict(data)
        for key in _label_keys(data):
            out[key] = to_common(data[key], data["dataset"], self.ignore_index)
        return out


@TRANSFORMS.register_module()
class TagDataset(Transform):
    """Add ``dataset_index`` (N,) int64, the position of the sample's ``dataset`` in ``datasets``, as a
    per-point key (kept through ``GridSample``); with ``union_labels`` shift ``segment`` (and
    ``origin_segment``) to the union ids of the ``"heads"`` layout. Put it first in the pipeline.

    Args:
        datasets: dataset names (``DefaultDataset.dataset_name``) in head order.
        union_labels: shift labels by the dataset's ``union_offsets`` entry (ignored points stay).
        ignore_index: label of ignored points.
    """

    def __init__(self, datasets: Sequence[str], union_labels: bool = False, ignore_index: int = -1) -> None:
        self.datasets = list(datasets)
        self.offsets = union_offsets(self.datasets)
        self.union_labels, self.ignore_index = union_labels, ignore_index

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict:
        self.require(data, "dataset", "coord")
        if data["dataset"] not in self.datasets:
            raise KeyError(f"TagDataset: sample of dataset {data['dataset']!r} is not in datasets="
                           f"{self.datasets}")
        index = self.datasets.index(data["dataset"])
        out = dict(data)
        out["dataset_index"] = np.full(len(data["coord"]), index, dtype=np.int64)
        keys = list(data.get("index_valid_keys", DEFAULT_INDEX_KEYS))
        out["index_valid_keys"] = keys + ["dataset_index"] * ("dataset_index" not in keys)
        if self.union_labels:
            for key in _label_keys(data):
                labels = np.asarray(data[key])
                out[key] = np.where(labels != self.ignore_index, labels + self.offsets[index], labels)
        return out


def _with_keys(pipeline: list[dict], extra: Sequence[str]) -> list[dict]:
    """``pipeline`` with ``extra`` appended to the keys of its ``Collect``."""
    out = []
    for t in pipeline:
        if t["type"] == "Collect":
            t = dict(t, keys=tuple(t["keys"]) + tuple(extra))
        out.append(t)
    return out


def joint_data_config(roots: Mapping[str, str], label_space: str = "heads", grid_size: float = 0.05,
                      loop: int = 1) -> dict:
    """A ``data`` dict training on ``roots`` (dataset name -> data root, in head order) together.

    ``train`` and ``val`` are ``ConcatDataset``s of the datasets' standard pipelines, each prefixed with
    ``TagDataset`` (and ``MapToCommon`` for ``"common"``) and collecting ``dataset_index``; ``test`` is
    the first dataset's test split. ``names``/``num_classes`` are the union or common classes;
    ``datasets``, ``label_space`` and ``dataset_num_classes`` (native classes per dataset) are kept for
    the model config and ``MultiDatasetEvaluator``.
    """
    if label_space not in LABEL_SPACES:
        raise ValueError(f"joint_data_config: label_space={label_space!r}, expected one of {LABEL_SPACES}")
    datasets = list(roots)
    if not datasets:
        raise ValueError("joint_data_config: roots is empty")
    heads = label_space == "heads"
    prefix = [dict(type="TagDataset", datasets=datasets, union_labels=heads)]
    if not heads:
        prefix.append(dict(type="MapToCommon"))
    parts: dict[str, list[dict]] = {"train": [], "val": []}
    for name in datasets:
        type_, _, train_split, val_split = DATASET_TYPES[name]
        common = dict(type=type_, data_root=roots[name], ignore_index=-1)
        parts["train"].append(dict(common, split=train_split, transform=prefix + _with_keys(
            train_transform(name, grid_size), ["dataset_index"])))
        parts["val"].append(dict(common, split=val_split, transform=prefix + _with_keys(
            val_transform(name, grid_size), ["dataset_index"])))
    first = datasets[0]
    type_, _, _, val_split = DATASET_TYPES[first]
    test_post = test_cfg(first, grid_size)
    test_post["post_transform"] = _with_keys(test_post["post_transform"], ["dataset_index"])
    names = union_names(datasets) if heads else list(COMMON_NAMES)
    return dict(num_classes=len(names), ignore_index=-1, names=names, label_space=label_space,
                datasets=datasets, dataset_num_classes=[len(NATIVE_NAMES[d]) for d in datasets],
                train=dict(type="ConcatDataset", datasets=parts["train"], loop=loop),
                val=dict(type="ConcatDataset", datasets=parts["val"]),
                test=dict(type=type_, data_root=roots[first], split=val_split, ignore_index=-1,
                          transform=prefix + test_transform(first), test_mode=True, test_cfg=test_post))
