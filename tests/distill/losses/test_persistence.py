import itertools
import math

import numpy as np
import pytest

from pointcept_distill.distill.losses import rips_persistence_pairs
from pointcept_distill.distill.losses.persistence import pairwise_distances


def _brute_force_diagrams(points):
    """Full Rips filtration up to triangles, dense GF(2) boundary matrix, plain column reduction (no clearing).

    Returns {0: [...], 1: [...]} sorted lists of finite (birth, death) with death > birth.
    """
    d = pairwise_distances(points)
    n = len(points)
    simplices = [(0.0, 0, (i,)) for i in range(n)]
    simplices += [(d[i, j], 1, (i, j)) for i, j in itertools.combinations(range(n), 2)]
    simplices += [(max(d[i, j], d[i, k], d[j, k]), 2, (i, j, k))
                  for i, j, k in itertools.combinations(range(n), 3)]
    simplices.sort(key=lambda s: (s[0], s[1]))
    where = {s[2]: col for col, s in enumerate(simplices)}
    boundary = np.zeros((len(simplices), len(simplices)), dtype=np.uint8)
    for col, (_, dim, verts) in enumerate(simplices):
        if dim:
            for face in itertools.combinations(verts, dim):
                boundary[where[face], col] = 1
    owner, diagrams = {}, {0: [], 1: []}
    for col in range(len(simplices)):
        while boundary[:, col].any():
            low = int(np.flatnonzero(boundary[:, col])[-1])
            if low not in owner:
                owner[low] = col
                birth, death = simplices[low][0], simplices[col][0]
                if death > birth:
                    diagrams[simplices[low][1]].append((birth, death))
                break
            boundary[:, col] ^= boundary[:, owner[low]]
    return {k: sorted(v) for k, v in diagrams.items()}


def _our_diagrams(points):
    d = pairwise_distances(points)
    pairs = rips_persistence_pairs(points)
    h0 = [(0.0, d[i, j]) for i, j in pairs.h0_death]
    h1 = [(d[a, b], d[c, e]) for (a, b), (c, e) in zip(pairs.h1_birth, pairs.h1_death)]
    return {0: sorted(h0), 1: sorted(h1)}


def _assert_same(got, want):
    for dim in (0, 1):
        assert len(got[dim]) == len(want[dim]), (dim, got[dim], want[dim])
        if want[dim]:
            np.testing.assert_allclose(np.array(got[dim]), np.array(want[dim]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_on_random_points(seed):
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(int(rng.integers(4, 11)), int(rng.integers(2, 7))))
    _assert_same(_our_diagrams(points), _brute_force_diagrams(points))


@pytest.mark.parametrize("dim", [2, 8, 32])
def test_matches_brute_force_on_larger_sets(dim):
    # enough points for long reductions (columns added to columns) and an enclosing radius below the diameter
    points = np.random.default_rng(dim).normal(size=(18, dim))
    _assert_same(_our_diagrams(points), _brute_force_diagrams(points))


@pytest.mark.parametrize("seed", range(4))
def test_matches_brute_force_with_tied_distances(seed):
    # integer grid points: many equal lengths, so the tie-breaking must not change the diagrams
    rng = np.random.default_rng(100 + seed)
    points = rng.integers(0, 3, size=(9, 2)).astype(float)
    points = np.unique(points, axis=0)
    _assert_same(_our_diagrams(points), _brute_force_diagrams(points))


def test_matches_brute_force_on_noisy_circle():
    rng = np.random.default_rng(7)
    theta = np.sort(rng.uniform(0, 2 * np.pi, 11))
    points = np.c_[np.cos(theta), np.sin(theta)] + 0.05 * rng.normal(size=(11, 2))
    _assert_same(_our_diagrams(points), _brute_force_diagrams(points))


@pytest.mark.parametrize("n", [4, 5, 6, 8, 9, 12])
def test_regular_polygon_has_one_loop(n):
    # the loop is born at the side and dies once a triangle around the centre appears: steps ceil(n / 3)
    theta = 2 * np.pi * np.arange(n) / n
    points = 3.0 * np.c_[np.cos(theta), np.sin(theta)]
    dg = _our_diagrams(points)
    side, death = 6.0 * math.sin(math.pi / n), 6.0 * math.sin(math.ceil(n / 3) * math.pi / n)
    assert len(dg[1]) == 1
    assert dg[1][0] == pytest.approx((side, death))
    assert len(dg[0]) == n - 1 and all(d == pytest.approx(side) for _, d in dg[0])


def test_square_loop_dies_at_diagonal():
    dg = _our_diagrams(np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]))
    assert dg[1] == [pytest.approx((2.0, 2.0 * math.sqrt(2.0)))]
    assert [d for _, d in dg[0]] == pytest.approx([2.0, 2.0, 2.0])


def test_two_circles_give_two_loops_and_line_gives_none():
    theta = 2 * np.pi * np.arange(10) / 10
    ring = np.c_[np.cos(theta), np.sin(theta)]
    assert len(_our_diagrams(np.r_[ring, 2.0 * ring + 10.0])[1]) == 2
    line = np.c_[np.linspace(0, 1, 12), np.zeros(12), np.zeros(12)]
    assert _our_diagrams(line)[1] == []


def test_h0_deaths_are_minimum_spanning_tree_lengths():
    from scipy.sparse.csgraph import minimum_spanning_tree

    rng = np.random.default_rng(3)
    points = rng.normal(size=(40, 16))
    mst = minimum_spanning_tree(pairwise_distances(points)).toarray()
    want = np.sort(mst[mst > 0])
    got = np.sort([d for _, d in _our_diagrams(points)[0]])
    np.testing.assert_allclose(got, want)


def test_critical_edges_are_valid_and_ordered():
    rng = np.random.default_rng(5)
    points = rng.normal(size=(64, 32))
    pairs = rips_persistence_pairs(points)
    d = pairwise_distances(points)
    assert pairs.h0_death.shape == (63, 2)
    assert (pairs.h1_birth[:, 0] != pairs.h1_birth[:, 1]).all()
    assert (d[tuple(pairs.h1_death.T)] > d[tuple(pairs.h1_birth.T)]).all()
    assert len(pairs.h1_birth) > 0


def test_degenerate_inputs():
    assert rips_persistence_pairs(np.zeros((1, 3))).h0_death.shape == (0, 2)
    two = rips_persistence_pairs(np.array([[0.0], [1.0]]))
    assert two.h0_death.tolist() == [[0, 1]] and two.h1_birth.shape == (0, 2)
    dup = rips_persistence_pairs(np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]))
    assert len(dup.h0_death) == 1  # the zero-length merge is on the diagonal
    with pytest.raises(ValueError, match="rips_persistence_pairs"):
        rips_persistence_pairs(np.zeros(5))


def test_slightly_asymmetric_distances_give_the_pairs_of_their_upper_triangle():
    """Distances from a Gram-matrix computation are not exactly symmetric. Seed 90 is a case where the enclosing
    radius read from the rows, if the shrunk lower-triangle entry counted, cuts the cone's farthest edge off."""
    from pointcept_distill.distill.losses.persistence import pairwise_distances, rips_pairs_from_distances
    for seed in (90, *range(10)):
        x = np.random.default_rng(seed).normal(size=(24, 8))
        exact = pairwise_distances(x)
        apex = int(exact.max(1).argmin())
        far = int(exact[apex].argmax())
        skewed = exact.copy()
        skewed[max(apex, far), min(apex, far)] -= 1e-9                     # the lower-triangle entry only
        got, want = rips_pairs_from_distances(skewed), rips_pairs_from_distances(exact)
        for name in ("h0_death", "h1_birth", "h1_death"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), (seed, name)
