"""Procedural street scenes: a road with markings, curbed sidewalks, frontage (buildings with front gardens,
parking, planted plots with hedges and fences, back gardens), street furniture, vehicles, cyclists and
pedestrians.

Coordinates are the street frame: the road runs along x, the ego sensor sits in the right-hand lane near the
origin. The ground is a height field (``Scene.ground_height``): the street follows a vertical curve along x,
the road is crowned, the sidewalks stand a curb above the gutters and the terrain behind them ramps to a level
of its own per plot. Objects are built on level ground (z = 0 under them) and then stood on the ground under
them. Everything is drawn from the generator passed in.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .classes import SimClass as C
from .primitives import Box, Cylinder, Ellipsoid, Primitive

__all__ = ["Scene", "make_scene"]

HALF_LENGTH = 110.0

# the ground
CURVATURE_SD = 1 / 2500         # 1/m, sd of a street's vertical curvature (crest < 0 < sag), level at x = 0
CROSS_FALL = 0.02               # the road falls 2 % towards each gutter ...
CROWN_WIDTH = 3.0               # m ... over the outer 3 m of each half
CURB_REVEAL = (0.08, 0.20)      # m, bounds of a street's sidewalk top over its gutters (uniform)
TERRAIN_LEVEL = (-0.05, 0.3)    # m, mean and sd of a plot's ground level over the sidewalk top ...
TERRAIN_CLIP = (-0.8, 0.6)      # m ... clipped to these bounds
TERRAIN_RAMP = 3.0              # m, behind a sidewalk the ground reaches its plot's level over this depth
PLOT_BLEND = 1.5                # m, neighbouring plots' levels blend over their gap and this much of each plot
PIECE_LENGTH = 2.0              # m, sidewalks and islands are laid in pieces this long to follow the curve
SLAB_DEPTH = 0.5                # m, sidewalk and island slabs reach this far below the gutter
FOUNDATION = 1.0                # m, buildings reach this far below the ground: a slope never shows a gap

# objects
WHEEL_WIDTH = 0.22              # m, a car's tyre
WINDOW_POROSITY = 0.75          # share of the rays a car's windows let through (pillars and frames echo)
ROOF_THICKNESS = 0.06           # m, a car's roof slab over its cabin
CROWN_POROSITY = 0.4            # tree crowns' lobes
SHRUB_POROSITY = 0.3            # bushes, shrubs and beds
HEDGE_POROSITY = 0.1            # hedges are dense
HEDGE_SPACING = 1.6             # m, along a hedge one lobe per this length
KERB_PARKING = 0.4              # chance of a parked vehicle at each kerbside slot
HEAVY_PARKED = 0.2              # share of trucks and trailers among the parked vehicles at traffic = 1

Placed = list[tuple[float, float, Primitive]]
"""Primitives built on level ground, each with the (x, y) whose ground height lifts it."""


@dataclass
class Scene:
    """Primitives plus the ground: its layout (road strips, parking lots; the rest is terrain) and heights.

    ``kappa`` (1/m) is the street's vertical curvature and ``curb`` (m) its curb reveal (sidewalk top over the
    gutter). ``plots`` holds the ground behind the sidewalks as (side, x0, x1, edge, level): on ``side`` (-1:
    y < 0, +1: y > 0) between x0 and x1 the ground at the sidewalk's back edge lies ``edge`` over the gutter
    and ramps to ``level`` over it. A scene without plots has level ground behind the sidewalks.
    """

    road_width: float
    sidewalk_width: float
    cross_x: float | None
    cross_width: float
    ego_y: float
    parking: list[tuple[float, float, float, float]] = field(default_factory=list)
    primitives: list[Primitive] = field(default_factory=list)
    kappa: float = 0.0
    curb: float = 0.15
    plots: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    _next_instance: int = 1

    def new_instance(self) -> int:
        self._next_instance += 1
        return self._next_instance - 1

    def on_cross(self, x: np.ndarray | float, margin: float = 0.0) -> np.ndarray | bool:
        if self.cross_x is None:
            return np.zeros_like(x, dtype=bool) if isinstance(x, np.ndarray) else False
        return np.abs(x - self.cross_x) < self.cross_width / 2 + margin

    def ground_class(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """SimClass of the ground at (x, y)."""
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

    def ground_height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height (m) of the ground (road, parking, terrain: all but the primitives) at (x, y), both (M,) (or
        shapes that broadcast together).

        The street's vertical curve 0.5 * kappa * x^2 (0 on the centreline at x = 0), less the road's crown
        (the fall to the gutter); under the sidewalks the gutter's level (their slabs stand on it); behind them
        the plots' ground, rising from its edge height to its level over TERRAIN_RAMP m (smoothstep). Continuous
        but for a step of at most the curb reveal at the sidewalks' back edges, which the slabs cover.
        """
        x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
        half = self.road_width / 2
        back = half + self.sidewalk_width
        crown = min(CROWN_WIDTH, half)
        ay = np.abs(y)
        fall = CROSS_FALL * np.clip(ay - (half - crown), 0.0, crown)          # (M,) m below the centreline
        edge, level = self._plot_heights(x, y < 0)
        s = np.clip((ay - back) / TERRAIN_RAMP, 0.0, 1.0)
        behind = np.where(ay >= back, edge + (level - edge) * s * s * (3 - 2 * s), 0.0)
        return 0.5 * self.kappa * x ** 2 - fall + behind

    def _plot_heights(self, x: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Edge height and level (m over the gutter) of the plots at x, (M,) each; ``right``: y < 0."""
        edge, level = np.zeros(x.shape), np.zeros(x.shape)
        for side, rows in ((-1.0, right), (1.0, ~right)):
            knots = self._plot_knots(side)
            if knots is not None and rows.any():
                kx, ke, kl = knots
                edge[rows], level[rows] = np.interp(x[rows], kx, ke), np.interp(x[rows], kx, kl)
        return edge, level

    def _plot_knots(self, side: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Knots (x ascending, edge, level), (2K,) each, of one side's plots: each plot holds its heights but
        for PLOT_BLEND m at either end, where they blend linearly into the neighbour's. None without plots."""
        kx, ke, kl = [], [], []
        for s, x0, x1, edge, level in self.plots:
            if s == side:
                inset = min(PLOT_BLEND, (x1 - x0) / 4)
                kx += [x0 + inset, x1 - inset]
                ke += [edge, edge]
                kl += [level, level]
        if not kx:
            return None
        order = np.argsort(kx, kind="stable")
        return np.asarray(kx)[order], np.asarray(ke)[order], np.asarray(kl)[order]


def _put(out: Placed, *prims: Primitive, at: tuple[float, float] | None = None) -> None:
    """Queue primitives built on level ground; each stands on the ground at ``at`` (x, y), else under itself."""
    for prim in prims:
        x, y = at if at is not None else (prim.xy if isinstance(prim, Cylinder) else prim.center[:2])
        out.append((float(x), float(y), prim))


def _stand(scene: Scene, out: Placed) -> None:
    """Add the queued primitives to the scene, each lifted by the ground's height at its (x, y)."""
    if not out:
        return
    xy = np.array([(x, y) for x, y, _ in out])                                  # (P, 2)
    for (_, _, prim), dz in zip(out, scene.ground_height(xy[:, 0], xy[:, 1]).tolist()):
        if isinstance(prim, Cylinder):
            prim.z0, prim.z1 = prim.z0 + dz, prim.z1 + dz
        else:
            prim.center = (prim.center[0], prim.center[1], prim.center[2] + dz)
        scene.primitives.append(prim)


def _car(part: Callable[..., None], rng: np.random.Generator) -> None:
    """A car of ``part(dx, dy, z, size, porosity)`` boxes: four wheels to the ground, the body below the
    beltline, a cabin whose windows let most rays through and a roof slab over it."""
    length, width = rng.uniform(3.9, 4.9), rng.uniform(1.7, 1.95)
    wheel, belt, roof = rng.uniform(0.30, 0.35), rng.uniform(0.9, 1.0), rng.uniform(1.42, 1.55)
    axle, track = length / 2 - rng.uniform(0.75, 0.95), width / 2 - WHEEL_WIDTH / 2 - 0.02
    for dx in (-axle, axle):
        for dy in (-track, track):
            part(dx, dy, wheel, (2 * wheel, WHEEL_WIDTH, 2 * wheel))
    clearance = 0.3
    part(0.0, 0.0, (clearance + belt) / 2, (length, width, belt - clearance))
    cabin, top = rng.uniform(0.45, 0.55) * length, roof - ROOF_THICKNESS
    part(-0.08 * length, 0.0, (belt + top) / 2, (cabin, 0.9 * width, top - belt), WINDOW_POROSITY)
    part(-0.08 * length, 0.0, roof - ROOF_THICKNESS / 2, (0.85 * cabin, 0.86 * width, ROOF_THICKNESS))


def _vehicle(scene: Scene, out: Placed, kind: int, x: float, y: float, yaw: float, moving: bool,
             rng: np.random.Generator, base: float = 0.0) -> None:
    """Queue a vehicle of SimClass ``kind`` centred at (x, y), each part on the ground under it; ``base`` (m)
    lifts it onto a sidewalk."""
    inst = scene.new_instance()
    c, s = np.cos(yaw), np.sin(yaw)

    def part(dx: float, dy: float, z: float, size: tuple[float, float, float], porosity: float = 0.0,
             cls: int = kind, instance: int = inst) -> None:
        _put(out, Box((x + c * dx - s * dy, y + s * dx + c * dy, base + z), size, yaw, cls, cls, instance,
                      moving, porosity))

    if kind == C.CAR:
        _car(part, rng)
    elif kind == C.TRUCK:
        length = rng.uniform(6, 9)
        part(length / 2 - 1.1, 0.0, 1.6, (2.2, 2.4, 2.8))
        part(-1.1, 0.0, 2.1, (length - 2.2, 2.5, 2.8))
    elif kind == C.BUS:
        part(0.0, 0.0, 1.85, (rng.uniform(10, 13), 2.55, 3.1))
    elif kind == C.TRAILER:
        part(5.8, 0.0, 1.6, (2.4, 2.4, 2.8), cls=C.TRUCK, instance=scene.new_instance())
        part(0.0, 0.0, 2.3, (rng.uniform(8, 12), 2.5, 3.0))
    elif kind == C.CONSTRUCTION_VEHICLE:
        part(0.0, 0.0, 1.0, (3.5, 2.5, 1.6))
        part(-0.5, 0.0, 2.5, (1.6, 1.6, 1.4))
        part(3.0, 0.0, 2.4, (3.5, 0.4, 0.5))
    elif kind in (C.MOTORCYCLE, C.BICYCLE):
        height = 1.1 if kind == C.MOTORCYCLE else 0.95
        part(0.0, 0.0, height / 2 + 0.1, (1.8, 0.35 if kind == C.BICYCLE else 0.7, height))
        if moving:
            rider = C.MOTORCYCLIST if kind == C.MOTORCYCLE else C.BICYCLIST
            _put(out, Ellipsoid((x, y, base + height + 0.45), (0.3, 0.25, 0.45), rider, scene.new_instance(),
                                moving))


def _pedestrian(scene: Scene, out: Placed, x: float, y: float, moving: bool, rng: np.random.Generator,
                base: float = 0.0) -> None:
    half = rng.uniform(0.6, 0.92)
    _put(out, Ellipsoid((x, y, base + half), (0.28, 0.22, half), C.PEDESTRIAN, scene.new_instance(), moving))


def _lobes(x: float, y: float, z0: float, width: float, height: float, porosity: float,
           rng: np.random.Generator) -> list[Ellipsoid]:
    """2-4 overlapping porous lobes of random offsets and sizes filling a foliage mass ``width`` m across and
    ``height`` m tall over (x, y) whose bottom is at z0."""
    count = int(rng.integers(2, 5))
    half = np.array([width / 2, width / 2, height / 2])
    radii = half * rng.uniform((0.55, 0.55, 0.6), (0.8, 0.8, 0.85), (count, 3))       # (n, 3) m
    centers = np.array([x, y, z0 + height / 2]) + rng.uniform(-1, 1, (count, 3)) * (half - radii)
    return [Ellipsoid(tuple(c), tuple(r), C.VEGETATION, porosity=porosity)
            for c, r in zip(centers.tolist(), radii.tolist())]


def _tree(out: Placed, x: float, y: float, rng: np.random.Generator, base: float = 0.0,
          crown: tuple[float, float] = (2.0, 4.0)) -> None:
    """Queue a tree at (x, y): a trunk clear to 2.2-4.5 m under a crown of lobes ``crown`` m across;
    ``base`` (m) lifts it onto a sidewalk."""
    clear, width = rng.uniform(2.2, 4.5), rng.uniform(*crown)
    height = width * rng.uniform(0.9, 1.3)
    _put(out, Cylinder((x, y), rng.uniform(0.1, 0.25), base, base + clear + height / 2, C.TRUNK))
    _put(out, *_lobes(x, y, base + clear, width, height, CROWN_POROSITY, rng), at=(x, y))


def _shrub(out: Placed, x: float, y: float, width: float, height: float, rng: np.random.Generator) -> None:
    """Queue a bush of lobes ``width`` m across and ``height`` m tall at (x, y), its base sunk into the ground."""
    _put(out, *_lobes(x, y, -0.1 * height, width, height, SHRUB_POROSITY, rng), at=(x, y))


def _bed(out: Placed, x: float, y: float, rng: np.random.Generator) -> None:
    """Queue a bed of shrubs, perennials or ivy: one porous lobe 0.3-0.9 m high and 1-3 m across."""
    height, (a, b) = rng.uniform(0.3, 0.9), rng.uniform(1.0, 3.0, 2)
    _put(out, Ellipsoid((x, y, 0.35 * height), (a / 2, b / 2, 0.65 * height), C.VEGETATION,
                        porosity=SHRUB_POROSITY))


def _hedge(out: Placed, x0: float, x1: float, face: float, side: float, height: float, thickness: float,
           rng: np.random.Generator) -> None:
    """Queue a hedge along x0..x1 whose face stands at |y| = ``face``: a row of dense overlapping lobes about
    ``height`` m tall (each within 15 %)."""
    count = max(1, int(np.ceil((x1 - x0) / HEDGE_SPACING)))
    step, yc = (x1 - x0) / count, side * (face + thickness / 2)
    for k in range(count):
        top = height * rng.uniform(0.85, 1.15)
        rz = top / 1.8                                      # centred at 0.8 rz: the lobe meets the ground wide
        _put(out, Ellipsoid((x0 + (k + 0.5) * step, yc, top - rz), (0.75 * step, thickness / 2, rz),
                            C.VEGETATION, porosity=HEDGE_POROSITY))


def _fence(out: Placed, x0: float, x1: float, face: float, side: float, height: float) -> None:
    _put(out, Box((0.5 * (x0 + x1), side * (face + 0.05), height / 2), (x1 - x0, 0.06, height), 0.0, C.FENCE,
                  C.FENCE))


def _street_furniture(scene: Scene, out: Placed, side: float, traffic: float, rng: np.random.Generator) -> None:
    """Poles with signs and lights, trees, pedestrians, parked bicycles and small objects on a sidewalk."""
    w, sw, top = scene.road_width / 2, scene.sidewalk_width, scene.curb
    x = -HALF_LENGTH + rng.uniform(0, 10)
    while x < HALF_LENGTH:
        if not scene.on_cross(x, sw + 1):
            y = side * (w + rng.uniform(0.3, 0.7))
            item = rng.choice(["lamp", "sign", "sign", "tree", "tree", "object", "none"])  # signs: 1/3 of items
            if item == "lamp":
                _put(out, Cylinder((x, y), 0.1, top, top + rng.uniform(6, 9), C.POLE))
            elif item == "sign":
                width, height = rng.uniform(0.6, 1.0, 2)
                _put(out, Cylinder((x, y), 0.05, top, top + 2.0 + height, C.POLE),
                     Box((x, y, top + 2.0 + height / 2), (0.05, width, height), 0.0, C.TRAFFIC_SIGN,
                         C.TRAFFIC_SIGN))
            elif item == "tree":
                _tree(out, x, side * (w + sw - rng.uniform(0.6, 1.2)), rng, base=top)
            elif item == "object":
                _put(out, Box((x, y, top + 0.6), (0.6, 0.6, 1.2), 0.0, C.OTHER_OBJECT, C.OTHER_OBJECT))
        x += rng.uniform(6, 16)
    for _ in range(rng.poisson(4 * traffic)):
        px = rng.uniform(-60, 60)
        if not scene.on_cross(px, 1):
            py = side * (w + rng.uniform(0.5, sw - 0.3))
            _pedestrian(scene, out, px, py, bool(rng.random() < 0.6), rng, base=top)
    for _ in range(rng.poisson(1.0)):
        px = rng.uniform(-40, 40)
        if not scene.on_cross(px, sw):
            _vehicle(scene, out, C.BICYCLE if rng.random() < 0.6 else C.MOTORCYCLE, px, side * (w + sw - 0.8),
                     np.pi / 2 + rng.normal(0, 0.2), False, rng, base=top)


def _front_garden(out: Placed, x0: float, x1: float, face: float, side: float, setback: float,
                  vegetation: float, rng: np.random.Generator) -> None:
    """A building's front garden, ``setback`` m deep behind the property line at |y| = ``face``: a 0.6-1.4 m
    hedge on the line (else a low fence or nothing) and shrubs."""
    thickness = rng.uniform(0.5, 0.8)
    if rng.random() < 0.5 + 0.5 * vegetation:
        _hedge(out, x0, x1, face, side, rng.uniform(0.6, 1.4), thickness, rng)
    elif rng.random() < 0.3:
        _fence(out, x0, x1, face, side, rng.uniform(0.8, 1.2))
    for _ in range(rng.poisson((0.3 + vegetation) * (x1 - x0) / 4)):
        width = rng.uniform(0.8, min(2.5, setback))
        inner = setback - width / 2                         # behind the hedge where the garden is deep enough
        depth = rng.uniform(min(thickness + width / 2, inner), inner)
        _shrub(out, rng.uniform(x0, x1), side * (face + depth), width, rng.uniform(0.6, 1.8), rng)


def _green_plot(out: Placed, x0: float, x1: float, face: float, side: float, vegetation: float,
                rng: np.random.Generator) -> None:
    """A planted plot behind the property line at |y| = ``face``: a hedge flush with the sidewalk or a fence,
    beds of shrubs, perennials and ivy (about one per metre of frontage), trees and bushes."""
    if rng.random() < vegetation:
        _hedge(out, x0, x1, face, side, rng.uniform(1.0, 2.8), rng.uniform(0.8, 1.6), rng)
    elif rng.random() < 0.3:
        _fence(out, x0, x1, face, side, 1.4)
    for _ in range(rng.poisson((0.4 + 0.6 * vegetation) * (x1 - x0))):
        _bed(out, rng.uniform(x0, x1), side * (face + 0.8 + 14 * rng.uniform() ** 2), rng)  # denser in front
    for _ in range(rng.poisson(2 * vegetation + 1)):
        _tree(out, rng.uniform(x0, x1), side * (face + rng.uniform(2, 15)), rng, crown=(3.0, 7.0))
    for _ in range(rng.poisson(4 * vegetation)):
        _shrub(out, rng.uniform(x0, x1), side * (face + rng.uniform(1, 12)), rng.uniform(1.0, 3.0),
               rng.uniform(0.8, 2.2), rng)


def _frontage(scene: Scene, out: Placed, side: float, vegetation: float, rng: np.random.Generator) -> None:
    """Plots behind one sidewalk (buildings with front gardens, parking lots, planted plots; each with a ground
    level of its own), shrubs in the gaps between them, the back gardens and the far row of buildings."""
    face = scene.road_width / 2 + scene.sidewalk_width      # |y| of the property line
    cross = (np.inf, np.inf)
    if scene.cross_x is not None:  # the cross street and its corner sidewalks lie at the gutter's level
        reach = scene.cross_width / 2 + scene.sidewalk_width + PLOT_BLEND
        cross = (scene.cross_x - reach, scene.cross_x + reach)
        scene.plots.append((side, *cross, 0.0, 0.0))
    x = -HALF_LENGTH
    while x < HALF_LENGTH:
        x0, x1 = x, min(x + rng.uniform(10, 35), HALF_LENGTH)
        x = x1 + rng.uniform(0.5, 4)
        if x1 > cross[0] and x0 < cross[1]:  # a plot reaching the cross street ends at its corner
            x1, x = cross
            if x1 - x0 < 3:
                continue
        width = rng.uniform(1.0, 2.5)
        if x - x1 <= 4 and x < HALF_LENGTH and rng.random() < 0.8:  # a shrub in the gap (not the cross street)
            _shrub(out, 0.5 * (x1 + x), side * (face + width / 2), width, rng.uniform(0.8, 2.0), rng)
        kind = rng.choice(["building", "parking", "green"], p=[0.5 - vegetation * 0.25, 0.2,
                                                                0.3 + vegetation * 0.25])
        level = scene.curb + float(np.clip(rng.normal(*TERRAIN_LEVEL), *TERRAIN_CLIP))
        if kind == "building":
            setback = 0.0 if rng.random() < 0.3 else rng.uniform(1.5, 6)
            depth, height = rng.uniform(8, 20), rng.uniform(4, 25)
            _put(out, Box((0.5 * (x0 + x1), side * (face + setback + depth / 2), (height - FOUNDATION) / 2),
                          (x1 - x0, depth, height + FOUNDATION), 0.0, C.BUILDING, C.BUILDING))
            if setback > 0:
                _front_garden(out, x0, x1, face, side, setback, vegetation, rng)
            scene.plots.append((side, x0, x1, scene.curb, level))
        elif kind == "parking":  # at the road's level, a curb down from the sidewalk
            ya, yb = sorted((side * face, side * (face + 16)))
            scene.parking.append((x0, x1, ya, yb))
            scene.plots.append((side, x0, x1, 0.0, 0.0))
            for px in np.arange(x0 + 1.5, x1 - 1.5, 2.8):
                if rng.random() < 0.5:
                    _vehicle(scene, out, C.CAR, px, side * (face + 3.5), np.pi / 2, False, rng)
        else:
            _green_plot(out, x0, x1, face, side, vegetation, rng)
            scene.plots.append((side, x0, x1, scene.curb, level))
    _back_gardens(out, face, side, vegetation, rng)


def _back_gardens(out: Placed, face: float, side: float, vegetation: float, rng: np.random.Generator) -> None:
    """The far row of buildings and, between it and the frontage plots, back gardens with trees and shrubs."""
    far = face + rng.uniform(25, 40)                        # |y| of the far row's fronts
    for xc in np.arange(-HALF_LENGTH, HALF_LENGTH, 30.0):
        if rng.random() < 0.6:
            height = rng.uniform(8, 30)
            _put(out, Box((xc + 12, side * (far + 8), (height - FOUNDATION) / 2),
                          (rng.uniform(12, 26), 16, height + FOUNDATION), 0.0, C.BUILDING, C.BUILDING))
        for _ in range(rng.poisson(1 + 2 * vegetation)):
            _tree(out, xc + rng.uniform(0, 30), side * rng.uniform(face + 16, far - 2), rng, crown=(3.0, 7.0))
        for _ in range(rng.poisson(2 * vegetation)):
            _shrub(out, xc + rng.uniform(0, 30), side * rng.uniform(face + 16, far - 1), rng.uniform(1.0, 3.0),
                   rng.uniform(0.8, 2.2), rng)


def _traffic(scene: Scene, out: Placed, traffic: float, rng: np.random.Generator) -> None:
    """Parked vehicles at both curbs, moving traffic in the lanes, an optional construction zone."""
    w = scene.road_width / 2
    for side in (-1.0, 1.0):
        x = -HALF_LENGTH + rng.uniform(0, 8)
        while x < HALF_LENGTH:
            if not scene.on_cross(x, 6) and abs(x) > 7 and rng.random() < KERB_PARKING:
                heavy = rng.random() < HEAVY_PARKED * traffic
                kind = rng.choice([C.TRUCK, C.TRAILER]) if heavy else C.CAR
                _vehicle(scene, out, kind, x, side * (w - 1.1), 0.0 if side < 0 else np.pi, False, rng)
                x += 14 if kind == C.TRAILER else 6
            x += rng.uniform(1, 6)
    kinds = [C.CAR] * 10 + [C.TRUCK, C.BUS, C.BUS, C.TRAILER, C.MOTORCYCLE, C.BICYCLE]
    for _ in range(rng.poisson(5 * traffic)):
        lane = rng.choice([-1.0, 1.0])
        x = rng.uniform(-70, 70)
        if abs(x) < 12 or scene.on_cross(x, 3):
            continue
        _vehicle(scene, out, rng.choice(kinds), x, lane * w / 2 + rng.normal(0, 0.2),
                 0.0 if lane < 0 else np.pi, True, rng)
    for _ in range(rng.poisson(1.5 * traffic)):
        lane = rng.choice([-1.0, 1.0])
        x = rng.uniform(-50, 50)
        if abs(x) > 8 and not scene.on_cross(x, 3):
            _vehicle(scene, out, rng.choice([C.BICYCLE, C.MOTORCYCLE]), x, lane * (w - 1.6),
                     0.0 if lane < 0 else np.pi, True, rng)
    if scene.cross_x is not None:
        for _ in range(rng.poisson(2 * traffic)):
            y = rng.uniform(w + 8, 60) * rng.choice([-1, 1])
            _vehicle(scene, out, C.CAR, scene.cross_x + rng.choice([-1, 1]) * scene.cross_width / 4, y,
                     np.pi / 2, True, rng)
        for sx in (-1, 1):
            for sy in (-1, 1):
                px, py = scene.cross_x + sx * (scene.cross_width / 2 + 0.5), sy * (w + 0.5)
                _put(out, Cylinder((px, py), 0.12, scene.curb, 5.5, C.POLE),
                     Box((px, py - sy * 0.6, 5.0), (0.35, 0.35, 0.9), 0.0, C.TRAFFIC_LIGHT, C.TRAFFIC_LIGHT),
                     at=(px, py))
    if rng.random() < 0.5 * traffic:
        _construction_zone(scene, out, rng)


def _construction_zone(scene: Scene, out: Placed, rng: np.random.Generator) -> None:
    """Barriers, cones, a construction vehicle and workers closing part of a lane."""
    w = scene.road_width / 2
    xs = rng.uniform(15, 45) * rng.choice([-1, 1])
    side = rng.choice([-1.0, 1.0])
    for k in range(int(rng.integers(3, 7))):
        _put(out, Box((xs + 2.2 * k, side * (w - 2.6), 0.5), (2.0, 0.5, 1.0), 0.0, C.BARRIER, C.BARRIER))
    for k in range(int(rng.integers(3, 8))):
        _put(out, Cylinder((xs - 3 - 2.0 * k, side * (w - 2.2 - 0.1 * k)), 0.17, 0.0, 0.7, C.TRAFFIC_CONE))
    _vehicle(scene, out, C.CONSTRUCTION_VEHICLE, xs + 4, side * (w - 1.3), 0.0, False, rng)
    for k in range(int(rng.integers(1, 3))):
        _pedestrian(scene, out, xs + 1.5 * k, side * (w - 3.2), False, rng)


def _slab(out: Placed, x0: float, x1: float, y: float, width: float, curb: float, top: int) -> None:
    """Queue a curbed slab along x0..x1 centred at y, ``width`` m across, its top ``curb`` m over the ground,
    in PIECE_LENGTH pieces that each stand on the ground at their centre (so the slab follows the curve)."""
    edges = np.append(np.arange(x0, x1, PIECE_LENGTH), x1)
    for a, b in zip(edges[:-1], edges[1:]):
        if b - a > 1e-6:
            _put(out, Box((0.5 * (a + b), y, (curb - SLAB_DEPTH) / 2), (b - a, width, curb + SLAB_DEPTH), 0.0,
                          top, C.CURB))


def _sidewalks_and_islands(scene: Scene, out: Placed, rng: np.random.Generator) -> None:
    w, sw = scene.road_width / 2, scene.sidewalk_width
    gaps = [(-HALF_LENGTH, HALF_LENGTH)]
    if scene.cross_x is not None:
        half = scene.cross_width / 2
        gaps = [(-HALF_LENGTH, scene.cross_x - half), (scene.cross_x + half, HALF_LENGTH)]
        for sx in (-1.0, 1.0):  # the cross street's sidewalks: level along y, one slab each
            for sy in (-1.0, 1.0):
                xc, yc = scene.cross_x + sx * (half + sw / 2), sy * (w + (60 - w) / 2)
                _put(out, Box((xc, yc, (scene.curb - SLAB_DEPTH) / 2), (sw, 60 - w, scene.curb + SLAB_DEPTH),
                              0.0, C.SIDEWALK, C.CURB))
    for side in (-1.0, 1.0):
        for x0, x1 in gaps:
            if x1 - x0 > 1:
                _slab(out, x0, x1, side * (w + sw / 2), sw, scene.curb, C.SIDEWALK)
    if rng.random() < 0.5:
        xc, length = rng.uniform(15, 50) * rng.choice([-1, 1]), rng.uniform(10, 30)
        _slab(out, xc - length / 2, xc + length / 2, 0.0, 1.4, scene.curb, C.OTHER_GROUND)


def make_scene(rng: np.random.Generator, street_width: tuple[float, float] = (7.0, 12.0),
               vegetation: float = 0.5, traffic: float = 1.0) -> Scene:
    """Draw one street scene; ``street_width`` bounds the road width, ``vegetation`` in [0, 1]; ``traffic``
    scales the moving vehicles, cyclists and pedestrians, the heavy parked vehicles and the chance of a
    construction zone (1: a busy city street)."""
    road = float(rng.uniform(*street_width))
    cross = float(rng.uniform(-40, 40)) if rng.random() < 0.4 else None
    if cross is not None and abs(cross) < 10:
        cross += 20 * np.sign(cross or 1)
    scene = Scene(road_width=road, sidewalk_width=float(rng.uniform(2, 4)), cross_x=cross,
                  cross_width=float(rng.uniform(7, 12)), ego_y=-road / 4 + float(rng.normal(0, 0.3)),
                  kappa=float(rng.normal(0, CURVATURE_SD)), curb=float(rng.uniform(*CURB_REVEAL)))
    out: Placed = []
    _sidewalks_and_islands(scene, out, rng)
    for side in (-1.0, 1.0):
        _frontage(scene, out, side, vegetation, rng)
        _street_furniture(scene, out, side, traffic, rng)
    _traffic(scene, out, traffic, rng)
    _stand(scene, out)
    return scene
