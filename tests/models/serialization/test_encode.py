import pytest
import torch

from pointcept_distill.models.serialization import ORDERS, encode


def test_codes_match_upstream_fixture(fixtures_dir):
    cases = torch.load(fixtures_dir / "serialization_codes.pt", weights_only=True)
    assert {c["depth"] for c in cases} == {4, 8, 11, 16}
    for case in cases:
        for order in ORDERS:
            got = encode(case["grid_coord"], case["batch"], case["depth"], order)
            assert torch.equal(got, case[order]), (case["depth"], order)


@pytest.mark.parametrize("order", ORDERS)
def test_codes_are_hierarchical(order):
    g = torch.randint(0, 64, (500, 3))
    assert torch.equal(encode(g, depth=6, order=order) >> 3, encode(g >> 1, depth=5, order=order))


@pytest.mark.parametrize("order", ORDERS)
def test_codes_are_a_bijection_on_the_grid(order):
    r = torch.arange(8)
    g = torch.cartesian_prod(r, r, r)
    code = encode(g, depth=3, order=order)
    assert torch.equal(code.sort()[0], torch.arange(512))


def test_batch_goes_to_high_bits():
    g = torch.randint(0, 16, (10, 3))
    b = torch.arange(10) % 3
    assert torch.equal(encode(g, b, 4, "hilbert") >> 12, b)


def test_unknown_order_is_named():
    with pytest.raises(ValueError, match="hilbert-x"):
        encode(torch.zeros(1, 3, dtype=torch.long), order="hilbert-x")
