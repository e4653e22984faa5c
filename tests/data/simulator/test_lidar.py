import numpy as np

from pointcept_distill.data.simulator.classes import SimClass as C
from pointcept_distill.data.simulator.lidar import scan_scene
from pointcept_distill.data.simulator.primitives import Box
from pointcept_distill.data.simulator.profiles import get_profile
from pointcept_distill.data.simulator.scene import Scene


def empty_scene() -> Scene:
    return Scene(road_width=200.0, sidewalk_width=2.0, cross_x=None, cross_width=8.0, ego_y=0.0)


def test_nearest_hit_wins_and_occluder_casts_shadow():
    scene = empty_scene()
    scene.primitives += [Box((10, 0, 1.0), (1, 2, 2), 0.0, C.CAR, C.CAR, 1),
                         Box((30, 0, 5.0), (1, 40, 10), 0.0, C.BUILDING, C.BUILDING)]
    scan = scan_scene(scene, get_profile("semantic_kitti"), np.random.default_rng(0), scale=0.5)
    car = scan.points[scan.cls == C.CAR]
    wall = scan.points[scan.cls == C.BUILDING]
    assert len(car) > 20 and len(wall) > 100
    assert np.abs(car[:, 0] - 9.5).max() < 0.1  # the near face only
    # no wall point inside the car's angular shadow (|y/x| < 1/9.5 below the car's top)
    shadow = (np.abs(wall[:, 1] / wall[:, 0]) < 0.9 / 9.5) & (
        (wall[:, 2] - 1.73) / wall[:, 0] < (2.0 - 1.73) / 9.5 - 0.01)
    assert not shadow.any()


def test_ground_density_falls_with_range():
    scan = scan_scene(empty_scene(), get_profile("nuscenes"), np.random.default_rng(0))
    road = scan.points[scan.cls == C.ROAD]
    r = np.hypot(road[:, 0], road[:, 1])
    near = np.sum((r > 5) & (r < 10)) / (np.pi * (10 ** 2 - 5 ** 2))
    far = np.sum((r > 20) & (r < 40)) / (np.pi * (40 ** 2 - 20 ** 2))  # rings at 26 m and 39 m
    assert near > 5 * far > 0


def test_range_limits_respected():
    prof = get_profile("waymo")
    scan = scan_scene(empty_scene(), prof, np.random.default_rng(1), scale=0.3)
    r = np.linalg.norm(scan.points - scan.origin, axis=1)
    assert r.max() <= prof.max_range + 0.1 and r.min() >= prof.min_range - 0.1
