import numpy as np
import pytest
import torch

from pointcept_distill.data import TRANSFORMS


def build(type_: str, **kw):
    return TRANSFORMS.build(dict(type=type_, **kw))


def test_copy_is_deep():
    data = {"segment": np.arange(4)}
    out = build("Copy", keys_dict={"segment": "origin_segment"})(data)
    out["origin_segment"][0] = 99
    assert data["segment"][0] == 0 and out["segment"][0] == 0


def test_copy_missing_key_names_it():
    with pytest.raises(KeyError, match="Copy.*'segment'"):
        build("Copy", keys_dict={"segment": "x"})({"coord": np.zeros((1, 3))})


def test_update_sets_constants():
    assert build("Update", keys_dict={"grid_size": 0.05})({})["grid_size"] == 0.05


def test_to_tensor_dtypes():
    out = build("ToTensor")({"coord": np.zeros((2, 3), np.float64), "segment": np.zeros(2, np.int32),
                             "mask": np.ones(2, bool), "name": "a", "parts": [np.zeros(1, np.int16)]})
    assert out["coord"].dtype == torch.float32 and out["segment"].dtype == torch.int64
    assert out["mask"].dtype == torch.bool and out["name"] == "a" and out["parts"][0].dtype == torch.int64


def test_to_tensor_copies_read_only_arrays():
    arr = np.zeros(3, np.float32)
    arr.setflags(write=False)
    assert build("ToTensor")({"x": arr})["x"].shape == (3,)


def test_collect_keys_offset_and_feat():
    data = {"coord": torch.rand(5, 3), "strength": torch.rand(5, 1), "segment": torch.zeros(5).long(),
            "extra": torch.zeros(5)}
    out = build("Collect", keys=("coord", "segment"), feat_keys=("coord", "strength"))(data)
    assert set(out) == {"coord", "segment", "offset", "feat"}
    assert out["offset"].tolist() == [5]
    torch.testing.assert_close(out["feat"], torch.cat([data["coord"], data["strength"]], 1))


def test_collect_missing_key_names_it():
    with pytest.raises(KeyError, match="Collect.*'grid_coord'"):
        build("Collect", keys=("coord", "grid_coord"))({"coord": torch.zeros(2, 3)})
