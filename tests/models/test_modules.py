import torch
from torch import nn

from pointcept_distill.models import DropPath, Point, PointSequential
from pointcept_distill.models.sparse import SubMConv3d


def test_drop_path_per_row():
    torch.manual_seed(0)
    layer = DropPath(0.5)
    x = torch.ones(1000, 4)
    assert torch.equal(layer.eval()(x), x)
    y = layer.train()(x)
    rows = y[:, 0]
    assert set(rows.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(y, rows.unsqueeze(1).expand_as(y))           # whole rows kept or dropped
    assert 400 < int((rows == 0).sum()) < 600


def test_point_sequential_dispatch_and_names():
    seq = PointSequential(SubMConv3d(2, 3, 3, bias=False), nn.Linear(3, 3), act=nn.GELU())
    assert list(seq.state_dict()) == ["0.weight", "1.weight", "1.bias"]
    point = Point(grid_coord=torch.tensor([[0, 0, 0], [0, 0, 1]]), feat=torch.randn(2, 2),
                  offset=torch.tensor([2]))
    point.sparsify()
    point = seq(point)
    assert point.feat.shape == (2, 3)
    assert point.sparse_conv_feat.features is point.feat            # the sparse view follows every step
