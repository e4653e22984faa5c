"""Checks of a scan's values where it enters (a dataset read, ``Segmenter`` input): at least one point, finite
coordinates and intensities, grid coordinates that the serialization depth can hold. Each error names the scan
(its file, or the input) and the problem, instead of a wrong result or a failure deep in the model."""
from __future__ import annotations

import numpy as np

__all__ = ["MAX_GRID_COORD", "check_points", "check_grid_coord"]

# Point.serialization packs 16 bits per axis into its codes (depth <= 16), so grid coordinates stay below 2**16
MAX_GRID_COORD = 2 ** 16


def _first_bad(values: np.ndarray, n: int, what: str, source: str) -> None:
    bad = ~np.isfinite(np.asarray(values, dtype=np.float64).reshape(n, -1)).all(1)
    if bad.any():
        raise ValueError(f"{source}: {int(bad.sum())} of {n} points have {what} (NaN or inf), the first at "
                         f"index {int(np.argmax(bad))}")


def check_points(data: dict, source: str) -> None:
    """Raise ``ValueError`` naming ``source`` when ``data['coord']`` (N, 3) is empty or not finite, or when
    ``data['strength']`` (the intensity, if present) is not finite."""
    coord = np.asarray(data["coord"])
    n = len(coord)
    if n == 0:
        raise ValueError(f"{source}: empty scan (0 points)")
    _first_bad(coord, n, "non-finite coordinates", source)
    if data.get("strength") is not None:
        _first_bad(data["strength"], n, "a non-finite intensity", source)


def check_grid_coord(data: dict, source: str) -> None:
    """Raise ``ValueError`` naming ``source`` when the transformed sample's ``grid_coord`` reaches
    ``MAX_GRID_COORD`` (the scan spans more voxels than the serialization codes hold)."""
    grid = data.get("grid_coord")
    if grid is None or len(grid) == 0:
        return
    top = int(grid.max())
    if top >= MAX_GRID_COORD:
        coord = np.asarray(data["coord"], dtype=np.float64)
        extent = float((coord.max(0) - coord.min(0)).max())
        raise ValueError(f"{source}: the scan spans {extent:.1f} m, grid coordinates up to {top} after grid "
                         f"sampling; serialization holds 16 bits per axis (grid coordinates below "
                         f"{MAX_GRID_COORD}): clip the scan (PointClip in the transform) or use a larger grid_size")
