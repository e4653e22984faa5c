"""``DefaultDataset``: the shared mechanism of every dataset (Pointcept's constructor and protocol).

A subclass says where its samples are and how to decode one: ``get_data_list()``,
``get_data_name(idx)`` and ``load_data(idx)`` (and, if its points are not in ``coord.npy``, which raw file
holds them: ``get_points_file(idx)`` and ``points_record_bytes``). This class adds the sample name and
dataset name, the samples' point counts without decoding them (``get_data_sizes``, which the rank-balancing
sampler uses), the shared-memory cache, looping, per-sample seeded augmentation and the test-mode fragment protocol.
Its own ``load_data`` reads Pointcept's generic layout ``<data_root>/<split>/<scene>/<asset>.npy``.
"""
from __future__ import annotations

import copy
import os
from typing import Sequence

import numpy as np
from torch.utils.data import Dataset

from .builder import DATASETS, TRANSFORMS
from .cache import cached_sample
from .rng import sample_rng
from .transforms import Compose
from .validate import check_grid_coord, check_points

__all__ = ["DefaultDataset", "as_split_list"]

VALID_ASSETS = ("coord", "color", "normal", "strength", "segment", "instance", "pose")


def as_split_list(split: str | Sequence[str], owner: str) -> list[str]:
    """``split`` as a list of names (Pointcept accepts a name or a list of names)."""
    if isinstance(split, str):
        return [split]
    if isinstance(split, Sequence) and all(isinstance(s, str) for s in split):
        return list(split)
    raise TypeError(f"{owner}: split must be a name or a list of names, got {split!r}")


@DATASETS.register_module()
class DefaultDataset(Dataset):
    """Samples as dicts of numpy arrays: ``coord`` (N,3) float32, ``strength`` (N,1) float32,
    ``segment`` (N,) int64 (``ignore_index`` where unlabelled), ``name``, ``dataset``.

    Args:
        split: a split name or a list of them (concatenated).
        data_root: the dataset root.
        transform: list of transform configs applied in training / validation.
        test_mode: return Pointcept's test dict (``fragment_list`` of TTA views x voxel parts).
        test_cfg: ``dict(voxelize, crop, post_transform, aug_transform)`` for test mode.
        cache: keep decoded samples in shared memory for every process of the machine.
        ignore_index: label of ignored points.
        loop: repeat the sample list (forced to 1 in test mode).
        seed: base seed of the per-sample generators (None: not reproducible); see ``sample_rng``.
    """

    dataset_name = "default"
    points_record_bytes: int | None = None  # bytes per point of a raw points file; None: a .npy file

    def __init__(self, split: str | Sequence[str] = "train", data_root: str = "data/dataset",
                 transform: Sequence[dict] | None = None, test_mode: bool = False,
                 test_cfg: dict | None = None, cache: bool = False, ignore_index: int = -1,
                 loop: int = 1, seed: int | None = None) -> None:
        super().__init__()
        self.split = split
        self.splits = as_split_list(split, type(self).__name__)
        self.data_root = data_root
        self.transform = Compose(transform)
        self.test_mode, self.test_cfg = test_mode, test_cfg
        self.cache, self.ignore_index = cache, ignore_index
        self.loop = 1 if test_mode else loop
        self.seed, self.epoch = seed, 0
        if test_mode:
            self._build_test_transforms(test_cfg)
        self.data_list = self.get_data_list()
        if not self.data_list:
            raise FileNotFoundError(f"{type(self).__name__}: no samples for split {split!r} "
                                    f"under {data_root}")

    def _build_test_transforms(self, test_cfg: dict | None) -> None:
        if test_cfg is None:
            raise ValueError(f"{type(self).__name__}: test_mode=True needs a test_cfg")
        voxelize, crop = test_cfg.get("voxelize"), test_cfg.get("crop")
        self.test_voxelize = TRANSFORMS.build(voxelize) if voxelize is not None else None
        self.test_crop = TRANSFORMS.build(crop) if crop is not None else None
        self.post_transform = Compose(test_cfg.get("post_transform"))
        self.aug_transform = [Compose(aug) for aug in test_cfg.get("aug_transform") or [[]]]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose per-sample generators ``__getitem__`` uses."""
        self.epoch = epoch

    def set_seed(self, seed: int | None) -> None:
        """Set the base seed of the per-sample generators (None: not reproducible)."""
        self.seed = seed

    def sample_rng(self, idx: int) -> np.random.Generator:
        """The generator of (seed, epoch, idx) for this dataset (idx before the ``loop`` modulo)."""
        return sample_rng(self.seed, self.epoch, idx, self.dataset_name)

    def get_data_list(self) -> list:
        """Scene folders ``<data_root>/<split>/<scene>``, sorted, over all splits."""
        folders = []
        for split in self.splits:
            root = os.path.join(self.data_root, split)
            if not os.path.isdir(root):
                raise FileNotFoundError(f"{type(self).__name__}: split folder {root} is missing")
            folders += sorted(os.path.join(root, s) for s in os.listdir(root)
                              if os.path.isdir(os.path.join(root, s)))
        return folders

    def get_data_name(self, idx: int) -> str:
        return os.path.basename(self.data_list[idx % len(self.data_list)])

    def get_data_path(self, idx: int) -> str:
        """The file (or folder) sample ``idx`` is read from, as errors about its values name it."""
        return str(self.data_list[idx % len(self.data_list)])

    def get_points_file(self, idx: int) -> str:
        """The file holding sample ``idx``'s points (here the generic layout's ``coord.npy``)."""
        return os.path.join(self.get_data_path(idx), "coord.npy")

    def get_data_size(self, idx: int) -> int:
        """Sample ``idx``'s point count without decoding it: a ``.npy`` file's header shape, else the file's
        byte size over ``points_record_bytes``."""
        path = self.get_points_file(idx)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file (the points of sample {self.get_data_name(idx)!r})")
        if self.points_record_bytes is not None:
            return os.path.getsize(path) // self.points_record_bytes
        try:
            return int(np.load(path, mmap_mode="r").shape[0])  # reads the header only
        except ValueError as err:
            raise ValueError(f"{path}: not a readable .npy file ({err})") from err

    def get_data_sizes(self) -> list[int]:
        """``get_data_size`` of every index: ``len(self)`` values, each file read once and repeated ``loop`` times."""
        return [self.get_data_size(i) for i in range(len(self.data_list))] * self.loop

    def load_data(self, idx: int) -> dict[str, np.ndarray]:
        """Decode sample ``idx`` from disk into numpy arrays (subclasses say how)."""
        return self.load_npy_assets(self.data_list[idx % len(self.data_list)])

    def load_npy_assets(self, folder: str) -> dict[str, np.ndarray]:
        """Pointcept's generic ``<asset>.npy`` folder: float32 geometry, int64 labels (-1 if absent)."""
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder}: sample folder is missing")
        data = {}
        for asset in VALID_ASSETS:
            path = os.path.join(folder, f"{asset}.npy")
            if os.path.isfile(path):
                try:
                    data[asset] = np.load(path)
                except ValueError as err:
                    raise ValueError(f"{path}: not a readable .npy file ({err})") from err
        if "coord" not in data:
            raise FileNotFoundError(f"{os.path.join(folder, 'coord.npy')}: no such file")
        n = data["coord"].shape[0]
        for key in ("coord", "color", "normal", "strength"):
            if key in data:
                data[key] = data[key].astype(np.float32).reshape(n, -1)
        for key in ("segment", "instance"):
            value = data.get(key)
            if value is None:
                data[key] = np.full(n, self.ignore_index if key == "segment" else -1, dtype=np.int64)
            elif value.size != n:
                raise ValueError(f"{os.path.join(folder, key + '.npy')}: {value.size} labels but "
                                 f"coord.npy has {n} points")
            elif not np.issubdtype(value.dtype, np.integer):  # a cast would silently truncate them
                raise ValueError(f"{os.path.join(folder, key + '.npy')}: labels stored as {value.dtype}; "
                                 f"expected integers")
            else:
                data[key] = value.reshape(-1).astype(np.int64)
        return data

    def load_checked(self, idx: int) -> dict[str, np.ndarray]:
        """``load_data`` with its values checked (``check_points``: not empty, finite), errors naming the file."""
        arrays = self.load_data(idx)
        check_points(arrays, self.get_data_path(idx))
        return arrays

    def get_data(self, idx: int) -> dict:
        """The decoded, checked sample (cached in shared memory when ``cache``) plus ``name`` and ``dataset``."""
        name = self.get_data_name(idx)
        if self.cache:
            arrays = cached_sample(self.data_root, name, lambda: self.load_checked(idx))
        else:
            arrays = self.load_checked(idx)
        return {**arrays, "name": name, "dataset": self.dataset_name}

    def prepare_train_data(self, idx: int) -> dict:
        data = self.transform(self.get_data(idx), self.sample_rng(idx))
        check_grid_coord(data, self.get_data_path(idx))
        return data

    def prepare_test_data(self, idx: int) -> dict:
        """Pointcept's test protocol: transform, pop labels, TTA views, voxel parts, crop, post; ``num_points``
        is the scan's point count before any transform."""
        rng = self.sample_rng(idx)
        raw = self.get_data(idx)
        num_points = len(raw["coord"])  # of the scan's file: a submission must predict each of them
        data = self.transform(raw, rng)
        result = {"segment": data.pop("segment"), "name": data.pop("name"),
                  "dataset": data.pop("dataset"), "num_points": num_points}
        if "origin_segment" in data:
            if "inverse" not in data:
                raise KeyError(f"{type(self).__name__}: test transform made 'origin_segment' "
                               f"without 'inverse' (use GridSample(return_inverse=True))")
            result["origin_segment"] = data.pop("origin_segment")
            result["inverse"] = data.pop("inverse")
        fragments = []
        for aug in self.aug_transform:
            view = aug(copy.deepcopy(data), rng)
            if self.test_voxelize is not None:
                parts = self.test_voxelize(view, rng)
            else:
                parts = [{**view, "index": np.arange(view["coord"].shape[0])}]
            for part in parts:
                cropped = self.test_crop(part, rng) if self.test_crop is not None else [part]
                fragments += cropped if isinstance(cropped, list) else [cropped]
        result["fragment_list"] = [self.post_transform(f, rng) for f in fragments]
        for fragment in result["fragment_list"]:
            check_grid_coord(fragment, self.get_data_path(idx))
        return result

    def __getitem__(self, idx: int) -> dict:
        if self.test_mode:
            return self.prepare_test_data(idx)
        return self.prepare_train_data(idx)

    def __len__(self) -> int:
        return len(self.data_list) * self.loop
