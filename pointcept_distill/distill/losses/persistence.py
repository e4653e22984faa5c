"""Exact Vietoris-Rips persistence pairs in homology dimensions 0 and 1 (numpy, CPU).

Only the *critical edges* are returned (vertex index pairs); the caller recomputes their lengths in torch,
which makes the diagram differentiable in the point coordinates.

Algorithm (exact, no heuristic):

* Edges are totally ordered by (length, index). A triangle's key is (rank of its longest edge) * n + (the vertex
  opposite that edge): key order is a filtration order, and the filtration value is the longest edge's length.
* H0: the minimum spanning tree for these ranks (Prim, vectorised). Each tree edge kills a component: pair
  (birth 0, death = its length), critical edge = that tree edge. The infinite class is left out.
* H1: column reduction of the edge->triangle coboundary matrix over GF(2), edges taken longest first and the
  pivot being the earliest triangle (the anti-transposed boundary matrix). This gives the same persistence pairs
  as reducing the boundary matrix (de Silva, Morozov, Vejdemo-Johansson 2011) and is the Ripser scheme:
  tree edges are cleared (they are H0 deaths, their columns reduce to zero); an edge whose earliest cofacet
  has it as its longest edge forms an apparent pair of zero persistence without any reduction; nothing past the
  enclosing radius min_i max_j d(i, j) is built, since the complex is a cone (contractible) from there on.
  Only the remaining edges enter a Python loop; columns are sets of triangle keys, addition is symmetric
  difference. Pair (edge e, triangle t): birth edge = e, death edge = the longest edge of t.

Pairs of zero persistence (death length == birth length) are dropped: they lie on the diagonal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PersistencePairs", "rips_persistence_pairs", "rips_pairs_from_distances", "pairwise_distances"]


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


def _cofacets(edges: np.ndarray, rank: np.ndarray, limit: int) -> np.ndarray:
    """(q, n) keys of the triangles {a, b, c} on the q edges (a, b); -1 where c is a or b or past ``limit``.

    A triangle's key is (rank of its longest edge) * n + (the vertex opposite that edge), so key order is a
    filtration order (triangles with the same longest edge may come in any order).
    """
    n = rank.shape[0]
    a, b = edges[:, :1], edges[:, 1:]                                   # (q, 1)
    r = rank[a, b]                                                      # (q, 1)
    r_ac, r_bc = rank[edges[:, 0]], rank[edges[:, 1]]                   # (q, n)
    hi = np.maximum(np.maximum(r_ac, r_bc), r)
    opposite = np.where(hi == r, np.arange(n, dtype=rank.dtype), np.where(r_ac > r_bc, b, a))
    return np.where((np.minimum(r_ac, r_bc) >= 0) & (hi < limit), hi * n + opposite, -1)


def _reduce_h1(edges: np.ndarray, rank: np.ndarray, positive: np.ndarray,
               limit: int) -> tuple[list[int], list[int]]:
    """Pair the positive edges of rank < ``limit`` with triangles; returns birth and death edge ranks."""
    n = rank.shape[0]
    pos = np.flatnonzero(positive[:limit])
    keys = _cofacets(edges[pos], rank, limit)                           # (q, n)
    # apparent pair: some cofacet has this edge as its longest edge, so its earliest cofacet does too
    apparent = keys.min(1, where=keys >= 0, initial=limit * n) // n == pos
    row_of = np.full(len(edges), -1)
    row_of[pos] = np.arange(len(pos))
    columns: dict[int, set] = {}  # pivot -> reduced column; apparent columns are built when first needed
    births, deaths = [], []
    for i in np.flatnonzero(~apparent)[::-1].tolist():                 # longest edge first
        col = set(keys[i][keys[i] >= 0].tolist())
        pivot = min(col)
        while True:
            other = columns.get(pivot)
            if other is None:
                j = row_of[pivot // n]
                if j < 0 or not apparent[j]:
                    break
                other = set(keys[j][keys[j] >= 0].tolist())
                first = min(other)
                columns[first] = other
                if first != pivot:  # the pivot's longest edge is apparent, but paired with another triangle
                    break
            col ^= other
            if not col:
                raise AssertionError("rips_persistence_pairs: a loop outlived the enclosing radius")
            pivot = min(col)
        columns[pivot] = col
        births.append(int(pos[i]))
        deaths.append(pivot // n)
    return births, deaths


def rips_persistence_pairs(points: np.ndarray) -> PersistencePairs:
    """Critical edges of the H0 and H1 Vietoris-Rips diagrams of ``points`` (n, d), Euclidean distances.

    Args:
        points: (n, d) coordinates; n up to a few hundred (time and memory grow as n^3; a few ms at n = 64).

    Returns:
        PersistencePairs with vertex index pairs; zero-persistence pairs and the infinite H0 class are left out.
    """
    pts = np.asarray(points)
    if pts.ndim != 2:
        raise ValueError(f"rips_persistence_pairs: points must be (n, d), got shape {pts.shape}")
    return rips_pairs_from_distances(pairwise_distances(pts))


def rips_pairs_from_distances(dist: np.ndarray) -> PersistencePairs:
    """As ``rips_persistence_pairs``, from an (n, n) distance matrix (any metric); only its upper triangle is read."""
    dist = np.asarray(dist)
    n = dist.shape[0]
    if dist.ndim != 2 or dist.shape[1] != n:
        raise ValueError(f"rips_pairs_from_distances: dist must be (n, n), got shape {dist.shape}")
    empty = np.zeros((0, 2), dtype=np.int64)
    if n < 2:
        return PersistencePairs(empty, empty, empty)
    # the edges' lengths are read from the upper triangle: mirror it, so that the enclosing radius below is taken
    # over those same lengths (a Gram-matrix distance computation is not exactly symmetric; a row maximum read
    # from the lower triangle can cut an edge of the cone off, and a loop then never dies)
    upper = np.triu(dist, 1)
    dist = upper + upper.T
    edges, lengths, rank = _edge_ranks(dist)
    tree = _mst_ranks(rank)
    h0 = tree[lengths[tree] > 0]
    positive = np.ones(len(edges), dtype=bool)
    positive[tree] = False
    if n < 3 or not positive.any():
        return PersistencePairs(edges[h0], empty, empty)
    # past the enclosing radius the complex is a cone (contractible): every loop dies by then, and a later edge
    # only makes pairs of zero persistence, so edges and triangles above it are left out
    limit = int(np.searchsorted(lengths, dist.max(1).min(), side="right"))
    births, deaths = _reduce_h1(edges, rank.astype(np.int32), positive, limit)
    births, deaths = np.asarray(births, dtype=np.int64), np.asarray(deaths, dtype=np.int64)
    keep = lengths[deaths] > lengths[births]
    return PersistencePairs(edges[h0], edges[births[keep]].reshape(-1, 2), edges[deaths[keep]].reshape(-1, 2))
