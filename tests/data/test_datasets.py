import os
import re
import shutil

import numpy as np
import pytest
import torch

from pointcept_distill.data import build_dataset, point_collate_fn
from pointcept_distill.data.pipelines import (DATASET_TYPES, data_config, test_cfg, test_transform,
                                              train_transform)

PROFILES = ["nuscenes", "semantic_kitti", "waymo"]


def config(profile: str, root, split: str = "train", **kw) -> dict:
    type_, _, train_split, val_split = DATASET_TYPES[profile]
    return dict(type=type_, data_root=str(root), split=train_split if split == "train" else val_split, **kw)


@pytest.mark.parametrize("profile", PROFILES)
def test_raw_sample_keys_and_dtypes(sim_root, profile):
    ds = build_dataset(config(profile, sim_root(profile)))
    num_classes = len(DATASET_TYPES[profile][1])
    assert len(ds) == 3
    d = ds[0]
    n = len(d["coord"])
    assert d["coord"].dtype == np.float32 and d["coord"].shape == (n, 3)
    assert d["strength"].dtype == np.float32 and d["strength"].shape == (n, 1)
    assert d["segment"].dtype == np.int64 and d["segment"].shape == (n,)
    assert d["segment"].min() >= -1 and d["segment"].max() < num_classes
    assert d["dataset"] == profile and isinstance(d["name"], str)
    assert len(np.unique(d["segment"])) >= 5


@pytest.mark.parametrize("profile", PROFILES)
def test_train_pipeline_gives_model_ready_batch(sim_root, profile):
    ds = build_dataset(config(profile, sim_root(profile), transform=train_transform(profile), seed=0))
    batch = point_collate_fn([ds[0], ds[1]], mix_prob=0)
    n = batch["coord"].shape[0]
    assert batch["grid_coord"].shape == (n, 3) and batch["grid_coord"].dtype == torch.int64
    assert batch["feat"].shape == (n, 4) and batch["feat"].dtype == torch.float32
    assert batch["segment"].shape == (n,) and batch["segment"].dtype == torch.int64
    assert batch["offset"].dtype == torch.int64 and batch["offset"].shape == (2,)
    assert int(batch["offset"][-1]) == n
    # feat = [augmented coord, strength]; grid_coord is the 5 cm voxel of coord, from 0 per sample
    torch.testing.assert_close(batch["feat"][:, :3], batch["coord"])
    first = batch["grid_coord"][: int(batch["offset"][0])]
    assert first.min() == 0 and len(torch.unique(first, dim=0)) == len(first)


@pytest.mark.parametrize("profile", PROFILES)
def test_val_and_test_mode(sim_root, profile):
    cfg = data_config(profile, str(sim_root(profile)))
    val = build_dataset(cfg["val"])[0]
    assert val["inverse"].shape == val["origin_segment"].shape
    assert int(val["inverse"].max()) == len(val["segment"]) - 1
    # a voxel keeps one point's label, so only points in mixed-label voxels disagree
    agree = (val["segment"][val["inverse"]] == val["origin_segment"]).float().mean()
    assert 0.97 < agree <= 1
    test = build_dataset(cfg["test"])
    result = test[0]
    views = len(cfg["test"]["test_cfg"]["aug_transform"])
    assert len(result["fragment_list"]) >= views
    assert {"segment", "name", "dataset", "origin_segment", "inverse"} <= set(result)
    frag = result["fragment_list"][0]
    assert set(frag) == {"coord", "grid_coord", "index", "offset", "feat"}
    assert int(frag["index"].max()) < len(result["segment"])
    assert len(result["inverse"]) == len(result["origin_segment"])


def test_per_sample_rng_reproducible_across_instances_and_epochs(sim_root):
    cfg = config("nuscenes", sim_root("nuscenes"), transform=train_transform("nuscenes"), seed=5)
    a, b = build_dataset(cfg), build_dataset(cfg)
    torch.testing.assert_close(a[1]["coord"], b[1]["coord"])
    a.set_epoch(1)
    assert not torch.equal(a[1]["coord"], b[1]["coord"])
    b.set_epoch(1)
    torch.testing.assert_close(a[1]["coord"], b[1]["coord"])


def test_loop_repeats_samples_with_fresh_draws(sim_root):
    ds = build_dataset(config("semantic_kitti", sim_root("semantic_kitti"), loop=2, seed=0,
                              transform=train_transform("semantic_kitti")))
    assert len(ds) == 6
    assert not torch.equal(ds[0]["coord"], ds[3]["coord"])


def test_list_split_concatenates(sim_root):
    root = sim_root("waymo")
    ds = build_dataset(dict(type="WaymoDataset", data_root=str(root), split=["training", "validation"]))
    assert len(ds) == 5


def test_concat_dataset_keeps_dataset_names(sim_root):
    ds = build_dataset(dict(type="ConcatDataset", loop=2, datasets=[
        config("nuscenes", sim_root("nuscenes"), split="val"),
        config("semantic_kitti", sim_root("semantic_kitti"), split="val")]))
    assert len(ds) == 8
    assert [ds[i]["dataset"] for i in range(4)] == ["nuscenes"] * 2 + ["semantic_kitti"] * 2


def test_missing_kitti_sequences_are_named(sim_root, tmp_path):
    (tmp_path / "dataset" / "sequences" / "00" / "velodyne").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="sequences/01/velodyne.*sequences/10/velodyne"):
        build_dataset(dict(type="SemanticKITTIDataset", data_root=str(tmp_path), split="train"))


def test_missing_waymo_split_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="validation"):
        build_dataset(dict(type="WaymoDataset", data_root=str(tmp_path), split="validation"))


def test_missing_nuscenes_info_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nuscenes_infos_10sweeps_val.pkl"):
        build_dataset(dict(type="NuScenesDataset", data_root=str(tmp_path), split="val"))


def test_concat_forwards_seed_and_epoch(sim_root):
    sub = [config(p, sim_root(p), split="val", transform=train_transform(p))
           for p in ("nuscenes", "waymo")]
    a = build_dataset(dict(type="ConcatDataset", datasets=sub))
    b = build_dataset(dict(type="ConcatDataset", datasets=sub))
    assert a.seed is None
    a.set_seed(3)
    b.set_seed(3)
    assert a.seed == 3
    torch.testing.assert_close(a[3]["coord"], b[3]["coord"])
    a.set_epoch(2)
    assert not torch.equal(a[3]["coord"], b[3]["coord"])


@pytest.mark.parametrize("profile", PROFILES)
def test_data_sizes_are_point_counts_read_without_decoding(sim_root, profile):
    ds = build_dataset(config(profile, sim_root(profile), loop=2))
    counts = [len(ds.load_data(i)["coord"]) for i in range(3)]
    assert ds.get_data_sizes() == counts * 2 and ds.get_data_size(4) == counts[1]


def test_concat_data_sizes_follow_its_index_and_loop(sim_root):
    subs = [build_dataset(config(p, sim_root(p), split="val", loop=2)) for p in ("nuscenes", "waymo")]
    concat = build_dataset(dict(type="ConcatDataset", datasets=subs, loop=2))
    expected = [len(subs[0].load_data(i)["coord"]) for i in range(4)] + \
        [len(subs[1].load_data(i)["coord"]) for i in range(4)]
    assert concat.get_data_sizes() == expected * 2
    assert [concat.get_data_size(i) for i in range(len(concat))] == expected * 2


def test_missing_points_file_is_named(sim_root, tmp_path):
    root = tmp_path / "waymo"
    shutil.copytree(sim_root("waymo"), root)
    ds = build_dataset(config("waymo", root))
    missing = ds.get_points_file(1)
    os.remove(missing)
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        ds.get_data_sizes()
