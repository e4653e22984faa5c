"""Sensor profiles: the three LiDARs the simulator imitates and their raw label ids.

Facts from the sensors' documentation and the real frames (tests/fixtures/real): a nuScenes sweep stores every ray,
1,084 columns x 32 rings (34,688 points, ring 0 = lowest beam), no-return rays near the origin.
The real frames also set, per class and never per frame, what no datasheet gives: the intensity gains (the
medians of the written remission, uint8 intensity), the recording cars' bodies (the lowest returning beam ahead,
behind and to the sides) and nuScenes' share of returning rays per ring (dropout). Chosen where no source fixes a
value: Waymo's TOP lidar at 2.1 m over a vehicle frame with z = 0 on the ground, its beams denser near the
horizon, only its first return, no car body, and its intensity gain.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .classes import SimClass as C

__all__ = ["SensorProfile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class SensorProfile:
    """One spinning LiDAR and its dataset's conventions.

    ``raw_ids`` maps a SimClass to the raw id written to disk; ``moving_ids`` overrides it for moving
    objects (SemanticKITTI's 25x ids). ``intensity`` is "uint8" (nuScenes 0-255), "remission" (KITTI
    0-0.99) or "tanh" (Waymo tanh of an unbounded intensity).

    ``reach_10`` (m) is the range at which a surface of reflectivity 0.1 at normal incidence returns an echo
    just over the detection threshold: it sets each surface's range. A weak echo (grazing incidence, specular
    surface) keeps ``weak_intensity`` of its intensity (0: the sensor writes 0, as the HDL-64E does for
    8.6 % of SemanticKITTI's points). ``label_range`` (m): returns farther than this are written unlabelled.
    ``ego_body``: boxes (centre, size) of the car carrying the sensor, in the sensor's frame (x forward,
    y left, z up): rays into them return nothing. ``traffic`` scales the scenes' moving road users, people
    and heavy vehicles.
    """

    name: str
    elevations_deg: tuple[float, ...]
    columns: int
    height: float
    min_range: float
    max_range: float
    range_noise: float
    dropout: float
    intensity: str
    intensity_gain: float
    raw_ids: dict[int, int]
    moving_ids: dict[int, int] = field(default_factory=dict)
    keep_no_return: bool = False
    street_width: tuple[float, float] = (7.0, 12.0)
    vegetation: float = 0.5
    traffic: float = 1.0
    reach_10: float = 80.0
    weak_intensity: float = 0.2
    label_range: float | None = None
    ego_body: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...] = ()

    @property
    def beams(self) -> int:
        return len(self.elevations_deg)

    def raw_table(self, moving: bool) -> np.ndarray:
        """SimClass -> raw id as an array (moving objects use ``moving_ids`` where given)."""
        table = np.zeros(len(C), dtype=np.int64)
        for cls, raw in self.raw_ids.items():
            table[cls] = raw
        if moving:
            for cls, raw in self.moving_ids.items():
                table[cls] = raw
        return table


_NUSCENES_IDS = {  # rays without a return are stored near the origin, labelled vehicle.ego
    C.NONE: 31, C.ROAD: 24, C.LANE_MARKING: 24, C.SIDEWALK: 26, C.CURB: 26, C.PARKING: 24,
    C.OTHER_GROUND: 25, C.TERRAIN: 27, C.BUILDING: 28, C.FENCE: 28, C.VEGETATION: 30, C.TRUNK: 30,
    C.POLE: 28, C.TRAFFIC_SIGN: 28, C.TRAFFIC_LIGHT: 28, C.CAR: 17, C.TRUCK: 23, C.BUS: 16,
    C.TRAILER: 22, C.CONSTRUCTION_VEHICLE: 18, C.MOTORCYCLE: 21, C.BICYCLE: 14, C.PEDESTRIAN: 2,
    C.BICYCLIST: 14, C.MOTORCYCLIST: 21, C.BARRIER: 9, C.TRAFFIC_CONE: 12, C.OTHER_OBJECT: 29,
    C.OUTLIER: 0,
}
_KITTI_IDS = {
    C.NONE: 0, C.ROAD: 40, C.LANE_MARKING: 60, C.SIDEWALK: 48, C.CURB: 48, C.PARKING: 44,
    C.OTHER_GROUND: 49, C.TERRAIN: 72, C.BUILDING: 50, C.FENCE: 51, C.VEGETATION: 70, C.TRUNK: 71,
    C.POLE: 80, C.TRAFFIC_SIGN: 81, C.TRAFFIC_LIGHT: 81, C.CAR: 10, C.TRUCK: 18, C.BUS: 13,
    C.TRAILER: 20, C.CONSTRUCTION_VEHICLE: 20, C.MOTORCYCLE: 15, C.BICYCLE: 11, C.PEDESTRIAN: 30,
    C.BICYCLIST: 31, C.MOTORCYCLIST: 32, C.BARRIER: 51, C.TRAFFIC_CONE: 99, C.OTHER_OBJECT: 99,
    C.OUTLIER: 1,
}
_KITTI_MOVING = {C.CAR: 252, C.BICYCLIST: 253, C.PEDESTRIAN: 254, C.MOTORCYCLIST: 255, C.BUS: 257,
                 C.TRUCK: 258, C.TRAILER: 259, C.CONSTRUCTION_VEHICLE: 259}
# Waymo Segmentation.Type (written to disk as type - 1)
_WAYMO_IDS = {
    C.NONE: 0, C.ROAD: 18, C.LANE_MARKING: 19, C.SIDEWALK: 22, C.CURB: 17, C.PARKING: 18,
    C.OTHER_GROUND: 20, C.TERRAIN: 21, C.BUILDING: 14, C.FENCE: 14, C.VEGETATION: 15, C.TRUNK: 16,
    C.POLE: 10, C.TRAFFIC_SIGN: 8, C.TRAFFIC_LIGHT: 9, C.CAR: 1, C.TRUCK: 2, C.BUS: 3, C.TRAILER: 4,
    C.CONSTRUCTION_VEHICLE: 4, C.MOTORCYCLE: 13, C.BICYCLE: 12, C.PEDESTRIAN: 7, C.BICYCLIST: 6,
    C.MOTORCYCLIST: 5, C.BARRIER: 14, C.TRAFFIC_CONE: 11, C.OTHER_OBJECT: 0, C.OUTLIER: 0,
}

# The recording cars' bodies under the sensor, from the cars' sizes and the real frames' lowest returning beam
# per direction: SemanticKITTI's Passat (sensor 0.36 m over the roof) returns nothing below -20.7 degrees ahead
# (bonnet), -18.5 degrees behind (roof and tailgate) and is open to the lowest beam at the sides; nuScenes'
# Zoe returns nothing below -24 degrees ahead and -22.8 degrees behind, the sides open to the lowest ring.
_PASSAT = (((-0.17, 0.0, -0.90), (1.76, 1.40, 1.08)),    # roof and cabin, 1.37 m over the road
           ((1.0, 0.0, -1.02), (0.8, 1.5, 0.84)),       # windscreen step
           ((1.825, 0.0, -1.14), (0.85, 1.8, 0.58)),    # bonnet, 0.88 m over the road
           ((-1.675, 0.0, -1.115), (1.25, 1.8, 0.63)))  # tailgate and bumper
_ZOE = (((-0.285, 0.0, -0.97), (1.57, 1.40, 1.04)),      # roof and cabin, 1.39 m over the road
        ((0.7, 0.0, -1.02), (0.4, 1.5, 0.94)),          # windscreen
        ((1.45, 0.0, -1.19), (1.1, 1.75, 0.68)),        # bonnet
        ((-1.535, 0.0, -1.19), (0.93, 1.75, 0.68)))     # boot

_KITTI_ELEV = tuple([2.0 - k / 3 for k in range(32)] + [-8.83 - k * 0.515 for k in range(32)])
_WAYMO_ELEV = tuple(2.4 - 20.0 * (k / 63) ** 1.4 for k in range(64))

PROFILES: dict[str, SensorProfile] = {
    "nuscenes": SensorProfile(
        name="nuscenes", elevations_deg=tuple(np.linspace(10.67, -30.67, 32).tolist()), columns=1084,
        height=1.84, min_range=1.0, max_range=100.0, range_noise=0.02, dropout=0.01,
        intensity="uint8", intensity_gain=180.0, raw_ids=_NUSCENES_IDS, keep_no_return=True,
        street_width=(7.0, 11.0), vegetation=0.5, reach_10=70.0, ego_body=_ZOE),
    "semantic_kitti": SensorProfile(
        name="semantic_kitti", elevations_deg=_KITTI_ELEV, columns=2083, height=1.73, min_range=2.0,
        max_range=120.0, range_noise=0.02, dropout=0.01, intensity="remission", intensity_gain=1.1,
        raw_ids=_KITTI_IDS, moving_ids=_KITTI_MOVING, street_width=(6.0, 9.0), vegetation=0.8, traffic=0.3,
        reach_10=80.0, weak_intensity=0.0, label_range=50.0, ego_body=_PASSAT),
    "waymo": SensorProfile(
        name="waymo", elevations_deg=_WAYMO_ELEV, columns=2650, height=2.1, min_range=1.0,
        max_range=75.0, range_noise=0.015, dropout=0.01, intensity="tanh", intensity_gain=4.5,
        raw_ids=_WAYMO_IDS, street_width=(9.0, 15.0), vegetation=0.4, reach_10=80.0),
}


def get_profile(name: str) -> SensorProfile:
    if name not in PROFILES:
        raise KeyError(f"simulator: unknown profile {name!r} (known: {sorted(PROFILES)})")
    return PROFILES[name]
