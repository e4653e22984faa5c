"""The simulator's own semantic classes and their surface reflectivity.

Every surface a ray can hit carries one of these classes; a sensor profile maps them to the raw label
ids of its dataset (``profiles.py``), so the datasets' learning maps are exercised on the way back.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["SimClass", "REFLECTIVITY", "ROUGHNESS", "SPECULAR", "THINGS"]


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


# Diffuse reflectivity at the sensors' 905 nm per class: the median of its material (asphalt 0.08, car paint
# 0.03, concrete paving 0.12, render and brick 0.12, foliage and grass 0.12-0.16). Objects and surfaces vary
# about it (lidar.py: log-normal per object and along a surface). The values put the remission the sensors
# write per class where real SemanticKITTI frames have it (class medians: car 0.08, road 0.25, sidewalk 0.31,
# vegetation 0.34, building 0.41); markings, signs and cones are retro-reflective.
REFLECTIVITY = np.zeros(len(SimClass), dtype=np.float64)
for _cls, _r in {
    SimClass.ROAD: 0.08, SimClass.LANE_MARKING: 0.45, SimClass.SIDEWALK: 0.12, SimClass.CURB: 0.13,
    SimClass.PARKING: 0.14, SimClass.OTHER_GROUND: 0.12, SimClass.TERRAIN: 0.16, SimClass.BUILDING: 0.12,
    SimClass.FENCE: 0.07, SimClass.VEGETATION: 0.12, SimClass.TRUNK: 0.12, SimClass.POLE: 0.06,
    SimClass.TRAFFIC_SIGN: 0.1, SimClass.TRAFFIC_LIGHT: 0.12, SimClass.CAR: 0.03, SimClass.TRUCK: 0.08,
    SimClass.BUS: 0.08, SimClass.TRAILER: 0.1, SimClass.CONSTRUCTION_VEHICLE: 0.15,
    SimClass.MOTORCYCLE: 0.06, SimClass.BICYCLE: 0.08, SimClass.PEDESTRIAN: 0.1,
    SimClass.BICYCLIST: 0.1, SimClass.MOTORCYCLIST: 0.08, SimClass.BARRIER: 0.25,
    SimClass.TRAFFIC_CONE: 0.5, SimClass.OTHER_OBJECT: 0.1, SimClass.OUTLIER: 0.05,
}.items():
    REFLECTIVITY[_cls] = _r

# Share of a class's hits that are specular (glass, lacquer, bare metal, dark sealant and wet patches on a road):
# the pulse is mirrored away and the echo that comes back is weak (real car points: 45 % written as remission 0).
SPECULAR = np.full(len(SimClass), 0.01)
for _cls, _s in {SimClass.CAR: 0.45, SimClass.TRUCK: 0.3, SimClass.BUS: 0.3, SimClass.TRAILER: 0.2,
                 SimClass.CONSTRUCTION_VEHICLE: 0.2, SimClass.MOTORCYCLE: 0.3, SimClass.POLE: 0.25,
                 SimClass.TRAFFIC_LIGHT: 0.25, SimClass.ROAD: 0.1}.items():
    SPECULAR[_cls] = _s

# vertical roughness (m, standard deviation) of the ground classes; other classes' surfaces are primitives
ROUGHNESS = np.full(len(SimClass), 0.01)
for _cls, _z in {SimClass.TERRAIN: 0.05, SimClass.PARKING: 0.015}.items():
    ROUGHNESS[_cls] = _z

# classes whose objects get instance ids
THINGS = frozenset({SimClass.CAR, SimClass.TRUCK, SimClass.BUS, SimClass.TRAILER,
                    SimClass.CONSTRUCTION_VEHICLE, SimClass.MOTORCYCLE, SimClass.BICYCLE,
                    SimClass.PEDESTRIAN, SimClass.BICYCLIST, SimClass.MOTORCYCLIST})
