"""Exact Vietoris-Rips persistence pairs in homology dimensions 0 and 1 (numpy, CPU).

Only the *critical edges* are returned (vertex index pairs); the caller recomputes their lengths in torch,
which makes the diagram differentiable in the point coordinates.

Algorithm (exact, no heuristic):

* Edges are totally ordered by (length, index); a triangle's key is the lexicographic triple of its edge ranks
  (largest first), so its filtration value is the length of its largest edge.
* H0: the minimum spanning tree for these ranks (Prim, vectorised). Each tree edge kills a component: pair
  (birth 0, death = its length), critical edge = that tree edge. The infinite class is left out.
* H1: column reduction of the edge->triangle coboundary matrix over GF(2), edges taken longest first and the
  pivot being the earliest triangle (the anti-transposed boundary matrix). This gives the same persistence pairs
  as reducing the boundary matrix (de Silva, Morozov, Vejdemo-Johansson 2011) and is the Ripser scheme:
  tree edges are cleared (they are H0 deaths, their columns reduce to zero), and an edge whose earliest cofacet
  has it as its longest edge forms an apparent pair of zero persistence without any reduction. Only the
  remaining edges enter a Python loop; columns are sets of triangle keys, addition is symmetric difference.
  Pair (edge e, triangle t): birth edge = e, death edge = the longest edge of t.

Pairs of zero persistence (death length == birth length) are dropped: they lie on the diagonal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PersistencePairs", "rips_persistence_pairs", "pairwise_distances"]

_NONE = np.iinfo(np.int64).max  # key of the non-triangles {a, b, a} and {a, b, b}


@dataclass
class PersistencePairs:
    """Critical edges of a Vietoris-Rips diagram, as (q, 2) int64 arrays of vertex indices.

    ``h0_death[i]`` is the edge whose length is the death of the i-th H0 point (its birth is 0);
    ``h1_birth[i]`` / ``h1_death[i]`` are the edges whose lengths are the birth / death of the i-th H1 point.
    """

    h0_death: np.ndarray
    h1_birth: np.ndarray
    h1_death: np.ndarray


def pairwise_distances(points: np.ndarray) -> np.ndarray:
    """Euclidean distance matrix (n, n) of ``points`` (n, d), in float64."""
    x = np.asarray(points, dtype=np.float64)
    sq = (x * x).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(np.maximum(d2, 0.0))


def _edge_ranks(dist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (m, 2) sorted by (length, index), their lengths, and the (n, n) rank matrix (-1 on the diagonal)."""
    n = dist.shape[0]
    iu, ju = np.triu_indices(n, 1)
    order = np.argsort(dist[iu, ju], kind="stable")
    edges = np.stack([iu[order], ju[order]], 1)
    rank = np.full((n, n), -1, dtype=np.int64)
    rank[edges[:, 0], edges[:, 1]] = np.arange(len(edges))
    rank[edges[:, 1], edges[:, 0]] = np.arange(len(edges))
    return edges, dist[edges[:, 0], edges[:, 1]], rank


def _mst_ranks(rank: np.ndarray) -> np.ndarray:
    """Ranks of the minimum spanning tree edges (Prim on distinct integer weights, so the tree is unique)."""
    n = rank.shape[0]
    big = np.iinfo(np.int64).max
    w = np.where(rank < 0, big, rank)
    in_tree = np.zeros(n, dtype=bool)
    in_tree[0] = True
    best = w[0].copy()
    best[0] = big
    out = np.empty(n - 1, dtype=np.int64)
    for k in range(n - 1):
        v = int(np.argmin(best))
        out[k] = best[v]
        in_tree[v] = True
        best = np.minimum(best, w[v])
        best[in_tree] = big
    return out


def _cofacet_keys(edges: np.ndarray, rank: np.ndarray, m: int) -> np.ndarray:
    """(q, n) int64 triangle keys of the cofacets {a, b, c} of the q edges (a, b); _NONE where c is a or b."""
    r = rank[edges[:, 0], edges[:, 1]][:, None]      # (q, 1)
    r_ac, r_bc = rank[edges[:, 0]], rank[edges[:, 1]]  # (q, n)
    u, v = np.maximum(r_ac, r_bc), np.minimum(r_ac, r_bc)
    hi, lo = np.maximum(u, r), np.minimum(v, r)
    keys = hi * (m * m) + (u + v + r - hi - lo) * m + lo
    keys[v < 0] = _NONE
    return keys


def _reduce_h1(edges: np.ndarray, rank: np.ndarray, positive: np.ndarray) -> tuple[list[int], list[int]]:
    """Pair the positive edges (cycle creators) with triangles; returns birth ranks and death ranks."""
    m = len(edges)
    pos = np.flatnonzero(positive)
    a, b = edges[pos, 0], edges[pos, 1]
    # apparent pair: some cofacet {a, b, c} has (a, b) as its longest edge, so the earliest cofacet does too;
    # c = a or c = b never qualifies since rank[b, a] == rank[a, b]
    small = rank.astype(np.int16 if m < 2 ** 15 else np.int32)  # narrow ints: this (q, n) test dominates
    apparent = np.zeros(m, dtype=bool)
    apparent[pos] = (np.maximum(small[a], small[b]) < pos[:, None].astype(small.dtype)).any(1)
    todo = pos[~apparent[pos]][::-1]                  # longest edge first
    columns: dict[int, set] = {}  # pivot key -> reduced column; apparent columns are built when first needed
    births, deaths = [], []
    for e, row in zip(todo.tolist(), _cofacet_keys(edges[todo], rank, m)):
        col = set(row[row != _NONE].tolist())
        pivot = min(col)
        while True:
            other = columns.get(pivot)
            if other is None:
                hi = pivot // (m * m)
                if not apparent[hi]:
                    break
                arow = _cofacet_keys(edges[hi:hi + 1], rank, m)[0]
                other = set(arow[arow != _NONE].tolist())
                first = min(other)
                columns[first] = other
                if first != pivot:  # the pivot's longest edge is apparent, but paired with another triangle
                    break
            col ^= other
            if not col:
                raise AssertionError("rips_persistence_pairs: a cycle never died in the full 2-skeleton")
            pivot = min(col)
        columns[pivot] = col
        births.append(e)
        deaths.append(pivot // (m * m))
    return births, deaths


def rips_persistence_pairs(points: np.ndarray) -> PersistencePairs:
    """Critical edges of the H0 and H1 Vietoris-Rips diagrams of ``points`` (n, d), Euclidean distances.

    Args:
        points: (n, d) coordinates; n up to a few hundred (time and memory grow as n^3: ~3 ms at n = 64).

    Returns:
        PersistencePairs with vertex index pairs; zero-persistence pairs and the infinite H0 class are left out.
    """
    pts = np.asarray(points)
    if pts.ndim != 2:
        raise ValueError(f"rips_persistence_pairs: points must be (n, d), got shape {pts.shape}")
    n = pts.shape[0]
    empty = np.zeros((0, 2), dtype=np.int64)
    if n < 2:
        return PersistencePairs(empty, empty, empty)
    edges, lengths, rank = _edge_ranks(pairwise_distances(pts))
    tree = _mst_ranks(rank)
    h0 = tree[lengths[tree] > 0]
    positive = np.ones(len(edges), dtype=bool)
    positive[tree] = False
    if n < 3 or not positive.any():
        return PersistencePairs(edges[h0], empty, empty)
    if len(edges) ** 3 >= _NONE:
        raise ValueError(f"rips_persistence_pairs: {n} points is too many for int64 triangle keys")
    births, deaths = _reduce_h1(edges, rank, positive)
    births, deaths = np.asarray(births, dtype=np.int64), np.asarray(deaths, dtype=np.int64)
    keep = lengths[deaths] > lengths[births]
    return PersistencePairs(edges[h0], edges[births[keep]].reshape(-1, 2), edges[deaths[keep]].reshape(-1, 2))
