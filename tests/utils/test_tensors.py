"""utils.tensors: to_device walks dicts and lists, to_numpy takes tensors and array-likes."""
from __future__ import annotations

import numpy as np
import torch

from pointcept_distill.utils.tensors import to_device, to_numpy


def test_to_device_moves_every_tensor_and_keeps_other_values():
    batch = {"feat": torch.ones(2, dtype=torch.float64), "nested": {"ids": [torch.arange(3), 4]}, "name": "scan"}
    moved = to_device(batch, "meta")
    assert moved["feat"].device.type == "meta" and moved["feat"].dtype == torch.float64
    assert moved["nested"]["ids"][0].device.type == "meta" and moved["nested"]["ids"][1] == 4
    assert moved["name"] == "scan" and batch["feat"].device.type == "cpu"     # the input is not changed


def test_to_numpy_of_tensors_and_array_likes():
    assert np.array_equal(to_numpy(torch.tensor([1, 2])), np.array([1, 2]))
    assert np.array_equal(to_numpy([3, 4]), np.array([3, 4]))
