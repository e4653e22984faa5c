"""The standard transform lists of Pointcept's PTv3 LiDAR configs, per dataset, as config dicts.

``train_transform``, ``val_transform``, ``test_transform`` and ``test_cfg`` return what the configs in
``configs/{nuscenes,semantic_kitti,waymo}`` spell out; ``data_config`` assembles a whole ``data`` dict.
nuScenes has no ``PointClip`` and a 10-view scale/flip TTA; Waymo and SemanticKITTI clip to their
range and use a 4-rotation TTA (SemanticKITTI as Pointcept's SemanticKITTI configs, which have no PTv3 one).
"""
from __future__ import annotations

from .nuscenes import NUSCENES_NAMES
from .semantic_kitti import KITTI_NAMES
from .waymo import WAYMO_NAMES

__all__ = ["DATASET_TYPES", "point_clip", "train_transform", "val_transform", "test_transform",
           "test_cfg", "data_config"]

DATASET_TYPES = {"nuscenes": ("NuScenesDataset", NUSCENES_NAMES, "train", "val"),
                 "semantic_kitti": ("SemanticKITTIDataset", KITTI_NAMES, "train", "val"),
                 "waymo": ("WaymoDataset", WAYMO_NAMES, "training", "validation")}

_CLIP = {"nuscenes": None, "semantic_kitti": (-35.2, -35.2, -4, 35.2, 35.2, 2),
         "waymo": (-75.2, -75.2, -4, 75.2, 75.2, 2)}


def _check(dataset: str) -> None:
    if dataset not in DATASET_TYPES:
        raise KeyError(f"pipelines: unknown dataset {dataset!r} (known: {sorted(DATASET_TYPES)})")


def point_clip(dataset: str) -> list[dict]:
    """``[PointClip(range)]`` for datasets whose configs clip, else ``[]``."""
    _check(dataset)
    clip = _CLIP[dataset]
    return [] if clip is None else [dict(type="PointClip", point_cloud_range=clip)]


def _collect(*keys: str) -> dict:
    return dict(type="Collect", keys=keys, feat_keys=("coord", "strength"))


def train_transform(dataset: str, grid_size: float = 0.05) -> list[dict]:
    """Rotate, (clip), scale, flip, jitter, grid-sample, to tensor, collect coord/grid_coord/segment."""
    return [dict(type="RandomRotate", angle=[-1, 1], axis="z", center=[0, 0, 0], p=0.5),
            *point_clip(dataset),
            dict(type="RandomScale", scale=[0.9, 1.1]),
            dict(type="RandomFlip", p=0.5),
            dict(type="RandomJitter", sigma=0.005, clip=0.02),
            dict(type="GridSample", grid_size=grid_size, hash_type="fnv", mode="train",
                 return_grid_coord=True),
            dict(type="ToTensor"),
            _collect("coord", "grid_coord", "segment")]


def val_transform(dataset: str, grid_size: float = 0.05) -> list[dict]:
    """Keep ``origin_segment``, (clip), grid-sample with ``inverse``, to tensor, collect."""
    return [dict(type="Copy", keys_dict={"segment": "origin_segment"}),
            *point_clip(dataset),
            dict(type="GridSample", grid_size=grid_size, hash_type="fnv", mode="train",
                 return_grid_coord=True, return_inverse=True),
            dict(type="ToTensor"),
            _collect("coord", "grid_coord", "segment", "origin_segment", "inverse")]


def test_transform(dataset: str, grid_size: float = 0.025) -> list[dict]:
    """(clip), keep ``origin_segment``, pre-thin to ``grid_size`` with ``inverse``."""
    return [*point_clip(dataset),
            dict(type="Copy", keys_dict={"segment": "origin_segment"}),
            dict(type="GridSample", grid_size=grid_size, hash_type="fnv", mode="train",
                 return_inverse=True)]


def _tta(dataset: str) -> list[list[dict]]:
    if dataset == "nuscenes":
        scales = [0.9, 0.95, 1.0, 1.05, 1.1]
        plain = [[dict(type="RandomScale", scale=[s, s])] for s in scales]
        flipped = [[dict(type="RandomScale", scale=[s, s]), dict(type="RandomFlip", p=1)]
                   for s in scales]
        return plain + flipped
    return [[dict(type="RandomRotateTargetAngle", angle=[a], axis="z", center=[0, 0, 0], p=1)]
            for a in (0, 1 / 2, 1, 3 / 2)]


def test_cfg(dataset: str, grid_size: float = 0.05) -> dict:
    """Test-mode voxelize / crop / post_transform / aug_transform (TTA views)."""
    _check(dataset)
    return dict(voxelize=dict(type="GridSample", grid_size=grid_size, hash_type="fnv", mode="test",
                              return_grid_coord=True),
                crop=None,
                post_transform=[dict(type="ToTensor"),
                                _collect("coord", "grid_coord", "index")],
                aug_transform=_tta(dataset))


def data_config(dataset: str, data_root: str, grid_size: float = 0.05) -> dict:
    """A full ``data`` dict (num_classes, ignore_index, names, train, val, test) for one dataset."""
    _check(dataset)
    type_, names, train_split, val_split = DATASET_TYPES[dataset]
    common = dict(type=type_, data_root=data_root, ignore_index=-1)
    return dict(num_classes=len(names), ignore_index=-1, names=list(names),
                train=dict(**common, split=train_split, transform=train_transform(dataset, grid_size)),
                val=dict(**common, split=val_split, transform=val_transform(dataset, grid_size)),
                test=dict(**common, split=val_split, transform=test_transform(dataset),
                          test_mode=True, test_cfg=test_cfg(dataset, grid_size)))


# these build configs, they are not tests: keep pytest from collecting them where they are imported
test_transform.__test__ = False
test_cfg.__test__ = False
