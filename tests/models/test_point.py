import pytest
import torch

from pointcept_distill.models import Point


def test_attribute_access_and_derived_batch():
    p = Point(coord=torch.zeros(5, 3), feat=torch.zeros(5, 2), offset=torch.tensor([2, 5]))
    assert p.batch.tolist() == [0, 0, 1, 1, 1]
    p.extra = 1
    assert p["extra"] == 1
    with pytest.raises(AttributeError, match="nope"):
        _ = p.nope


def test_offset_from_batch():
    p = Point(feat=torch.zeros(4, 1), batch=torch.tensor([0, 1, 1, 1]))
    assert p.offset.tolist() == [1, 4]


def test_serialization_depth_is_global_and_orders_sort_codes():
    grid = torch.tensor([[0, 0, 0], [1, 2, 3], [9, 0, 1], [2, 2, 2]])
    p = Point(grid_coord=grid, feat=torch.zeros(4, 1), offset=torch.tensor([2, 4]))
    p.serialization(order=["z", "hilbert"])
    assert p.serialized_depth == 4                               # bit_length(9 + 1) over the whole batch
    assert p.serialized_code.shape == (2, 4)
    for k in range(2):
        code = p.serialized_code[k]
        assert torch.all(code[p.serialized_order[k]].diff() > 0)
        assert torch.equal(p.serialized_order[k][p.serialized_inverse[k]], torch.arange(4))


def test_grid_coord_from_coord():
    p = Point(coord=torch.tensor([[0.0, 0.0, 0.0], [0.25, 0.05, 0.31]]), feat=torch.zeros(2, 1),
              offset=torch.tensor([2]), grid_size=0.1)
    p.sparsify()
    assert p.grid_coord.tolist() == [[0, 0, 0], [2, 0, 3]]
    assert p.sparse_conv_feat.indices.tolist() == [[0, 0, 0, 0], [0, 2, 0, 3]]


def test_sparsify_after_serialization_bounds_the_grid_without_reading_it():
    grid = torch.tensor([[0, 0, 0], [5, 2, 3]])
    p = Point(grid_coord=grid, feat=torch.zeros(2, 1), offset=torch.tensor([2]))
    p.serialization()
    p.sparsify(pad=96)
    assert p.sparse_conv_feat.spatial_shape == [8 + 96] * 3          # depth 3 -> every coordinate < 8
    q = Point(grid_coord=grid, feat=torch.zeros(2, 1), offset=torch.tensor([2]))
    q.sparsify(pad=96)
    assert q.sparse_conv_feat.spatial_shape == [5 + 96, 2 + 96, 3 + 96]
