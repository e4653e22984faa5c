"""Segment a LiDAR scan with a student exported by tools/export.py, using only numpy and torch.

    python examples/run_exported.py exported/nuscenes-student scan.pcd.bin --columns 5 --out scan.label

Nothing of pointcept_distill is imported: this file carries the steps that run before the artifact (the
config's validation pipeline, written out in numpy) and picks the artifact whose capacity fits the scan.
``export.json`` (written by tools/export.py beside the ``model_c<C>.pt2`` files) gives the settings.

Steps: intensity conversion (the dataset's convention, as ``pointcept_distill.inference.INTENSITY_CONVERSIONS``)
-> ``PointClip`` (when the config has it) -> one point per ``grid_size`` voxel (as ``GridSample``; this keeps
the first point of each voxel where the training pipeline keeps a random one) -> features (``feat_keys``:
coord, strength) -> padded to the smallest exported capacity above the voxel count -> logits -> each point gets
its voxel's label.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

CONVERSIONS = {"nuscenes": lambda x: x / np.float32(255), "semantic_kitti": lambda x: x, "waymo": np.tanh,
               "strength": lambda x: x}


class Exported:
    """The artifacts of an export folder, loaded on first use (``.pt2`` AOTInductor packages or ExportedPrograms)."""

    def __init__(self, folder: str, device: str = "cpu") -> None:
        with open(os.path.join(folder, "export.json"), encoding="utf-8") as f:
            self.meta = json.load(f)
        self.folder, self.device = folder, device
        self.files = {int(a["capacity"]): a["file"] for a in self.meta["artifacts"]}
        self._loaded: dict = {}

    def runner(self, capacity: int):
        if capacity not in self._loaded:
            path = os.path.join(self.folder, self.files[capacity])
            if self.meta["format"] == "aoti":
                self._loaded[capacity] = torch._inductor.aoti_load_package(path)
            else:
                self._loaded[capacity] = torch.export.load(path).module()
        return self._loaded[capacity]

    def capacity_for(self, num_voxels: int) -> int:
        """The smallest exported capacity above ``num_voxels`` (one padding row at least)."""
        fits = [c for c in sorted(self.files) if c > num_voxels]
        if not fits:
            raise ValueError(f"the scan has {num_voxels} voxels, more than the largest exported capacity allows "
                             f"({max(self.files)} rows, one of them padding); export one with tools/export.py "
                             f"--capacity {num_voxels + 1} or more")
        return fits[0]

    @torch.no_grad()
    def logits(self, coord: np.ndarray, grid_coord: np.ndarray, feat: np.ndarray) -> torch.Tensor:
        """(M, K) logits of M voxels (one scan)."""
        n = len(coord)
        depth = int(grid_coord.max() + 1).bit_length() if n else 0
        if grid_coord.min() < 0 or grid_coord.max() > self.meta["max_grid_coord"]:
            raise ValueError(f"grid coordinates must lie in [0, {self.meta['max_grid_coord']}]")
        if depth < self.meta["min_depth"]:
            raise ValueError(f"the scan spans {depth} bits of grid coordinates; the artifact pools as the eager "
                             f"model only from {self.meta['min_depth']} bits (a larger scan is needed)")
        capacity = self.capacity_for(n)

        def pad(a: np.ndarray, dtype) -> torch.Tensor:
            out = np.zeros((capacity,) + a.shape[1:], dtype=dtype)
            out[:n] = a
            return torch.from_numpy(out).to(self.device)
        out = self.runner(capacity)(pad(coord, np.float32), pad(grid_coord, np.int64), pad(feat, np.float32),
                                    torch.tensor([n], device=self.device))
        return out[:n].float().cpu()


def voxelize(points: np.ndarray, meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(coord, grid_coord, feat) of one point per voxel and the voxel of each input point, from (N, 4) x, y,
    z, raw intensity."""
    coord = np.ascontiguousarray(points[:, :3], dtype=np.float32)
    strength = CONVERSIONS[meta["intensity"]](points[:, 3].astype(np.float32)).reshape(-1, 1)
    if meta.get("point_cloud_range"):
        lo, hi = meta["point_cloud_range"][:3], meta["point_cloud_range"][3:]
        coord = np.clip(coord, lo, hi).astype(np.float32)
    grid = np.floor(coord / np.array(meta["grid_size"])).astype(np.int64)
    grid -= grid.min(0)
    _, first, inverse = np.unique(grid, axis=0, return_index=True, return_inverse=True)
    columns = {"coord": coord, "strength": strength}
    missing = [k for k in meta["feat_keys"] if k not in columns]
    if missing:
        raise ValueError(f"feature keys {missing} are not computed by this loader")
    feat = np.concatenate([columns[k] for k in meta["feat_keys"]], axis=1)
    return coord[first], grid[first], feat[first], inverse.reshape(-1)


def segment(exported: Exported, points: np.ndarray) -> np.ndarray:
    """(N,) train-id labels of (N, 4) points."""
    coord, grid, feat, inverse = voxelize(points, exported.meta)
    return exported.logits(coord, grid, feat).argmax(1).numpy()[inverse]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Segment a scan .bin with an exported student")
    parser.add_argument("export_dir")
    parser.add_argument("scan", help="float32 .bin, x y z intensity [...] per point")
    parser.add_argument("--columns", type=int, default=4, help="float32 values per point (nuScenes: 5, KITTI: 4)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="write the labels here (int32 .label)")
    args = parser.parse_args(argv)
    exported = Exported(args.export_dir, args.device)
    points = np.fromfile(args.scan, dtype=np.float32).reshape(-1, args.columns)
    labels = segment(exported, points)
    names = exported.meta["class_names"]
    counts = np.bincount(labels, minlength=len(names))
    print(f"{len(points)} points: " + ", ".join(f"{names[i] if i < len(names) else i} {c}"
                                                  for i, c in enumerate(counts) if c))
    if args.out:
        labels.astype(np.int32).tofile(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
