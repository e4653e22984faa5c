import numpy as np

from pointcept_distill.data.simulator.primitives import Box, Cylinder, Ellipsoid

O = np.zeros(3)


def rays(*dirs):
    d = np.asarray(dirs, float)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def test_box_distance_face_class_and_miss():
    box = Box((10, 0, 0), (2, 2, 2), 0.0, top=1, side=2)
    t, cls, cos = box.hit(O, rays([1, 0, 0], [0, 1, 0], [1, 0.05, 0]))
    assert abs(t[0] - 9) < 1e-9 and cls[0] == 2 and abs(cos[0] - 1) < 1e-9
    assert np.isinf(t[1])
    assert 9 < t[2] < 9.1


def test_box_top_face_from_above_and_yaw():
    box = Box((0, 0, -2), (4, 1, 2), np.pi / 2, top=1, side=2)  # long axis along y after the turn
    t, cls, _ = box.hit(O, rays([0, 0, -1], [0, 0.6, -1]))
    assert abs(t[0] - 1) < 1e-9 and cls[0] == 1
    assert np.isfinite(t[1])  # inside the turned box's 4 m extent along y


def test_cylinder_side_and_top():
    cyl = Cylinder((5, 0), 0.5, 0.0, 1.0, cls=7)
    t, cls, _ = cyl.hit(np.array([0, 0, 0.5]), rays([1, 0, 0], [1, 0, 1]))
    assert abs(t[0] - 4.5) < 1e-9 and cls[0] == 7
    assert np.isinf(t[1])
    t, _, cos = cyl.hit(np.array([5, 0, 3]), rays([0, 0, -1]))
    assert abs(t[0] - 2) < 1e-9 and abs(cos[0] - 1) < 1e-9


def test_ellipsoid_distance():
    ell = Ellipsoid((0, 10, 0), (1, 2, 1), cls=3)
    t, cls, _ = ell.hit(O, rays([0, 1, 0], [1, 0, 0]))
    assert abs(t[0] - 8) < 1e-9 and cls[0] == 3 and np.isinf(t[1])
