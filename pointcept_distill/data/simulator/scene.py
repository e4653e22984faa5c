"""Procedural street scenes: a road with markings, curbed sidewalks, frontage (buildings, parking,
terrain with vegetation and fences), street furniture, vehicles, cyclists and pedestrians.

Coordinates are the street frame: the road runs along x, the ground is z = 0, the ego sensor sits in
the right-hand lane near the origin. Everything is drawn from the generator passed in.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .classes import SimClass as C
from .primitives import Box, Cylinder, Ellipsoid, Primitive

__all__ = ["Scene", "make_scene"]

CURB_HEIGHT = 0.15
HALF_LENGTH = 110.0


@dataclass
class Scene:
    """Primitives plus the flat ground's layout (road strips, parking lots; the rest is terrain)."""

    road_width: float
    sidewalk_width: float
    cross_x: float | None
    cross_width: float
    ego_y: float
    parking: list[tuple[float, float, float, float]] = field(default_factory=list)
    primitives: list[Primitive] = field(default_factory=list)
    _next_instance: int = 1

    def new_instance(self) -> int:
        self._next_instance += 1
        return self._next_instance - 1

    def on_cross(self, x: np.ndarray | float, margin: float = 0.0) -> np.ndarray | bool:
        if self.cross_x is None:
            return np.zeros_like(x, dtype=bool) if isinstance(x, np.ndarray) else False
        return np.abs(x - self.cross_x) < self.cross_width / 2 + margin

    def ground_class(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """SimClass of the z = 0 ground at (x, y)."""
        cls = np.full(x.shape, int(C.TERRAIN))
        for x0, x1, y0, y1 in self.parking:
            cls[(x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)] = C.PARKING
        main = np.abs(y) < self.road_width / 2
        cross = self.on_cross(x)
        cls[main | cross] = C.ROAD
        dashed = (np.abs(y) < 0.08) & (np.mod(x, 9.0) < 3.0) & main & ~cross
        edge = (np.abs(np.abs(y) - (self.road_width / 2 - 0.3)) < 0.08) & main & ~cross
        stop = self.on_cross(x, 1.2) & ~self.on_cross(x, 0.6) & main & (y < 0)
        cls[dashed | edge | stop] = C.LANE_MARKING
        return cls


def _vehicle(scene: Scene, kind: int, x: float, y: float, yaw: float, moving: bool,
             rng: np.random.Generator) -> None:
    """Add a vehicle of SimClass ``kind`` centred at (x, y) on the ground."""
    inst, add = scene.new_instance(), scene.primitives.append
    c, s = np.cos(yaw), np.sin(yaw)

    def at(dx: float) -> tuple[float, float]:
        return x + c * dx, y + s * dx

    if kind == C.CAR:
        length, width = rng.uniform(3.9, 4.9), rng.uniform(1.7, 1.95)
        add(Box((x, y, 0.65), (length, width, 0.8), yaw, kind, kind, inst, moving))
        cx, cy = at(-0.1 * length)
        add(Box((cx, cy, 1.3), (0.5 * length, 0.9 * width, 0.5), yaw, kind, kind, inst, moving))
    elif kind == C.TRUCK:
        length = rng.uniform(6, 9)
        cx, cy = at(length / 2 - 1.1)
        add(Box((cx, cy, 1.6), (2.2, 2.4, 2.8), yaw, kind, kind, inst, moving))
        cx, cy = at(-1.1)
        add(Box((cx, cy, 2.1), (length - 2.2, 2.5, 2.8), yaw, kind, kind, inst, moving))
    elif kind == C.BUS:
        add(Box((x, y, 1.85), (rng.uniform(10, 13), 2.55, 3.1), yaw, kind, kind, inst, moving))
    elif kind == C.TRAILER:
        cx, cy = at(5.8)
        add(Box((cx, cy, 1.6), (2.4, 2.4, 2.8), yaw, C.TRUCK, C.TRUCK, scene.new_instance(), moving))
        add(Box((x, y, 2.3), (rng.uniform(8, 12), 2.5, 3.0), yaw, kind, kind, inst, moving))
    elif kind == C.CONSTRUCTION_VEHICLE:
        add(Box((x, y, 1.0), (3.5, 2.5, 1.6), yaw, kind, kind, inst, moving))
        cx, cy = at(-0.5)
        add(Box((cx, cy, 2.5), (1.6, 1.6, 1.4), yaw, kind, kind, inst, moving))
        cx, cy = at(3.0)
        add(Box((cx, cy, 2.4), (3.5, 0.4, 0.5), yaw, kind, kind, inst, moving))
    elif kind in (C.MOTORCYCLE, C.BICYCLE):
        height = 1.1 if kind == C.MOTORCYCLE else 0.95
        add(Box((x, y, height / 2 + 0.1), (1.8, 0.35 if kind == C.BICYCLE else 0.7, height), yaw,
                kind, kind, inst, moving))
        if moving:
            rider = C.MOTORCYCLIST if kind == C.MOTORCYCLE else C.BICYCLIST
            add(Ellipsoid((x, y, height + 0.45), (0.3, 0.25, 0.45), rider, scene.new_instance(), moving))


def _pedestrian(scene: Scene, x: float, y: float, moving: bool, rng: np.random.Generator) -> None:
    half = rng.uniform(0.6, 0.92)
    scene.primitives.append(Ellipsoid((x, y, half), (0.28, 0.22, half), C.PEDESTRIAN,
                                      scene.new_instance(), moving))


def _tree(scene: Scene, x: float, y: float, rng: np.random.Generator) -> None:
    trunk_h, crown = rng.uniform(1.8, 3.5), rng.uniform(1.5, 3.2)
    scene.primitives.append(Cylinder((x, y), rng.uniform(0.12, 0.3), 0.0, trunk_h + crown * 0.5,
                                     C.TRUNK))
    scene.primitives.append(Ellipsoid((x, y, trunk_h + crown), (crown, crown, crown * 1.1), C.VEGETATION,
                                      porosity=0.35))


def _street_furniture(scene: Scene, side: float, rng: np.random.Generator) -> None:
    """Poles with signs and lights, trees, pedestrians, parked bicycles and small objects on a sidewalk."""
    w, sw = scene.road_width / 2, scene.sidewalk_width
    x = -HALF_LENGTH + rng.uniform(0, 10)
    while x < HALF_LENGTH:
        if not scene.on_cross(x, sw + 1):
            y = side * (w + rng.uniform(0.3, 0.7))
            item = rng.choice(["lamp", "sign", "tree", "tree", "object", "none"])
            if item == "lamp":
                scene.primitives.append(Cylinder((x, y), 0.1, 0.0, rng.uniform(6, 9), C.POLE))
            elif item == "sign":
                scene.primitives.append(Cylinder((x, y), 0.05, 0.0, 2.6, C.POLE))
                scene.primitives.append(Box((x, y, 2.3), (0.05, 0.7, 0.6), 0.0, C.TRAFFIC_SIGN,
                                            C.TRAFFIC_SIGN))
            elif item == "tree":
                _tree(scene, x, side * (w + sw - rng.uniform(0.6, 1.2)), rng)
            elif item == "object":
                scene.primitives.append(Box((x, y, 0.6 + CURB_HEIGHT), (0.6, 0.6, 1.2), 0.0,
                                            C.OTHER_OBJECT, C.OTHER_OBJECT))
        x += rng.uniform(6, 16)
    for _ in range(rng.poisson(4)):
        px = rng.uniform(-60, 60)
        if not scene.on_cross(px, 1):
            py = side * (w + rng.uniform(0.5, sw - 0.3))
            _pedestrian(scene, px, py, bool(rng.random() < 0.6), rng)
    for _ in range(rng.poisson(1.0)):
        px = rng.uniform(-40, 40)
        if not scene.on_cross(px, sw):
            _vehicle(scene, C.BICYCLE if rng.random() < 0.6 else C.MOTORCYCLE, px,
                     side * (w + sw - 0.8), np.pi / 2 + rng.normal(0, 0.2), False, rng)


def _frontage(scene: Scene, side: float, vegetation: float, rng: np.random.Generator) -> None:
    """Buildings, parking lots and terrain with vegetation and fences behind one sidewalk."""
    y0 = scene.road_width / 2 + scene.sidewalk_width
    x = -HALF_LENGTH
    while x < HALF_LENGTH:
        length = rng.uniform(10, 35)
        x0, x1 = x, min(x + length, HALF_LENGTH)
        x = x1 + rng.uniform(0.5, 4)
        if scene.on_cross(0.5 * (x0 + x1), length / 2 + scene.sidewalk_width):
            continue
        kind = rng.choice(["building", "parking", "green"], p=[0.5 - vegetation * 0.25, 0.2,
                                                                0.3 + vegetation * 0.25])
        if kind == "building":
            setback, depth, height = rng.uniform(0, 6), rng.uniform(8, 20), rng.uniform(4, 25)
            yc = side * (y0 + setback + depth / 2)
            scene.primitives.append(Box((0.5 * (x0 + x1), yc, height / 2), (x1 - x0, depth, height),
                                        0.0, C.BUILDING, C.BUILDING))
            if setback > 3 and rng.random() < vegetation:
                for _ in range(int(rng.integers(1, 4))):
                    bx, by = rng.uniform(x0, x1), side * (y0 + rng.uniform(0.8, setback - 0.8))
                    r = rng.uniform(0.5, 1.2)
                    scene.primitives.append(Ellipsoid((bx, by, r * 0.6), (r, r, r * 0.8),
                                                      C.VEGETATION, porosity=0.2))
        elif kind == "parking":
            ya, yb = sorted((side * y0, side * (y0 + 16)))
            scene.parking.append((x0, x1, ya, yb))
            for px in np.arange(x0 + 1.5, x1 - 1.5, 2.8):
                if rng.random() < 0.6:
                    _vehicle(scene, C.CAR, px, side * (y0 + 3.5), np.pi / 2, False, rng)
        else:
            if rng.random() < vegetation:
                height = rng.uniform(1.0, 2.8)
                scene.primitives.append(Box((0.5 * (x0 + x1), side * (y0 + 1.0), height / 2),
                                            (x1 - x0, rng.uniform(0.8, 1.6), height), 0.0,
                                            C.VEGETATION, C.VEGETATION))
            elif rng.random() < 0.6:
                scene.primitives.append(Box((0.5 * (x0 + x1), side * (y0 + 0.5), 0.7),
                                            (x1 - x0, 0.06, 1.4), 0.0, C.FENCE, C.FENCE))
            for _ in range(rng.poisson(3 * vegetation + 1)):
                _tree(scene, rng.uniform(x0, x1), side * (y0 + rng.uniform(2, 15)), rng)
            for _ in range(rng.poisson(4 * vegetation)):
                r = rng.uniform(0.5, 1.5)
                scene.primitives.append(Ellipsoid((rng.uniform(x0, x1), side * (y0 + rng.uniform(1, 12)),
                                                   r * 0.5), (r, r, r * 0.7), C.VEGETATION,
                                                  porosity=0.2))
    far = side * (y0 + rng.uniform(25, 40))
    for xc in np.arange(-HALF_LENGTH, HALF_LENGTH, 30.0):
        if rng.random() < 0.6:
            height = rng.uniform(8, 30)
            scene.primitives.append(Box((xc + 12, far + side * 8, height / 2), (rng.uniform(12, 26), 16,
                                                                                height), 0.0,
                                        C.BUILDING, C.BUILDING))


def _traffic(scene: Scene, rng: np.random.Generator) -> None:
    """Parked vehicles at both curbs, moving traffic in the lanes, an optional construction zone."""
    w = scene.road_width / 2
    for side in (-1.0, 1.0):
        x = -HALF_LENGTH + rng.uniform(0, 8)
        while x < HALF_LENGTH:
            if not scene.on_cross(x, 6) and abs(x) > 7 and rng.random() < 0.55:
                kind = rng.choice([C.CAR] * 8 + [C.TRUCK, C.TRAILER])
                _vehicle(scene, kind, x, side * (w - 1.1), 0.0 if side < 0 else np.pi, False, rng)
                x += 14 if kind == C.TRAILER else 6
            x += rng.uniform(1, 6)
    kinds = [C.CAR] * 10 + [C.TRUCK, C.BUS, C.BUS, C.TRAILER, C.MOTORCYCLE, C.BICYCLE]
    for _ in range(rng.poisson(5)):
        lane = rng.choice([-1.0, 1.0])
        x = rng.uniform(-70, 70)
        if abs(x) < 12 or scene.on_cross(x, 3):
            continue
        _vehicle(scene, rng.choice(kinds), x, lane * w / 2 + rng.normal(0, 0.2),
                 0.0 if lane < 0 else np.pi, True, rng)
    for _ in range(rng.poisson(1.5)):
        lane = rng.choice([-1.0, 1.0])
        x = rng.uniform(-50, 50)
        if abs(x) > 8 and not scene.on_cross(x, 3):
            _vehicle(scene, rng.choice([C.BICYCLE, C.MOTORCYCLE]), x, lane * (w - 1.6),
                     0.0 if lane < 0 else np.pi, True, rng)
    if scene.cross_x is not None:
        for _ in range(rng.poisson(2)):
            y = rng.uniform(w + 8, 60) * rng.choice([-1, 1])
            _vehicle(scene, C.CAR, scene.cross_x + rng.choice([-1, 1]) * scene.cross_width / 4, y,
                     np.pi / 2, True, rng)
        for sx in (-1, 1):
            for sy in (-1, 1):
                px, py = scene.cross_x + sx * (scene.cross_width / 2 + 0.5), sy * (w + 0.5)
                scene.primitives.append(Cylinder((px, py), 0.12, 0.0, 5.5, C.POLE))
                scene.primitives.append(Box((px, py - sy * 0.6, 5.0), (0.35, 0.35, 0.9), 0.0,
                                            C.TRAFFIC_LIGHT, C.TRAFFIC_LIGHT))
    if rng.random() < 0.5:
        xs = rng.uniform(15, 45) * rng.choice([-1, 1])
        side = rng.choice([-1.0, 1.0])
        for k in range(int(rng.integers(3, 7))):
            scene.primitives.append(Box((xs + 2.2 * k, side * (w - 2.6), 0.5), (2.0, 0.5, 1.0), 0.0,
                                        C.BARRIER, C.BARRIER))
        for k in range(int(rng.integers(3, 8))):
            scene.primitives.append(Cylinder((xs - 3 - 2.0 * k, side * (w - 2.2 - 0.1 * k)), 0.17, 0.0,
                                             0.7, C.TRAFFIC_CONE))
        _vehicle(scene, C.CONSTRUCTION_VEHICLE, xs + 4, side * (w - 1.3), 0.0, False, rng)
        for k in range(int(rng.integers(1, 3))):
            _pedestrian(scene, xs + 1.5 * k, side * (w - 3.2), False, rng)


def _sidewalks_and_islands(scene: Scene, rng: np.random.Generator) -> None:
    w, sw = scene.road_width / 2, scene.sidewalk_width
    gaps = [(-HALF_LENGTH, HALF_LENGTH)]
    if scene.cross_x is not None:
        half = scene.cross_width / 2
        gaps = [(-HALF_LENGTH, scene.cross_x - half), (scene.cross_x + half, HALF_LENGTH)]
        for sx in (-1.0, 1.0):
            for sy in (-1.0, 1.0):
                xc, yc = scene.cross_x + sx * (half + sw / 2), sy * (w + (60 - w) / 2)
                scene.primitives.append(Box((xc, yc, CURB_HEIGHT / 2 - 0.25), (sw, 60 - w, CURB_HEIGHT + 0.5),
                                            0.0, C.SIDEWALK, C.CURB))
    for side in (-1.0, 1.0):
        for x0, x1 in gaps:
            if x1 - x0 > 1:
                scene.primitives.append(Box((0.5 * (x0 + x1), side * (w + sw / 2), CURB_HEIGHT / 2 - 0.25),
                                            (x1 - x0, sw, CURB_HEIGHT + 0.5), 0.0, C.SIDEWALK, C.CURB))
    if rng.random() < 0.5:
        x0 = rng.uniform(15, 50) * rng.choice([-1, 1])
        scene.primitives.append(Box((x0, 0.0, CURB_HEIGHT / 2 - 0.25), (rng.uniform(10, 30), 1.4,
                                                                         CURB_HEIGHT + 0.5), 0.0,
                                    C.OTHER_GROUND, C.CURB))


def make_scene(rng: np.random.Generator, street_width: tuple[float, float] = (7.0, 12.0),
               vegetation: float = 0.5) -> Scene:
    """Draw one street scene; ``street_width`` bounds the road width, ``vegetation`` in [0, 1]."""
    road = float(rng.uniform(*street_width))
    cross = float(rng.uniform(-40, 40)) if rng.random() < 0.4 else None
    if cross is not None and abs(cross) < 10:
        cross += 20 * np.sign(cross or 1)
    scene = Scene(road_width=road, sidewalk_width=float(rng.uniform(2, 4)), cross_x=cross,
                  cross_width=float(rng.uniform(7, 12)), ego_y=-road / 4 + float(rng.normal(0, 0.3)))
    _sidewalks_and_islands(scene, rng)
    for side in (-1.0, 1.0):
        _frontage(scene, side, vegetation, rng)
        _street_furniture(scene, side, rng)
    _traffic(scene, rng)
    return scene
