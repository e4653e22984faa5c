"""Common label space: mapping tables, ``MapToCommon``, ``TagDataset`` and mixed joint batches."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pointcept_distill.data import build_dataset, point_collate_fn
from pointcept_distill.data.label_space import (COMMON_NAMES, NATIVE_NAMES, TO_COMMON, MapToCommon, TagDataset,
                                                common_classes, common_lookup, joint_data_config,
                                                missing_classes, shared_classes, to_common, union_names,
                                                union_offsets)
from pointcept_distill.data.transforms import GridSample

DATASETS = ("nuscenes", "semantic_kitti", "waymo")


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_training_class_has_a_common_counterpart(dataset):
    assert list(TO_COMMON[dataset]) == list(NATIVE_NAMES[dataset])
    lut = common_lookup(dataset)
    assert lut.shape == (len(NATIVE_NAMES[dataset]),) and (lut >= 0).all() and (lut < len(COMMON_NAMES)).all()
    for native, common in zip(NATIVE_NAMES[dataset], lut):
        assert COMMON_NAMES[common] == TO_COMMON[dataset][native]


def test_class_counts_and_missing_classes():
    assert [len(NATIVE_NAMES[d]) for d in DATASETS] == [16, 19, 22]
    assert len(COMMON_NAMES) == 14
    assert missing_classes("nuscenes") == ["pole_sign"]
    assert missing_classes("semantic_kitti") == ["bus", "barrier_cone"]
    assert missing_classes("waymo") == []
    kitti = common_lookup("semantic_kitti")
    assert kitti[NATIVE_NAMES["semantic_kitti"].index("other-vehicle")] == COMMON_NAMES.index("other_vehicle")


def test_shared_classes_are_the_intersection():
    for a in DATASETS:
        for b in DATASETS:
            shared = shared_classes(a, b)
            assert shared == shared_classes(b, a)
            assert set(shared) == set(common_classes(a)) & set(common_classes(b))
    assert COMMON_NAMES.index("bus") not in shared_classes("nuscenes", "semantic_kitti")
    assert COMMON_NAMES.index("barrier_cone") in shared_classes("nuscenes", "waymo")


def test_to_common_keeps_ignore_and_rejects_bad_ids():
    labels = np.array([-1, 0, 3, 15, -1])
    out = to_common(labels, "nuscenes")
    assert out.tolist() == [-1, COMMON_NAMES.index("barrier_cone"), COMMON_NAMES.index("car"),
                            COMMON_NAMES.index("vegetation"), -1]
    with pytest.raises(ValueError, match="nuscenes labels \\[16\\]"):
        to_common(np.array([16]), "nuscenes")
    with pytest.raises(KeyError, match="unknown dataset"):
        to_common(labels, "scannet")


def test_union_layout():
    assert union_offsets(DATASETS) == [0, 16, 35]
    names = union_names(DATASETS)
    assert len(names) == 57 and names[16] == "semantic_kitti/car" and names[-1] == "waymo/Sidewalk"


def _sample(dataset: str, n: int = 50, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    k = len(NATIVE_NAMES[dataset])
    segment = rng.integers(-1, k, n)
    return dict(coord=rng.uniform(0, 2, (n, 3)).astype(np.float32), strength=rng.random((n, 1), np.float32),
                segment=segment, origin_segment=segment.copy(), dataset=dataset)


def test_map_to_common_maps_both_label_keys():
    data = _sample("waymo")
    out = MapToCommon()(data)
    expected = to_common(data["segment"], "waymo")
    assert np.array_equal(out["segment"], expected) and np.array_equal(out["origin_segment"], expected)
    assert np.array_equal(data["segment"], _sample("waymo")["segment"])  # input untouched


def test_tag_dataset_survives_grid_sampling_and_shifts_labels():
    data = _sample("semantic_kitti", n=400)
    tagged = TagDataset(DATASETS, union_labels=True)(data)
    keep = data["segment"] != -1
    assert np.array_equal(tagged["segment"][keep], data["segment"][keep] + 16)
    assert (tagged["segment"][~keep] == -1).all()
    sampled = GridSample(grid_size=0.3, mode="train", return_grid_coord=True)(tagged, np.random.default_rng(0))
    assert len(sampled["dataset_index"]) == len(sampled["coord"]) < 400
    assert (sampled["dataset_index"] == 1).all()
    with pytest.raises(KeyError, match="TagDataset: sample of dataset 'waymo'"):
        TagDataset(["nuscenes"])(_sample("waymo"))


@pytest.fixture(scope="module")
def joint_roots(tmp_path_factory):
    from pointcept_distill.data.simulator import generate
    roots = {}
    for name in DATASETS:
        roots[name] = str(tmp_path_factory.mktemp(name))
        generate(name, roots[name], train=1, val=1, seed=3, scale=0.03)
    return roots


@pytest.mark.parametrize("label_space", ["heads", "common"])
def test_joint_batches_mix_datasets(joint_roots, label_space):
    cfg = joint_data_config(joint_roots, label_space)
    assert cfg["num_classes"] == (57 if label_space == "heads" else 14)
    dataset = build_dataset(cfg["train"])
    samples = [dataset[i] for i in range(len(dataset))]
    for mix_prob in (0.0, 1.0):
        batch = point_collate_fn(samples, mix_prob=mix_prob)
        which, segment = batch["dataset_index"], batch["segment"]
        assert which.shape == segment.shape and set(which.tolist()) == {0, 1, 2}
        for d, name in enumerate(DATASETS):
            labels = segment[(which == d) & (segment != -1)]
            if label_space == "heads":
                lo, hi = union_offsets(DATASETS)[d], union_offsets(DATASETS)[d] + len(NATIVE_NAMES[name])
                assert labels.numel() and labels.min() >= lo and labels.max() < hi
            else:
                assert set(labels.tolist()) <= set(common_classes(name))
    val = build_dataset(cfg["val"])[0]
    assert torch.equal(val["dataset_index"], torch.zeros_like(val["segment"]))


def test_docs_mapping_table_is_the_code_mapping():
    """docs/joint.md's common-label table lists exactly TO_COMMON (each dataset's classes per common class)."""
    import re
    from pathlib import Path

    from pointcept_distill.data.label_space import COMMON_NAMES, TO_COMMON
    readme = (Path(__file__).parents[2] / "docs" / "joint.md").read_text()
    rows = re.findall(r"^\| (\w+) \| (.+?) \| (.+?) \| (.+?) \|$", readme, flags=re.M)
    table = {r[0]: r[1:] for r in rows if r[0] in COMMON_NAMES}
    assert list(table) == list(COMMON_NAMES)
    for column, dataset in enumerate(("nuscenes", "semantic_kitti", "waymo")):
        for common, cells in table.items():
            listed = set() if cells[column] == "—" else {c.strip() for c in cells[column].split(",")}
            assert listed == {n for n, c in TO_COMMON[dataset].items() if c == common}, (dataset, common)
