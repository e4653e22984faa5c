"""The simulator's own semantic classes and their surface reflectivity.

Every surface a ray can hit carries one of these classes; a sensor profile maps them to the raw label
ids of its dataset (``profiles.py``), so the datasets' learning maps are exercised on the way back.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["SimClass", "REFLECTIVITY", "THINGS"]


class SimClass(IntEnum):
    NONE = 0
    ROAD = 1
    LANE_MARKING = 2
    SIDEWALK = 3
    CURB = 4
    PARKING = 5
    OTHER_GROUND = 6
    TERRAIN = 7
    BUILDING = 8
    FENCE = 9
    VEGETATION = 10
    TRUNK = 11
    POLE = 12
    TRAFFIC_SIGN = 13
    TRAFFIC_LIGHT = 14
    CAR = 15
    TRUCK = 16
    BUS = 17
    TRAILER = 18
    CONSTRUCTION_VEHICLE = 19
    MOTORCYCLE = 20
    BICYCLE = 21
    PEDESTRIAN = 22
    BICYCLIST = 23
    MOTORCYCLIST = 24
    BARRIER = 25
    TRAFFIC_CONE = 26
    OTHER_OBJECT = 27
    OUTLIER = 28


# diffuse reflectivity; retro-reflective surfaces (signs, markings, cones) above 0.5
REFLECTIVITY = np.zeros(len(SimClass), dtype=np.float64)
for _cls, _r in {
    SimClass.ROAD: 0.08, SimClass.LANE_MARKING: 0.55, SimClass.SIDEWALK: 0.16, SimClass.CURB: 0.2,
    SimClass.PARKING: 0.1, SimClass.OTHER_GROUND: 0.14, SimClass.TERRAIN: 0.22, SimClass.BUILDING: 0.25,
    SimClass.FENCE: 0.3, SimClass.VEGETATION: 0.35, SimClass.TRUNK: 0.2, SimClass.POLE: 0.3,
    SimClass.TRAFFIC_SIGN: 0.95, SimClass.TRAFFIC_LIGHT: 0.4, SimClass.CAR: 0.2, SimClass.TRUCK: 0.25,
    SimClass.BUS: 0.25, SimClass.TRAILER: 0.3, SimClass.CONSTRUCTION_VEHICLE: 0.4,
    SimClass.MOTORCYCLE: 0.2, SimClass.BICYCLE: 0.18, SimClass.PEDESTRIAN: 0.15,
    SimClass.BICYCLIST: 0.15, SimClass.MOTORCYCLIST: 0.15, SimClass.BARRIER: 0.45,
    SimClass.TRAFFIC_CONE: 0.7, SimClass.OTHER_OBJECT: 0.2, SimClass.OUTLIER: 0.05,
}.items():
    REFLECTIVITY[_cls] = _r

# classes whose objects get instance ids
THINGS = frozenset({SimClass.CAR, SimClass.TRUCK, SimClass.BUS, SimClass.TRAILER,
                    SimClass.CONSTRUCTION_VEHICLE, SimClass.MOTORCYCLE, SimClass.BICYCLE,
                    SimClass.PEDESTRIAN, SimClass.BICYCLIST, SimClass.MOTORCYCLIST})
