import math

import pytest
import torch

from pointcept_distill.distill.losses.diagram_distance import (chamfer_diagram_distance,
                                                               sliced_wasserstein_diagram_distance)


def _pad(diagrams):
    width = max(1, max(len(d) for d in diagrams))
    points = torch.zeros(len(diagrams), width, 2, dtype=torch.float64)
    mask = torch.zeros(len(diagrams), width, dtype=torch.bool)
    for b, d in enumerate(diagrams):
        if d:
            points[b, :len(d)] = torch.tensor(d, dtype=torch.float64)
            mask[b, :len(d)] = True
    return points, mask


def _chamfer(a, b):
    def directed(x, y):
        if not x:
            return 0.0
        if not y:
            return sum((q - p) ** 2 / 2 for p, q in x) / len(x)
        return sum(min((p - r) ** 2 + (q - s) ** 2 for r, s in y) for p, q in x) / len(x)
    return directed(a, b) + directed(b, a)


def _sliced(a, b, num):
    proj = lambda d: [((p + q) / 2, (p + q) / 2) for p, q in d]  # noqa: E731
    x, y = a + proj(b), b + proj(a)
    total = 0.0
    for i in range(num):
        t = (i + 0.5) * math.pi / num - math.pi / 2
        px = sorted(p * math.cos(t) + q * math.sin(t) for p, q in x)
        py = sorted(p * math.cos(t) + q * math.sin(t) for p, q in y)
        total += sum(abs(u - v) for u, v in zip(px, py))
    return total / num


CASES = [
    ([(0.0, 1.0), (0.2, 0.5)], [(0.1, 0.9)]),
    ([(0.3, 0.4)], []),
    ([], [(0.0, 2.0), (1.0, 1.5), (0.5, 0.7)]),
    ([], []),
]


def test_chamfer_matches_direct_computation_and_empty_diagrams():
    a, am = _pad([c[0] for c in CASES])
    b, bm = _pad([c[1] for c in CASES])
    got = chamfer_diagram_distance(a, am, b, bm)
    want = torch.tensor([_chamfer(x, y) for x, y in CASES], dtype=torch.float64)
    assert torch.allclose(got, want)
    assert got[-1] == 0.0


def test_sliced_wasserstein_matches_direct_computation():
    a, am = _pad([c[0] for c in CASES])
    b, bm = _pad([c[1] for c in CASES])
    got = sliced_wasserstein_diagram_distance(a, am, b, bm, num_directions=7)
    want = torch.tensor([_sliced(x, y, 7) for x, y in CASES], dtype=torch.float64)
    assert torch.allclose(got, want)
    assert torch.allclose(got, sliced_wasserstein_diagram_distance(b, bm, a, am, num_directions=7))


@pytest.mark.parametrize("dist", [chamfer_diagram_distance, sliced_wasserstein_diagram_distance])
def test_zero_for_equal_diagrams_and_finite_gradient(dist):
    a, am = _pad([c[0] for c in CASES])
    assert torch.allclose(dist(a, am, a.clone(), am), torch.zeros(len(CASES), dtype=torch.float64))
    b, bm = _pad([c[1] for c in CASES])
    a.requires_grad_(True)
    dist(a, am, b, bm).sum().backward()
    assert torch.isfinite(a.grad).all() and a.grad[am].abs().sum() > 0
