"""Topology-aware distillation: match the Vietoris-Rips persistence diagrams of teacher and student features.

Per sample, a deterministic subsample of the (matched) points is taken; the H0 and H1 diagrams of its teacher
and student features (point clouds in feature space, Euclidean distances) are computed exactly on the CPU
(``persistence.rips_pairs_from_distances``), and made differentiable by recomputing the lengths of their critical
edges in torch. The official code instead runs a heuristic "H1" without gradient on the whole batch at once.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.util
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np
import torch
from torch import Tensor, nn

from ...models.builder import LOSSES
from ...utils.misc import check_tensor
from .diagram_distance import chamfer_diagram_distance, sliced_wasserstein_diagram_distance
from .persistence import PersistencePairs, rips_pairs_from_distances
from .subsample import SAMPLERS

__all__ = ["TopologyKD", "persistence_diagrams", "shutdown_pools"]

_EPS = 1e-12


def _critical_edges(pairs: list[PersistencePairs], dim: int) -> tuple[Tensor, Tensor, Tensor]:
    """Birth and death edges (B, P, 2) of the dim-``dim`` diagrams, padded, and their (B, P) mask."""
    deaths = [p.h0_death if dim == 0 else p.h1_death for p in pairs]
    width = max(len(d) for d in deaths)
    birth = np.zeros((len(pairs), width, 2), dtype=np.int64)      # H0: the self-edge (0, 0), length 0
    death = np.zeros((len(pairs), width, 2), dtype=np.int64)
    mask = np.zeros((len(pairs), width), dtype=bool)
    for b, p in enumerate(pairs):
        q = len(deaths[b])
        death[b, :q], mask[b, :q] = deaths[b], True
        if dim == 1:
            birth[b, :q] = p.h1_birth
    return torch.from_numpy(birth), torch.from_numpy(death), torch.from_numpy(mask)


def _edge_lengths(x: Tensor, edges: Tensor) -> Tensor:
    """Lengths (B, P) of the edges (B, P, 2) of the clouds x (B, k, C); 0 for self-edges, no NaN gradient."""
    rows = torch.arange(len(x), device=x.device)[:, None]
    diff = x[rows, edges[..., 0]] - x[rows, edges[..., 1]]                 # (B, P, C)
    length = (diff * diff).sum(-1).clamp_min(_EPS).sqrt()
    return torch.where(edges[..., 0] == edges[..., 1], 0.0, length)


def _squared_distances(x: Tensor) -> Tensor:
    """(B, k, k) squared Euclidean distances within each cloud x (B, k, C), clamped at 0."""
    sq = (x * x).sum(-1)
    return (sq[:, :, None] + sq[:, None] - 2.0 * x @ x.transpose(1, 2)).clamp_min(0.0)


def _mean_pairwise_distance(x: Tensor, valid: Tensor) -> Tensor:
    """(B,) mean Euclidean distance between distinct valid points of each cloud x (B, k, C)."""
    pair = valid[:, :, None] & valid[:, None] & ~torch.eye(x.shape[1], dtype=torch.bool, device=x.device)
    dist = torch.where(pair, _squared_distances(x).clamp_min(_EPS).sqrt(), 0.0)
    return (dist.sum((1, 2)) / pair.sum((1, 2)).clamp_min(1)).clamp_min(1e-6)


_POOLS: dict[int, ProcessPoolExecutor] = {}


def _pool(workers: int) -> ProcessPoolExecutor:
    """A persistent process pool (spawned, so safe beside CUDA) for the CPU persistence computations."""
    if workers not in _POOLS:
        _POOLS[workers] = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        # A process that is itself a multiprocessing child (one rank of a spawned DDP job) joins its children
        # at exit before threading's atexit hooks shut executors down: the workers would wait for work forever
        # and the rank would never exit. A finalizer runs before that join; its priority (above the 10 of the
        # pool's own queues, whose feeder threads must still run) makes it the first.
        multiprocessing.util.Finalize(None, shutdown_pools, exitpriority=100)
    return _POOLS[workers]


def shutdown_pools() -> None:
    """Stop the persistence worker processes (they are started again on the next use)."""
    while _POOLS:
        _POOLS.popitem()[1].shutdown(wait=True, cancel_futures=True)


def rips_pairs_batch(clouds: list[tuple[Tensor, Tensor]], workers: int = 0) -> list[list[PersistencePairs]]:
    """Persistence pairs of each sample of each (x (B, k, C), valid (B, k)) in ``clouds``, on the CPU.

    All samples of all clouds go to the ``workers`` processes at once (0: computed here, one after another).
    """
    jobs = []
    for x, valid in clouds:
        sizes = valid.sum(1).tolist()
        # distances on x's device, in float64 so that the edge order is that of the exact lengths
        dist = _squared_distances(x.detach().double()).sqrt().cpu().numpy()      # (B, k, k)
        jobs += [dist[b, :n, :n] for b, n in enumerate(sizes)]
    pairs = list(_pool(workers).map(rips_pairs_from_distances, jobs)) if workers > 0 else \
        [rips_pairs_from_distances(d) for d in jobs]
    out, start = [], 0
    for x, _ in clouds:
        out.append(pairs[start:start + len(x)])
        start += len(x)
    return out


def diagrams_from_pairs(x: Tensor, pairs: list[PersistencePairs], dims: tuple[int, ...],
                        scale: Tensor | None = None) -> dict[int, tuple[Tensor, Tensor]]:
    """``{dim: (points (B, P, 2), mask (B, P))}``: the critical edge lengths of ``pairs`` recomputed from x (B, k, C)
    in torch (differentiable), divided by ``scale`` (B,) if given."""
    out = {}
    for dim in dims:
        birth, death, mask = (t.to(x.device) for t in _critical_edges(pairs, dim))
        points = torch.stack([_edge_lengths(x, birth), _edge_lengths(x, death)], -1)  # (B, P, 2)
        if scale is not None:
            points = points / scale[:, None, None]
        out[dim] = (points, mask)
    return out


def persistence_diagrams(x: Tensor, valid: Tensor, dims: tuple[int, ...],
                         scale: Tensor | None = None) -> dict[int, tuple[Tensor, Tensor]]:
    """Differentiable Rips diagrams of the clouds x (B, k, C) restricted to ``valid`` (B, k), a prefix mask.

    Returns ``{dim: (points (B, P, 2), mask (B, P))}``, birth/death lengths divided by ``scale`` (B,) if given.
    The pairs are computed on the CPU without gradient; the lengths are recomputed from ``x`` in torch.
    """
    (pairs,) = rips_pairs_batch([(x, valid)])
    return diagrams_from_pairs(x, pairs, dims, scale)


@LOSSES.register_module()
class TopologyKD(nn.Module):
    """Distance between the teacher's and the student's feature-space persistence diagrams, per sample.

    Loss = sum over homology dimensions of the mean over samples of the diagram distance. Gradients reach the
    student through its critical edge lengths (and its scale, if ``normalize``); the teacher is detached.

    Args:
        num_points: subsample size per sample (the diagrams cost about n^3 / 6 triangles).
        sampling: "stride" (evenly spaced in the matched point order: a uniform sample, as the paper uses all
            points) or "fps" (farthest points in the teacher's feature space; favours outliers and costs
            about twice as much persistence work).
        homology_dims: any of (0, 1).
        distance: "chamfer" (the paper's) or "sliced_wasserstein".
        num_directions: directions of the sliced Wasserstein distance.
        normalize: divide each cloud by its mean pairwise distance, so that feature scale is not distilled.
        loss_weight: multiplies the loss (beta = 0.1 in the paper's code).
        workers: processes computing the persistence pairs of the 2B clouds of a step in parallel (0: in this
            process). The pairs are host work; on a GPU machine with idle cores, 8 workers cut their time
            several-fold.
    """

    def __init__(self, num_points: int = 64, sampling: str = "stride", homology_dims: tuple[int, ...] = (0, 1),
                 distance: str = "chamfer", num_directions: int = 16, normalize: bool = True,
                 loss_weight: float = 1.0, workers: int = 0) -> None:
        super().__init__()
        if sampling not in SAMPLERS:
            raise ValueError(f"TopologyKD: sampling={sampling!r} not in {tuple(SAMPLERS)}")
        if not homology_dims or not set(homology_dims) <= {0, 1}:
            raise ValueError(f"TopologyKD: homology_dims={homology_dims!r} must be a non-empty subset of (0, 1)")
        distances = {"chamfer": chamfer_diagram_distance,
                     "sliced_wasserstein": partial(sliced_wasserstein_diagram_distance,
                                                   num_directions=num_directions)}
        if distance not in distances:
            raise ValueError(f"TopologyKD: distance={distance!r} not in {tuple(distances)}")
        if num_points < 2:
            raise ValueError(f"TopologyKD: num_points must be >= 2, got {num_points}")
        self.num_points, self.sampling, self.dims = num_points, sampling, tuple(homology_dims)
        self.distance, self.normalize, self.loss_weight = distances[distance], normalize, loss_weight
        self.workers = workers

    def forward(self, student_feat: Tensor, teacher_feat: Tensor, offset: Tensor) -> dict[str, Tensor]:
        if len(student_feat) != len(teacher_feat):
            raise ValueError(f"TopologyKD: {len(student_feat)} student points and {len(teacher_feat)} teacher "
                             "points; match the points first")
        check_tensor(offset[-1] == len(student_feat), f"TopologyKD: offset[-1] must be the number of points "
                                                      f"{len(student_feat)}")
        # Gram-matrix distances lose all precision in half precision, so autocast is off here
        with torch.autocast(device_type=student_feat.device.type, enabled=False):
            teacher = teacher_feat.detach().float()
            index, valid = SAMPLERS[self.sampling](teacher, offset, self.num_points)  # (B, k)
            x_s, x_t = student_feat.float()[index], teacher[index]                     # (B, k, C_s), (B, k, C_t)
            scale_s = _mean_pairwise_distance(x_s, valid) if self.normalize else None
            scale_t = _mean_pairwise_distance(x_t, valid) if self.normalize else None
            pairs_s, pairs_t = rips_pairs_batch([(x_s, valid), (x_t, valid)], self.workers)
            diag_s = diagrams_from_pairs(x_s, pairs_s, self.dims, scale_s)
            diag_t = diagrams_from_pairs(x_t, pairs_t, self.dims, scale_t)
            loss = sum(self.distance(*diag_s[d], *diag_t[d]).mean() for d in self.dims)
        return {"loss_kd_topo": loss * self.loss_weight}
