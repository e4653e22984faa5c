import pytest
import torch

from pointcept_distill.models.serialization import encode_orders, hilbert_encode
from pointcept_distill.models.serialization.z_order import z_order_encode


def upstream_reference(grid: torch.Tensor, depth: int) -> torch.Tensor:
    """Upstream's Hilbert encoding step by step: transpose bits level by level, interleave x-highest, Gray-decode."""
    x = [int(v) & ((1 << depth) - 1) for v in grid]
    for level in range(depth - 1, 0, -1):
        q, lower = 1 << level, (1 << level) - 1
        for d in range(3):
            if x[d] & q:
                x[0] ^= lower
            else:
                t = (x[0] ^ x[d]) & lower
                x[0] ^= t
                x[d] ^= t
    s = 0
    for level in range(depth - 1, -1, -1):
        for d in range(3):
            s = (s << 1) | ((x[d] >> level) & 1)
    h, acc = 0, 0
    for t in range(3 * depth - 1, -1, -1):
        acc ^= (s >> t) & 1
        h = (h << 1) | acc
    return h


@pytest.mark.parametrize("depth", range(1, 17))
def test_table_matches_upstream_procedure(depth):
    g = torch.Generator().manual_seed(depth)
    grid = torch.randint(0, 1 << depth, (150, 3), generator=g)
    grid[:8] = torch.cartesian_prod(*[torch.tensor([0, (1 << depth) - 1])] * 3)   # the corners
    want = torch.tensor([upstream_reference(p.tolist(), depth) for p in grid])
    assert torch.equal(hilbert_encode(grid, depth), want)


def test_batched_orders_equal_single_orders():
    grid = torch.randint(0, 200, (300, 3))
    batch = torch.arange(300) // 100
    orders = ["hilbert-trans", "z", "hilbert", "z-trans", "z"]
    codes = encode_orders(grid, batch, 8, orders)
    for row, order in zip(codes, orders):
        assert torch.equal(row, encode_orders(grid, batch, 8, [order])[0])
    assert torch.equal(codes[1] & ((1 << 24) - 1), z_order_encode(grid, 8))
