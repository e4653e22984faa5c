"""``WaymoDataset``: Pointcept's preprocessed layout ``data_root/<split>/<segment>/<frame>/*.npy``.

``segment.npy`` already holds train ids (``Segmentation.Type - 1``, so -1 is undefined), 22 classes;
``strength.npy`` is ``tanh(intensity)``. Single-frame samples (``timestamp=(0,)``) only.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .builder import DATASETS
from .defaults import DefaultDataset

__all__ = ["WaymoDataset", "WAYMO_NAMES"]

WAYMO_NAMES = ("Car", "Truck", "Bus", "Other Vehicle", "Motorcyclist", "Bicyclist", "Pedestrian", "Sign",
               "Traffic Light", "Pole", "Construction Cone", "Bicycle", "Motorcycle", "Building",
               "Vegetation", "Tree Trunk", "Curb", "Road", "Lane Marker", "Other Ground", "Walkable",
               "Sidewalk")


@DATASETS.register_module()
class WaymoDataset(DefaultDataset):
    """Waymo frames; ``name`` = ``"<segment>_<timestamp>"``. Multi-frame ``timestamp`` is not supported."""

    dataset_name = "waymo"
    labelled_splits = ("training", "validation")  # every frame has segment.npy; "testing" frames have none

    def __init__(self, timestamp: Sequence[int] = (0,), reference_label: bool = True,
                 timing_embedding: bool = False, **kwargs) -> None:
        if tuple(timestamp) != (0,):
            raise NotImplementedError(f"WaymoDataset: timestamp={tuple(timestamp)}; only single "
                                      f"frames (timestamp=(0,)) are supported")
        self.timestamp, self.reference_label = tuple(timestamp), reference_label
        self.timing_embedding = timing_embedding
        super().__init__(**kwargs)

    def get_data_list(self) -> list[str]:
        frames = []
        for split in self.splits:
            root = os.path.join(self.data_root, split)
            if not os.path.isdir(root):
                raise FileNotFoundError(f"WaymoDataset: split {split!r} needs the folder {root}, "
                                        f"which is missing")
            segments = sorted(s for s in os.listdir(root) if os.path.isdir(os.path.join(root, s)))
            frames += [os.path.join(root, s, f) for s in segments
                       for f in sorted(os.listdir(os.path.join(root, s)))]
        return frames

    def get_data_name(self, idx: int) -> str:
        path = self.data_list[idx % len(self.data_list)]
        return f"{os.path.basename(os.path.dirname(path))}_{os.path.basename(path)}"

    def load_data(self, idx: int) -> dict[str, np.ndarray]:
        folder = self.data_list[idx % len(self.data_list)]
        split = os.path.basename(os.path.dirname(os.path.dirname(folder)))
        labels = os.path.join(folder, "segment.npy")
        if split in self.labelled_splits and not os.path.isfile(labels):
            raise FileNotFoundError(f"{labels}: no such file, and '{split}' is a labelled split (unlabelled "
                                    f"frames get ignore labels only in other splits, e.g. 'testing')")
        data = self.load_npy_assets(folder)
        segment = data["segment"]
        bad = (segment < -1) | (segment >= len(WAYMO_NAMES))
        if bad.any():
            raise ValueError(f"{os.path.join(folder, 'segment.npy')}: label ids "
                             f"{np.unique(segment[bad])[:10].tolist()} are outside -1..21")
        if "strength" not in data:
            raise FileNotFoundError(f"{os.path.join(folder, 'strength.npy')}: no such file")
        if self.ignore_index != -1:
            data["segment"] = np.where(segment == -1, self.ignore_index, segment)
        return data
