"""A spinning LiDAR ray-cast against a scene: nearest hit wins, then noise, dropout and intensity.

Rays form a (beams, columns) grid. Each primitive is only tested against the rays inside the angular
window of its bounding sphere (columns by azimuth, beams by elevation), which keeps a 130k-ray scan of
a few hundred primitives well under a second in numpy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .classes import REFLECTIVITY, SimClass
from .primitives import Ellipsoid
from .profiles import SensorProfile
from .scene import Scene

__all__ = ["Scan", "scan_scene"]


@dataclass
class Scan:
    """Returns of one sweep in the street frame, in the sensor's storage order.

    ``points`` (N,3) float64 in the street frame, ``intensity`` (N,) reflectivity-like value, ``cls``
    SimClass, ``instance`` and ``moving`` per point, ``beam`` (0 = highest elevation) and ``column``
    per point. ``origin`` and ``yaw`` give the sensor pose. With ``profile.keep_no_return`` every ray
    is kept (as nuScenes stores them) and rays without a return sit at the origin with class NONE.
    """

    points: np.ndarray
    intensity: np.ndarray
    cls: np.ndarray
    instance: np.ndarray
    moving: np.ndarray
    beam: np.ndarray
    column: np.ndarray
    origin: np.ndarray
    yaw: float


def _window(center: np.ndarray, radius: float, origin: np.ndarray, az0: float, columns: int,
            elev: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Beam and column indices whose rays can reach a sphere; None if it is out of reach."""
    rel = center - origin
    horiz = float(np.hypot(rel[0], rel[1]))
    dist = float(np.linalg.norm(rel))
    step = 2 * np.pi / columns
    if horiz <= radius * 1.05 or dist <= radius * 1.05:
        return np.arange(len(elev)), np.arange(columns)
    half_az = np.arcsin(min(1.0, radius / horiz))
    center_az = np.arctan2(rel[1], rel[0]) - az0
    lo = int(np.floor((center_az - half_az) / step))
    hi = int(np.ceil((center_az + half_az) / step))
    cols = np.arange(lo, hi + 1) % columns
    center_el = np.arctan2(rel[2], horiz)
    half_el = np.arcsin(min(1.0, radius / dist)) + 1e-3
    beams = np.nonzero(np.abs(elev - center_el) <= half_el)[0]
    if beams.size == 0:
        return None
    return beams, cols


def scan_scene(scene: Scene, profile: SensorProfile, rng: np.random.Generator,
               scale: float = 1.0) -> Scan:
    """Cast one sweep of ``profile`` (``scale`` multiplies the column count) from the ego pose."""
    columns = max(8, int(round(profile.columns * scale)))
    elev = np.deg2rad(np.asarray(profile.elevations_deg))
    yaw = float(rng.normal(0, 0.05))
    az0 = yaw + float(rng.uniform(0, 2 * np.pi / columns)) - np.pi
    az = az0 + np.arange(columns) * 2 * np.pi / columns
    dirs = np.stack([np.cos(elev)[:, None] * np.cos(az)[None],
                     np.cos(elev)[:, None] * np.sin(az)[None],
                     np.broadcast_to(np.sin(elev)[:, None], (len(elev), columns))], -1)  # (B, C, 3)
    origin = np.array([0.0, scene.ego_y, profile.height])

    depth = np.full(dirs.shape[:2], np.inf)
    down = dirs[..., 2] < 0
    depth[down] = -origin[2] / dirs[..., 2][down]
    ground = origin + depth[down][:, None] * dirs[down]
    cls = np.full(depth.shape, int(SimClass.NONE))
    cls[down] = scene.ground_class(ground[:, 0], ground[:, 1])
    cos = np.abs(dirs[..., 2])
    inst = np.zeros(depth.shape, dtype=np.int64)
    moving = np.zeros(depth.shape, dtype=bool)

    for prim in scene.primitives:
        center, radius = prim.bounds()
        window = _window(center, radius, origin, az0, columns, elev)
        if window is None:
            continue
        beams, cols = window
        sub = dirs[beams][:, cols]                                     # (b, c, 3)
        t, c, k = prim.hit(origin, sub.reshape(-1, 3))
        t = t.reshape(sub.shape[:2])
        if isinstance(prim, Ellipsoid) and prim.porosity > 0:
            t[rng.random(t.shape) < prim.porosity] = np.inf
        cur = depth[np.ix_(beams, cols)]
        closer = t < cur
        if not closer.any():
            continue
        bi, ci = np.nonzero(closer)
        rows, colsel = beams[bi], cols[ci]
        depth[rows, colsel] = t[bi, ci]
        cls[rows, colsel] = c.reshape(t.shape)[bi, ci]
        cos[rows, colsel] = k.reshape(t.shape)[bi, ci]
        inst[rows, colsel] = prim.instance
        moving[rows, colsel] = prim.moving
    return _returns(profile, rng, origin, yaw, dirs, depth, cls, cos, inst, moving)


def _returns(profile: SensorProfile, rng: np.random.Generator, origin: np.ndarray, yaw: float,
             dirs: np.ndarray, depth: np.ndarray, cls: np.ndarray, cos: np.ndarray, inst: np.ndarray,
             moving: np.ndarray) -> Scan:
    """Range limits, spurious returns, noise, intensity and dropout of the hits."""
    outlier = rng.random(depth.shape) < 0.001
    depth = np.where(outlier, rng.uniform(profile.min_range, 30, depth.shape), depth)
    cls = np.where(outlier, SimClass.OUTLIER, cls)
    inst = np.where(outlier, 0, inst)
    valid = (depth >= profile.min_range) & (depth <= profile.max_range) & (cls != SimClass.NONE)
    refl = REFLECTIVITY[cls] * np.exp(rng.normal(0, 0.2, depth.shape))
    falloff = np.clip(1.2 - depth / (2 * profile.max_range), 0.5, 1.2)
    intensity = refl * (0.35 + 0.65 * np.clip(cos, 0, 1)) * falloff
    weak = (depth / profile.max_range) ** 3 * np.clip(0.1 / np.maximum(intensity, 1e-3), 0, 1)
    valid &= rng.random(depth.shape) >= profile.dropout + weak
    depth = depth + rng.normal(0, profile.range_noise, depth.shape)
    if profile.keep_no_return:
        depth = np.where(valid, depth, rng.uniform(0, 1e-3, depth.shape))
        cls, intensity = np.where(valid, cls, SimClass.NONE), np.where(valid, intensity, 0.0)
        inst = np.where(valid, inst, 0)
        valid = np.ones_like(valid)
    beam, column = np.nonzero(valid)  # row-major: beam by beam, each sweeping the columns
    points = origin + depth[beam, column, None] * dirs[beam, column]
    return Scan(points=points, intensity=intensity[beam, column], cls=cls[beam, column],
                instance=inst[beam, column], moving=moving[beam, column], beam=beam, column=column,
                origin=origin, yaw=yaw)
