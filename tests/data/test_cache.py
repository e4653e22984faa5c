"""The shared-memory cache: one decoded copy per machine, shared by processes."""
import multiprocessing as mp
import shutil

import numpy as np
import pytest

from pointcept_distill.data import build_dataset, clear_cache


def _read_in_child(root: str, queue) -> None:
    ds = build_dataset(dict(type="SemanticKITTIDataset", data_root=root, split="val", cache=True))
    sample = ds[0]
    queue.put((sample["coord"].sum(dtype=np.float64), sample["segment"].tolist(),
               sample["coord"].flags.writeable))


@pytest.fixture
def kitti_copy(sim_root, tmp_path):
    root = tmp_path / "kitti"
    shutil.copytree(sim_root("semantic_kitti"), root)
    yield root
    clear_cache(str(root))


def test_cache_hit_is_read_only_and_equal(kitti_copy):
    cfg = dict(type="SemanticKITTIDataset", data_root=str(kitti_copy), split="val")
    plain = build_dataset(cfg)[0]
    first = build_dataset({**cfg, "cache": True})[0]
    second = build_dataset({**cfg, "cache": True})[0]
    np.testing.assert_array_equal(first["coord"], plain["coord"])
    np.testing.assert_array_equal(second["segment"], plain["segment"])
    assert not second["coord"].flags.writeable
    assert clear_cache(str(kitti_copy)) >= 4  # coord, strength, segment and the ready marker


def test_two_spawned_processes_share_one_cached_sample(kitti_copy):
    cfg = dict(type="SemanticKITTIDataset", data_root=str(kitti_copy), split="val", cache=True)
    expected = build_dataset({k: v for k, v in cfg.items() if k != "cache"})[0]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    first = ctx.Process(target=_read_in_child, args=(str(kitti_copy), queue))
    first.start()
    first_result = queue.get(timeout=120)
    first.join(timeout=60)
    # with the files corrupted, only the shared copy the first process published can serve the sample
    for path in (kitti_copy / "dataset" / "sequences" / "08").rglob("000000.*"):
        path.write_bytes(b"bad")
    with pytest.raises(ValueError, match="not a whole number"):
        build_dataset({k: v for k, v in cfg.items() if k != "cache"})[0]
    second = ctx.Process(target=_read_in_child, args=(str(kitti_copy), queue))
    second.start()
    second_result = queue.get(timeout=120)
    second.join(timeout=60)
    assert first.exitcode == 0 and second.exitcode == 0
    assert first_result[0] == second_result[0] == expected["coord"].sum(dtype=np.float64)
    assert second_result[1] == expected["segment"].tolist()
    assert first_result[2] is False and second_result[2] is False
