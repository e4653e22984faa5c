import pytest
import torch

from pointcept_distill.distill.losses.segments import segment_max, segment_mean, segment_min
from pointcept_distill.models.point import offset_to_batch


def test_segment_reductions_match_per_sample_loops():
    x = torch.tensor([1.0, 4.0, -2.0, 3.0, 5.0, 0.5])
    offset = torch.tensor([3, 3, 6])  # the middle sample is empty
    batch = offset_to_batch(offset)
    assert batch.tolist() == [0, 0, 0, 2, 2, 2]
    assert segment_mean(x, batch, 3).tolist() == [1.0, 0.0, pytest.approx(8.5 / 3)]
    assert segment_min(x, batch, 3)[[0, 2]].tolist() == [-2.0, 0.5]
    assert segment_max(x, batch, 3)[[0, 2]].tolist() == [4.0, 5.0]
    assert segment_mean(torch.stack([x, 2 * x], 1), batch, 3)[2].tolist() == pytest.approx([8.5 / 3, 17 / 3])
