import numpy as np
import pytest

from pointcept_distill.data import TRANSFORMS
from pointcept_distill.data.transforms import Compose


def cloud(n: int = 200, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"coord": rng.uniform(-10, 10, (n, 3)).astype(np.float32),
            "strength": rng.uniform(0, 1, (n, 1)).astype(np.float32),
            "segment": rng.integers(-1, 5, n)}


def build(type_: str, **kw):
    return TRANSFORMS.build(dict(type=type_, **kw))


def test_transforms_return_new_dict_and_leave_input_untouched():
    data = cloud()
    before = data["coord"].copy()
    for t in [build("RandomRotate", p=1), build("RandomScale"), build("RandomFlip", p=1),
              build("RandomJitter"), build("PointClip"), build("CenterShift")]:
        out = t(data, np.random.default_rng(0))
        assert out is not data
        np.testing.assert_array_equal(data["coord"], before)


@pytest.mark.parametrize("type_", ["RandomRotate", "RandomRotateTargetAngle", "RandomScale", "RandomFlip",
                                   "RandomJitter", "PointClip", "CenterShift", "GridSample",
                                   "SphereCrop"])
def test_missing_coord_names_key_and_transform(type_):
    with pytest.raises(KeyError, match=f"{type_}.*'coord'"):
        build(type_)({"strength": np.zeros((3, 1))}, np.random.default_rng(0))


def test_rotate_about_z_keeps_z_and_radius():
    data = cloud()
    out = build("RandomRotate", angle=[0.5, 0.5], center=[0, 0, 0], axis="z", p=1)(data)
    np.testing.assert_allclose(out["coord"][:, 2], data["coord"][:, 2], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out["coord"][:, :2], axis=1),
                               np.linalg.norm(data["coord"][:, :2], axis=1), atol=1e-4)
    # a quarter turn sends x to y
    np.testing.assert_allclose(out["coord"][:, 1], data["coord"][:, 0], atol=1e-4)


def test_rotate_probability_zero_is_identity():
    data = cloud()
    out = build("RandomRotate", p=0)(data, np.random.default_rng(1))
    np.testing.assert_array_equal(out["coord"], data["coord"])


def test_rotate_target_angle_picks_from_list():
    data = cloud()
    out = build("RandomRotateTargetAngle", angle=[1], center=[0, 0, 0], p=1)(data)
    np.testing.assert_allclose(out["coord"][:, :2], -data["coord"][:, :2], atol=1e-4)


def test_flip_p1_negates_x_and_y():
    data = cloud()
    out = build("RandomFlip", p=1)(data, np.random.default_rng(0))
    np.testing.assert_allclose(out["coord"], data["coord"] * [-1, -1, 1])


def test_scale_fixed_range():
    data = cloud()
    out = build("RandomScale", scale=[1.1, 1.1])(data)
    np.testing.assert_allclose(out["coord"], data["coord"] * 1.1, rtol=1e-6)


def test_jitter_is_clipped():
    data = cloud()
    out = build("RandomJitter", sigma=1.0, clip=0.02)(data, np.random.default_rng(0))
    delta = np.abs(out["coord"] - data["coord"])
    assert delta.max() <= 0.02 + 1e-6 and delta.max() > 0.01


def test_point_clip_clamps_without_dropping():
    data = cloud()
    out = build("PointClip", point_cloud_range=(-1, -2, -3, 1, 2, 3))(data)
    assert len(out["coord"]) == len(data["coord"])
    assert out["coord"][:, 0].max() <= 1 and out["coord"][:, 1].min() >= -2


def test_center_shift_centres_xy_and_floors_z():
    out = build("CenterShift", apply_z=True)(cloud())
    lo, hi = out["coord"].min(0), out["coord"].max(0)
    np.testing.assert_allclose((lo[:2] + hi[:2]) / 2, 0, atol=1e-5)
    assert abs(lo[2]) < 1e-5


def test_sphere_crop_keeps_nearest_points():
    data = cloud(500)
    out = build("SphereCrop", point_max=100, mode="center")(data)
    center = data["coord"][250]
    dist = np.linalg.norm(data["coord"] - center, axis=1)
    assert len(out["coord"]) == 100 and len(out["segment"]) == 100
    assert np.linalg.norm(out["coord"] - center, axis=1).max() <= np.sort(dist)[99] + 1e-6


def test_compose_same_generator_seed_same_result():
    pipeline = Compose([dict(type="RandomRotate", p=0.5), dict(type="RandomScale", scale=[0.9, 1.1]),
                        dict(type="RandomFlip"), dict(type="RandomJitter")])
    data = cloud()
    a = pipeline(data, np.random.default_rng(3))["coord"]
    b = pipeline(data, np.random.default_rng(3))["coord"]
    c = pipeline(data, np.random.default_rng(4))["coord"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
