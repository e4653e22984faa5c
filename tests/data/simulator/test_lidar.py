from dataclasses import replace

import numpy as np
import pytest

from pointcept_distill.data.simulator.classes import SimClass as C
from pointcept_distill.data.simulator.lidar import Mount, scan_scene
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


def _lowest_elevation(scan, azimuth_deg: float) -> float:
    """Lowest elevation (degrees) of the returns within 10 m, 15 degrees either side of an azimuth (sensor frame)."""
    rel = (scan.points - scan.origin) @ scan.rotation                  # the sensor's frame
    az = np.degrees(np.arctan2(rel[:, 1], rel[:, 0]))
    near = (np.abs((az - azimuth_deg + 180) % 360 - 180) < 15) & (np.hypot(rel[:, 0], rel[:, 1]) < 10)
    return float(np.degrees(np.arctan2(rel[near, 2], np.hypot(rel[near, 0], rel[near, 1]))).min())


def test_the_carrying_cars_body_stops_the_low_beams_ahead_and_behind():
    # SemanticKITTI's real frames: no return below about -20.7 degrees ahead and -18.5 behind, the sides open to
    # the lowest beam (-24.8)
    prof = get_profile("semantic_kitti")
    scan = scan_scene(empty_scene(), prof, np.random.default_rng(0), scale=0.5)
    ahead, behind, left = (_lowest_elevation(scan, a) for a in (0, 180, 90))
    assert -21.5 < ahead < -19.5 and -19.5 < behind < -17.5 and left < -24
    bodiless = scan_scene(empty_scene(), replace(prof, ego_body=()), np.random.default_rng(0), scale=0.5)
    assert _lowest_elevation(bodiless, 0) < -24 and _lowest_elevation(bodiless, 180) < -24


def test_echo_strength_sets_the_range_and_the_zero_returns():
    # an asphalt road (reflectivity 0.08) at grazing incidence fades long before the HDL-64E's 120 m; its weak
    # echoes are written as remission 0 (HDL-64E) but keep a share of their intensity (HDL-32E)
    kitti = get_profile("semantic_kitti")
    scan = scan_scene(empty_scene(), kitti, np.random.default_rng(2), scale=0.5)
    road = scan.cls == C.ROAD
    reach = np.linalg.norm(scan.points[road] - scan.origin, axis=1)
    assert np.percentile(reach, 99) < 2 / 3 * kitti.max_range
    zero = scan.intensity[road] == 0
    assert 0.03 < zero.mean() < 0.5
    far_zero = zero[reach > 30].mean()                 # grazing, far: weaker echoes
    assert far_zero > 2 * zero[reach < 10].mean()
    nus = scan_scene(empty_scene(), get_profile("nuscenes"), np.random.default_rng(2), scale=0.5)
    returned = nus.cls != C.NONE
    assert (nus.intensity[returned] > 0).all()


def test_a_sloped_ground_is_followed_and_a_tilted_sensor_sees_it_tilted():
    class Sloped(Scene):
        def ground_height(self, x, y):
            return 0.05 * np.asarray(x, float)         # 5 % uphill along x

    scene = Sloped(road_width=200.0, sidewalk_width=2.0, cross_x=None, cross_width=8.0, ego_y=0.0)
    prof = replace(get_profile("waymo"), ego_body=(), range_noise=0.0)
    scan = scan_scene(scene, prof, np.random.default_rng(0), scale=0.3)
    road = scan.points[scan.cls == C.ROAD]
    # roughness 1 cm, a few sd, moved along grazing rays (the slope adds to a ray's depth change)
    assert np.abs(road[:, 2] - 0.05 * road[:, 0]).max() < 0.1
    assert scan.origin[2] == pytest.approx(prof.height) and scan.ground_z == 0
    # in the sensor's frame a level road ahead at 20 m lies at minus the height; pitched down by 1 degree,
    # 20 * sin(1 degree) = 0.35 m higher, and the lift raises the sensor
    pitch = np.deg2rad(1.0)
    for mount, want in ((Mount(), -prof.height), (Mount(lift=0.05, pitch=pitch),
                                                  -(prof.height + 0.05) * np.cos(pitch) + 20 * np.sin(pitch))):
        tilted = scan_scene(empty_scene(), prof, np.random.default_rng(0), scale=0.3, mount=mount)
        assert tilted.origin[2] == pytest.approx(prof.height + mount.lift)
        rel = (tilted.points[tilted.cls == C.ROAD] - tilted.origin) @ tilted.rotation
        ahead = (np.abs(rel[:, 0] - 20) < 1) & (np.abs(rel[:, 1]) < 2)
        assert ahead.sum() > 5 and np.median(rel[ahead, 2]) == pytest.approx(want, abs=0.05)


def test_semantic_kitti_leaves_returns_beyond_50_m_unlabelled(tmp_path):
    from pointcept_distill.data.simulator.writers import raw_labels
    scene = empty_scene()
    scene.primitives.append(Box((70, 0, 5.0), (1, 60, 10), 0.0, C.BUILDING, C.BUILDING))
    prof = get_profile("semantic_kitti")
    scan = scan_scene(scene, prof, np.random.default_rng(0), scale=0.3)
    dist = np.linalg.norm(scan.points - scan.origin, axis=1)
    raw = raw_labels(prof, scan)
    assert (dist > 50).sum() > 50 and (raw[dist > 50] == 0).all()
    assert (raw[dist <= 50] != 0).mean() > 0.99     # outliers aside


def test_the_parts_of_one_object_share_its_reflectivity_factor():
    """A two-box object (one instance, e.g. a car's body and cabin) gets one log-normal paint factor: its parts'
    median intensities agree to the per-hit noise (sigma 0.45 over ~100 hits each); with a factor per part
    (sigma 0.5 each) they would differ by 0.7 in log on average, and all seeds within 0.25 has chance < 1e-2."""
    gaps = []
    for seed in range(5):
        scene = empty_scene()
        scene.primitives += [Box((8, -1.0, 1.0), (0.5, 2, 2), 0.0, C.PEDESTRIAN, C.PEDESTRIAN, 1),
                             Box((8, 1.0, 1.0), (0.5, 2, 2), 0.0, C.PEDESTRIAN, C.PEDESTRIAN, 1)]
        scan = scan_scene(scene, get_profile("semantic_kitti"), np.random.default_rng(seed), scale=0.5)
        hit = (scan.cls == C.PEDESTRIAN) & (scan.intensity > 0)
        left, right = hit & (scan.points[:, 1] > 0.05), hit & (scan.points[:, 1] < -0.05)
        assert left.sum() > 50 and right.sum() > 50
        gaps.append(abs(np.median(np.log(scan.intensity[left])) - np.median(np.log(scan.intensity[right]))))
    assert max(gaps) < 0.25, gaps
