"""A spinning LiDAR ray-cast against a scene: the ground's height field and the primitives, nearest hit wins,
then echo strength, noise, dropout and intensity; the body of the car carrying the sensor stops its rays.

Rays form a (beams, columns) grid. Each primitive is only tested against the rays inside the angular
window of its bounding sphere (columns by azimuth, beams by elevation), which keeps a 130k-ray scan of
a few hundred primitives well under a second in numpy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .classes import REFLECTIVITY, ROUGHNESS, SPECULAR, SimClass
from .primitives import Box
from .profiles import SensorProfile
from .scene import Scene

__all__ = ["Mount", "Scan", "draw_mount", "scan_scene"]


@dataclass
class Scan:
    """Returns of one sweep in the street frame, in the sensor's storage order.

    ``points`` (N,3) float64 in the street frame, ``intensity`` (N,) reflectivity-like value, ``cls``
    SimClass, ``instance`` and ``moving`` per point, ``beam`` (0 = highest elevation) and ``column``
    per point. ``origin`` and ``rotation`` (3, 3: sensor axes -> street axes) give the sensor pose, ``ground_z``
    the ground's height under it. With ``profile.keep_no_return`` every ray
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
    rotation: np.ndarray
    ground_z: float = 0.0


@dataclass(frozen=True)
class Mount:
    """The sensor's pose on its car: ``lift`` (m) over the profile's height, ``pitch`` and ``roll`` (rad)."""

    lift: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0


def _window(center: np.ndarray, radius: float, origin: np.ndarray, az0: float, columns: int,
            elev: np.ndarray, tilt: float = 0.0) -> tuple[np.ndarray, np.ndarray] | None:
    """Beam and column indices whose rays can reach a sphere; None if it is out of reach. ``tilt`` (rad): how
    far the sensor's tilt can move a ray's elevation and azimuth from the level sensor's."""
    rel = center - origin
    horiz = float(np.hypot(rel[0], rel[1]))
    dist = float(np.linalg.norm(rel))
    step = 2 * np.pi / columns
    if horiz <= radius * 1.05 or dist <= radius * 1.05:
        return np.arange(len(elev)), np.arange(columns)
    half_az = np.arcsin(min(1.0, radius / horiz)) + tilt
    center_az = np.arctan2(rel[1], rel[0]) - az0
    lo = int(np.floor((center_az - half_az) / step))
    hi = int(np.ceil((center_az + half_az) / step))
    cols = np.arange(lo, hi + 1) % columns
    center_el = np.arctan2(rel[2], horiz)
    half_el = np.arcsin(min(1.0, radius / dist)) + 1e-3 + tilt
    beams = np.nonzero(np.abs(elev - center_el) <= half_el)[0]
    if beams.size == 0:
        return None
    return beams, cols


def draw_mount(rng: np.random.Generator) -> Mount:
    """The sensor's pose on its car for one scan: the load and the tyres move its height (sd 4 cm, within
    10 cm) and tilt it against the road (pitch and roll, sd 0.5 degrees, within 1.5)."""
    lift = float(np.clip(rng.normal(0, 0.04), -0.10, 0.10))
    pitch, roll = np.clip(rng.normal(0, np.deg2rad(0.5), 2), -np.deg2rad(1.5), np.deg2rad(1.5))
    return Mount(lift=lift, pitch=float(pitch), roll=float(roll))


def _rotation(yaw: float, mount: Mount) -> np.ndarray:
    """Sensor frame -> street frame: roll about x, then pitch about y, then yaw about z."""
    cr, sr = np.cos(mount.roll), np.sin(mount.roll)
    cp, sp = np.cos(mount.pitch), np.sin(mount.pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    roll = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    pitch = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    turn = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    return turn @ pitch @ roll


def _body_blocked(profile: SensorProfile, dirs: np.ndarray) -> np.ndarray:
    """(B, C) rays that the carrying car's body (``profile.ego_body``, sensor frame) stops."""
    blocked = np.zeros(dirs.shape[:2], dtype=bool)
    for center, size in profile.ego_body:
        t, _, _ = Box(center, size, 0.0, 0, 0).hit(np.zeros(3), dirs.reshape(-1, 3))
        blocked |= np.isfinite(t).reshape(blocked.shape)
    return blocked


# where a falling ray is looked for on the ground, in multiples of its range to the level ground (up to the
# sensor's maximum range): the first sample under the ground brackets the hit, which bisection narrows and a
# linear step between the bracket's ends finishes
_GROUND_SAMPLES = (0.3, 0.5, 0.7, 0.85, 1.0, 1.15, 1.35, 1.7, 2.2, 3.0)
_GROUND_BISECTIONS = 6


def _ground_hits(scene: Scene, origin: np.ndarray, height: float, dirs: np.ndarray, max_range: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth, SimClass and incidence cosine of the rays' hits on the ground's height field (inf: none within
    ``max_range``); ``height`` (m) is the sensor's over the ground under it.

    A falling ray is sampled at fixed multiples of its range to the level ground until a sample lies under the
    ground; bisection then finds the crossing (a rise or dip narrower than the samples' spacing can be missed).
    The surface's roughness then moves the hit along the ray.
    """
    depth = np.full(dirs.shape[:2], np.inf)
    cls = np.full(dirs.shape[:2], int(SimClass.NONE))
    rows, cols = np.nonzero(dirs[..., 2] < 0)
    d = dirs[rows, cols]                                              # (M, 3) falling rays
    fall = -d[:, 2]

    def clearance(t: np.ndarray) -> np.ndarray:                       # ray height over the ground at depth t
        return origin[2] - t * fall - scene.ground_height(origin[0] + t * d[:, 0], origin[1] + t * d[:, 1])

    level = height / fall                                             # range to the level ground
    lo, hi = np.zeros(len(d)), np.full(len(d), np.inf)
    lo_gap, hi_gap = np.full(len(d), origin[2]), np.zeros(len(d))
    for k in _GROUND_SAMPLES:
        searching = np.isinf(hi)
        t = np.minimum(k * level, max_range)
        gap = clearance(t)
        under = searching & (gap <= 0)
        hi, hi_gap = np.where(under, t, hi), np.where(under, gap, hi_gap)
        over = searching & (gap > 0)
        lo, lo_gap = np.where(over, t, lo), np.where(over, gap, lo_gap)
    hit = np.isfinite(hi)
    rows, cols, d, fall = rows[hit], cols[hit], d[hit], fall[hit]
    lo, hi, lo_gap, hi_gap = lo[hit], hi[hit], lo_gap[hit], hi_gap[hit]
    for _ in range(_GROUND_BISECTIONS):
        mid = 0.5 * (lo + hi)
        gap = clearance(mid)
        over = gap > 0
        lo, lo_gap = np.where(over, mid, lo), np.where(over, gap, lo_gap)
        hi, hi_gap = np.where(over, hi, mid), np.where(over, hi_gap, gap)
    t = lo + (hi - lo) * lo_gap / np.maximum(lo_gap - hi_gap, 1e-12)
    ground = scene.ground_class(origin[0] + t * d[:, 0], origin[1] + t * d[:, 1])
    shift = np.clip(rng.normal(0, ROUGHNESS[ground]) / fall, -1.0, 1.0)
    depth[rows, cols] = np.maximum(t - shift, 0.0)
    cls[rows, cols] = ground
    return depth, cls, np.abs(dirs[..., 2])


def scan_scene(scene: Scene, profile: SensorProfile, rng: np.random.Generator,
               scale: float = 1.0, mount: Mount = Mount()) -> Scan:
    """Cast one sweep of ``profile`` (``scale`` multiplies the column count) from the ego pose, the sensor
    mounted as ``mount`` says (default: level, at the profile's height)."""
    columns = max(8, int(round(profile.columns * scale)))
    elev = np.deg2rad(np.asarray(profile.elevations_deg))
    yaw = float(rng.normal(0, 0.05))
    offset = float(rng.uniform(0, 2 * np.pi / columns)) - np.pi
    az = offset + np.arange(columns) * 2 * np.pi / columns           # azimuth in the sensor frame
    sensor_dirs = np.stack([np.cos(elev)[:, None] * np.cos(az)[None],
                            np.cos(elev)[:, None] * np.sin(az)[None],
                            np.broadcast_to(np.sin(elev)[:, None], (len(elev), columns))], -1)  # (B, C, 3)
    rotation = _rotation(yaw, mount)
    dirs = sensor_dirs @ rotation.T
    ground_z = float(scene.ground_height(np.zeros(1), np.full(1, scene.ego_y))[0])
    origin = np.array([0.0, scene.ego_y, ground_z + profile.height + mount.lift])

    depth, cls, cos = _ground_hits(scene, origin, origin[2] - ground_z, dirs, profile.max_range, rng)
    inst = np.zeros(depth.shape, dtype=np.int64)
    moving = np.zeros(depth.shape, dtype=bool)
    gain = np.ones(depth.shape)                                       # per-object reflectivity factor
    paint: dict[int, float] = {}                                      # the factor of each instance hit
    tilt = float(np.hypot(mount.pitch, mount.roll))
    for prim in scene.primitives:
        center, radius = prim.bounds()
        window = _window(center, radius, origin, yaw + offset, columns, elev, tilt)
        if window is None:
            continue
        beams, cols = window
        sub = dirs[beams][:, cols]                                     # (b, c, 3)
        t, c, k = prim.hit(origin, sub.reshape(-1, 3))
        t = t.reshape(sub.shape[:2])
        porosity = getattr(prim, "porosity", 0.0)
        if porosity > 0:
            t[rng.random(t.shape) < porosity] = np.inf
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
        gain[rows, colsel] = _object_factor(prim.instance, paint, rng)
    cls[_body_blocked(profile, sensor_dirs)] = SimClass.NONE
    return _returns(profile, rng, origin, ground_z, rotation, dirs, depth, cls, cos, gain, inst, moving)


def _object_factor(instance: int, paint: dict[int, float], rng: np.random.Generator) -> float:
    """The reflectivity factor of a hit primitive (log-normal, sigma 0.5): one per object, so that the parts of
    one instance (a car's body and cabin) share their paint's; each primitive of no instance draws its own."""
    if not instance:
        return float(rng.lognormal(0.0, 0.5))
    if instance not in paint:
        paint[instance] = float(rng.lognormal(0.0, 0.5))
    return paint[instance]


def _returns(profile: SensorProfile, rng: np.random.Generator, origin: np.ndarray, ground_z: float,
             rotation: np.ndarray,
             dirs: np.ndarray, depth: np.ndarray, cls: np.ndarray, cos: np.ndarray, gain: np.ndarray,
             inst: np.ndarray, moving: np.ndarray) -> Scan:
    """Spurious returns, echo strength (range, weak echoes), noise, intensity and dropout of the hits.

    ``cos`` is the incidence cosine, ``gain`` the hit object's reflectivity factor. An echo's energy over the
    detection threshold is ``reflectivity / 0.1 * (reach_10 / range)**2`` (no return below 1); its peak is
    the energy times the incidence cosine (a slanted surface stretches the pulse). A specular hit, or one whose
    peak is under 0.35, is a weak echo and keeps ``profile.weak_intensity`` of its intensity.
    """
    outlier = rng.random(depth.shape) < 0.001
    depth = np.where(outlier, rng.uniform(profile.min_range, 30, depth.shape), depth)
    cls = np.where(outlier, SimClass.OUTLIER, cls)
    inst = np.where(outlier, 0, inst)
    cos = np.clip(np.where(outlier, 1.0, cos), 0, 1)
    reflectivity = REFLECTIVITY[cls] * gain * np.exp(rng.normal(0, 0.45, depth.shape))
    energy = reflectivity / 0.1 * (profile.reach_10 / np.maximum(depth, 1e-3)) ** 2
    weak = (rng.random(depth.shape) < SPECULAR[cls]) | (energy * cos < 0.35)
    intensity = reflectivity * (0.5 + 0.5 * cos) * np.where(weak, profile.weak_intensity, 1.0)
    valid = (depth >= profile.min_range) & (depth <= profile.max_range) & (cls != SimClass.NONE)
    valid &= (energy >= 1) & (rng.random(depth.shape) >= profile.dropout)
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
                origin=origin, rotation=rotation, ground_z=ground_z)
