"""``ConcatDataset``: several datasets as one; each sample keeps its own dataset's transform."""
from __future__ import annotations

from typing import Sequence

from torch.utils.data import Dataset

from .builder import DATASETS

__all__ = ["ConcatDataset"]


@DATASETS.register_module()
class ConcatDataset(Dataset):
    """``datasets`` are configs (or built datasets); index i maps to (dataset, sample) in order."""

    def __init__(self, datasets: Sequence[dict | Dataset], loop: int = 1) -> None:
        super().__init__()
        if not datasets:
            raise ValueError("ConcatDataset: datasets is empty")
        self.datasets = [d if isinstance(d, Dataset) else DATASETS.build(d) for d in datasets]
        self.loop = loop
        self.data_list = [(d, i) for d, ds in enumerate(self.datasets) for i in range(len(ds))]

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to every sub-dataset (their per-sample generators depend on it)."""
        for ds in self.datasets:
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)

    @property
    def seed(self) -> int | None:
        """The sub-datasets' common augmentation seed; None while any of them has none."""
        seeds = [getattr(ds, "seed", None) for ds in self.datasets]
        return None if any(s is None for s in seeds) else seeds[0]

    def set_seed(self, seed: int | None) -> None:
        """Set the augmentation seed of every sub-dataset."""
        for ds in self.datasets:
            if hasattr(ds, "set_seed"):
                ds.set_seed(seed)

    def get_data_size(self, idx: int) -> int:
        """The point count of sample ``idx``, from its dataset's ``get_data_size``."""
        d, i = self.data_list[idx % len(self.data_list)]
        return self.datasets[d].get_data_size(i)

    def get_data_sizes(self) -> list[int]:
        """``get_data_size`` of every index, from the datasets' ``get_data_sizes`` (``len(self)`` values)."""
        return [size for ds in self.datasets for size in ds.get_data_sizes()] * self.loop

    def __getitem__(self, idx: int) -> dict:
        d, i = self.data_list[idx % len(self.data_list)]
        repeat = idx // len(self.data_list)  # distinct augmentation draws for each loop repeat
        return self.datasets[d][i + repeat * len(self.datasets[d])]

    def __len__(self) -> int:
        return len(self.data_list) * self.loop
