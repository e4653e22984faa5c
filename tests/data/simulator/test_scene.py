from collections import defaultdict

import numpy as np
import pytest

from pointcept_distill.data.simulator.classes import SimClass as C
from pointcept_distill.data.simulator.primitives import Box, Cylinder, Ellipsoid
from pointcept_distill.data.simulator.scene import (CROSS_FALL, CROWN_WIDTH, CURB_REVEAL, CURVATURE_SD, FOUNDATION,
                                                    TERRAIN_CLIP, TERRAIN_RAMP, WHEEL_WIDTH, WINDOW_POROSITY, Scene,
                                                    _tree, make_scene)


def draw(seed: int, **kwargs) -> Scene:
    return make_scene(np.random.default_rng(seed), **kwargs)


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return [draw(seed) for seed in range(10)]


def height(scene: Scene, x, y) -> np.ndarray:
    return scene.ground_height(np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float)))


def gutter(scene: Scene, x) -> np.ndarray:
    """The ground's height at the road's edge."""
    return height(scene, x, scene.road_width / 2)


def test_ground_follows_the_vertical_curve_along_the_centreline(scenes):
    x = np.linspace(-100, 100, 201)
    for scene in scenes:
        assert height(scene, 0.0, 0.0)[0] == 0.0
        assert np.allclose(height(scene, x, np.zeros_like(x)), 0.5 * scene.kappa * x ** 2, atol=1e-12)
    kappas = np.array([draw(seed).kappa for seed in range(10, 60)] + [s.kappa for s in scenes])
    assert 0.6 * CURVATURE_SD < kappas.std() < 1.5 * CURVATURE_SD and (kappas > 0).any() and (kappas < 0).any()


def test_road_falls_two_percent_to_each_gutter_over_its_outer_three_metres(scenes):
    for scene in scenes:
        w = scene.road_width / 2
        y = np.linspace(0, w, 50)
        expected = -CROSS_FALL * np.clip(y - (w - CROWN_WIDTH), 0, None)
        for side in (-1, 1):
            assert np.allclose(height(scene, np.zeros_like(y), side * y), expected, atol=1e-12)
        assert np.isclose(gutter(scene, 0.0)[0], -0.06)


def test_curb_step_is_the_streets_drawn_reveal_and_the_sidewalk_follows_the_curve(scenes):
    for scene in scenes:
        assert CURB_REVEAL[0] <= scene.curb <= CURB_REVEAL[1]
        w, sw = scene.road_width / 2, scene.sidewalk_width
        pieces = [p for p in scene.primitives if isinstance(p, Box) and p.top == C.SIDEWALK
                  and np.isclose(abs(p.center[1]), w + sw / 2)]
        assert len(pieces) > 150 and max(p.size[0] for p in pieces) <= 2.0 + 1e-9
        xs = np.array([p.center[0] for p in pieces])
        tops = np.array([p.center[2] + p.size[2] / 2 for p in pieces])
        assert np.allclose(tops - gutter(scene, xs), scene.curb, atol=1e-9)
        assert all(p.side == C.CURB for p in pieces)
    assert len({round(s.curb, 3) for s in scenes}) > 5


def test_terrain_ramps_smoothly_to_each_plots_own_level(scenes):
    for scene in scenes:
        face = scene.road_width / 2 + scene.sidewalk_width
        x, y = np.meshgrid(np.arange(-105, 105, 0.1), face + 0.05 + np.arange(0, 40, 0.1), indexing="ij")
        for side in (-1, 1):
            h = height(scene, x.ravel(), side * y.ravel()).reshape(x.shape)
            assert np.abs(np.diff(h, axis=0)).max() < 0.25 and np.abs(np.diff(h, axis=1)).max() < 0.25
        levels = []
        for side, x0, x1, edge, level in scene.plots:
            xm = np.array([0.5 * (x0 + x1)])
            if edge == 0.0:  # parking lots and the cross street lie at the road's level
                behind = side * (face + np.array([0.5, 10.0]))
                assert np.allclose(height(scene, xm, behind), gutter(scene, xm), atol=1e-9)
                continue
            top = gutter(scene, xm) + scene.curb
            assert np.isclose(height(scene, xm, side * face)[0], top[0])
            settled = height(scene, xm, side * (face + TERRAIN_RAMP + 1))[0] - top[0]
            assert TERRAIN_CLIP[0] - 1e-9 <= settled <= TERRAIN_CLIP[1] + 1e-9
            levels.append(settled)
        assert len(levels) > 3 and np.std(levels) > 0.05


def test_ground_height_of_a_bare_scene_is_the_crowned_road():
    scene = Scene(road_width=10.0, sidewalk_width=2.0, cross_x=None, cross_width=8.0, ego_y=0.0)
    h = height(scene, [0.0, 50.0, 0.0, 0.0], [0.0, 0.0, 5.0, 30.0])
    assert np.allclose(h, [0.0, 0.0, -0.06, -0.06])


def test_cars_stand_on_four_wheels_with_windows_under_a_roof(scenes):
    for scene in scenes:
        cars = defaultdict(list)
        for p in scene.primitives:
            if isinstance(p, Box) and p.top == C.CAR:
                cars[p.instance].append(p)
        assert len(cars) > 5
        for parts in cars.values():
            wheels = [p for p in parts if p.size[1] == WHEEL_WIDTH]
            assert len(wheels) == 4
            for wheel in wheels:
                bottom = wheel.center[2] - wheel.size[2] / 2
                assert abs(bottom - height(scene, *wheel.center[:2])[0]) < 0.02
            ground = height(scene, *wheels[0].center[:2])[0]
            top = max(p.center[2] + p.size[2] / 2 for p in parts) - ground
            assert 1.35 < top < 1.65
            cabin = [p for p in parts if p.porosity == WINDOW_POROSITY]
            assert len(cabin) == 1
            roof = max(parts, key=lambda p: p.center[2])
            assert roof.porosity == 0.0 and roof.size[2] < 0.1 and roof.center[2] > cabin[0].center[2]


def test_buildings_trunks_and_poles_stand_on_the_ground(scenes):
    for scene in scenes:
        buildings = [p for p in scene.primitives if isinstance(p, Box) and p.top == C.BUILDING]
        bottoms = np.array([p.center[2] - p.size[2] / 2 for p in buildings])
        under = height(scene, [p.center[0] for p in buildings], [p.center[1] for p in buildings])
        assert np.allclose(under - bottoms, FOUNDATION, atol=1e-9)
        posts = [p for p in scene.primitives if isinstance(p, Cylinder) and p.cls in (C.TRUNK, C.POLE)]
        lift = np.array([p.z0 for p in posts]) - height(scene, [p.xy[0] for p in posts], [p.xy[1] for p in posts])
        on_sidewalk = np.isclose(lift, scene.curb, atol=1e-9)
        assert (np.isclose(lift, 0.0, atol=1e-9) | on_sidewalk).all() and on_sidewalk.any()


def test_a_tree_is_a_clear_trunk_under_a_crown_of_lobes():
    rng = np.random.default_rng(0)
    for _ in range(50):
        out = []
        _tree(out, 0.0, 0.0, rng)
        trunk, lobes = out[0][2], [prim for _, _, prim in out[1:]]
        assert isinstance(trunk, Cylinder) and trunk.cls == C.TRUNK and trunk.z0 == 0.0
        assert 2 <= len(lobes) <= 4 and all(isinstance(p, Ellipsoid) and 0 < p.porosity < 1 for p in lobes)
        assert all(at[:2] == (0.0, 0.0) for at in out)          # the crown stands where its trunk does
        centers, radii = np.array([p.center for p in lobes]), np.array([p.radii for p in lobes])
        assert 2.2 <= (centers[:, 2] - radii[:, 2]).min() < trunk.z1                   # a clear trunk into the crown
        across = (centers[:, :2] + radii[:, :2]).max(0) - (centers[:, :2] - radii[:, :2]).min(0)
        assert 1.0 < across.max() <= 4.0 + 1e-9


def test_foliage_is_lobes_and_every_trunk_carries_a_crown(scenes):
    for scene in scenes:
        assert not [p for p in scene.primitives if isinstance(p, Box) and C.VEGETATION in (p.top, p.side)]
        foliage = [p for p in scene.primitives if isinstance(p, Ellipsoid) and p.cls == C.VEGETATION]
        centers = np.array([p.center for p in foliage])
        trunks = [p for p in scene.primitives if isinstance(p, Cylinder) and p.cls == C.TRUNK]
        assert len(trunks) > 10
        for trunk in trunks:
            crown = (np.hypot(*(centers[:, :2] - trunk.xy).T) < 2.5) & (centers[:, 2] > trunk.z0 + 2.2)
            assert crown.sum() >= 2


def test_same_seed_same_scene():
    a, b, c = draw(3), draw(3), draw(4)
    assert a.primitives == b.primitives and a.plots == b.plots and a.parking == b.parking and a.kappa == b.kappa
    assert a.primitives != c.primitives


def test_traffic_scales_moving_road_users_and_heavy_parked_vehicles():
    def counts(traffic: float) -> np.ndarray:
        total = np.zeros(3)
        for seed in range(20):
            scene = draw(seed, traffic=traffic)
            moving = {p.instance for p in scene.primitives if p.moving and isinstance(p, Box)}
            people = sum(isinstance(p, Ellipsoid) and p.cls == C.PEDESTRIAN for p in scene.primitives)
            heavy = {p.instance for p in scene.primitives
                     if isinstance(p, Box) and p.top in (C.TRUCK, C.TRAILER) and not p.moving}
            total += len(moving), people, len(heavy)
        return total

    busy, quiet = counts(1.0), counts(0.3)
    assert (quiet < 0.6 * busy).all(), (quiet, busy)
