import numpy as np

from pointcept_distill.data import TRANSFORMS
from pointcept_distill.data.transforms import fnv_hash_vec, ravel_hash_vec


def cloud(n: int = 2000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"coord": rng.uniform(0, 1, (n, 3)).astype(np.float32), "segment": rng.integers(0, 3, n),
            "strength": rng.uniform(0, 1, (n, 1)).astype(np.float32)}


def voxels(coord: np.ndarray, size: float) -> np.ndarray:
    g = np.floor(coord / size).astype(np.int64)
    return g - g.min(0)


def test_fnv_hash_matches_scalar_definition():
    row = np.array([[3, 7, 11]])
    h = 14695981039346656037
    for v in row[0]:
        h = (h * 1099511628211) % 2 ** 64
        h ^= int(v)
    assert int(fnv_hash_vec(row)[0]) == h


def test_ravel_hash_is_injective_on_grid():
    g = np.stack(np.meshgrid(np.arange(4), np.arange(5), np.arange(3), indexing="ij"), -1).reshape(-1, 3)
    assert len(np.unique(ravel_hash_vec(g))) == len(g)


def test_train_mode_one_point_per_voxel():
    data = cloud()
    t = TRANSFORMS.build(dict(type="GridSample", grid_size=0.1, mode="train", return_grid_coord=True,
                              return_inverse=True))
    out = t(data, np.random.default_rng(0))
    n_vox = len(np.unique(voxels(data["coord"], 0.1), axis=0))
    assert len(out["coord"]) == n_vox == len(out["segment"]) == len(out["strength"])
    assert len(np.unique(out["grid_coord"], axis=0)) == n_vox
    assert out["grid_coord"].dtype == np.int64 and out["grid_coord"].min() == 0
    # inverse maps each input point to the kept point of its voxel
    np.testing.assert_array_equal(out["grid_coord"][out["inverse"]], voxels(data["coord"], 0.1))
    np.testing.assert_array_equal(out["grid_coord"], np.floor(out["coord"] / 0.1).astype(int)
                                  - np.floor(data["coord"] / 0.1).astype(int).min(0))


def test_train_mode_depends_on_generator_only():
    data = cloud()
    t = TRANSFORMS.build(dict(type="GridSample", grid_size=0.1, hash_type="ravel", mode="train"))
    a, b = t(data, np.random.default_rng(1)), t(data, np.random.default_rng(1))
    np.testing.assert_array_equal(a["coord"], b["coord"])
    assert not np.array_equal(a["coord"], t(data, np.random.default_rng(2))["coord"])


def test_test_mode_parts_cover_every_point_and_every_voxel():
    data = cloud()
    t = TRANSFORMS.build(dict(type="GridSample", grid_size=0.2, mode="test", return_grid_coord=True))
    parts = t(data)
    grid = voxels(data["coord"], 0.2)
    _, counts = np.unique(grid, axis=0, return_counts=True)
    assert isinstance(parts, list) and len(parts) == counts.max()
    seen = np.zeros(len(data["coord"]), bool)
    for part in parts:
        assert len(part["index"]) == len(counts)
        np.testing.assert_array_equal(part["coord"], data["coord"][part["index"]])
        np.testing.assert_array_equal(part["grid_coord"], grid[part["index"]])
        seen[part["index"]] = True
    assert seen.all()
