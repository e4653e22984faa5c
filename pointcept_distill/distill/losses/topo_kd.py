"""Topology-aware distillation: match the Vietoris-Rips persistence diagrams of teacher and student features.

Per sample, a deterministic subsample of the (matched) points is taken; the H0 and H1 diagrams of its teacher
and student features (point clouds in feature space, Euclidean distances) are computed exactly on the CPU
(``persistence.rips_pairs_from_distances``), and made differentiable by recomputing the lengths of their critical
edges in torch. The official code instead runs a heuristic "H1" without gradient on the whole batch at once.

That host work overlaps with the rest of the step: ``TopologyKD.start`` queues the distances and their copy to pinned
host memory without waiting, and a background thread computes the pairs once the copy is done, while the caller
queues its other work; ``PendingTopology.result()`` then builds the loss (``forward`` does both at once).
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.util
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor, nn

from ...models.builder import LOSSES
from ...utils.misc import check_tensor
from .diagram_distance import chamfer_diagram_distance, sliced_wasserstein_diagram_distance
from .persistence import PersistencePairs, rips_pairs_from_distances
from .subsample import SAMPLERS

__all__ = ["TopologyKD", "PendingTopology", "persistence_diagrams", "shutdown_pools"]

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
_THREAD: ThreadPoolExecutor | None = None


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


def _host_thread() -> ThreadPoolExecutor:
    """The one background thread that waits for the distances to reach the host and computes their pairs."""
    global _THREAD
    if _THREAD is None:
        _THREAD = ThreadPoolExecutor(1, thread_name_prefix="topo_kd")
    return _THREAD


def shutdown_pools() -> None:
    """Stop the persistence thread and worker processes (they are started again on the next use)."""
    global _THREAD
    thread, _THREAD = _THREAD, None
    if thread is not None:      # first: its job may be using the processes
        thread.shutdown(wait=True, cancel_futures=True)
    while _POOLS:
        _POOLS.popitem()[1].shutdown(wait=True, cancel_futures=True)


def _to_host(t: Tensor) -> Tensor:
    """t on the CPU; from CUDA an asynchronous copy into pinned memory, readable once the stream has reached it."""
    if t.device.type != "cuda":
        return t.cpu()
    return torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)


def _to_device(t: Tensor, device: torch.device) -> Tensor:
    """t (on the CPU) on ``device``; to CUDA through pinned memory, without waiting for the queued work."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _pairs_job(clouds: list[tuple[Tensor, Tensor]], ready: torch.cuda.Event | None,
               workers: int) -> list[list[PersistencePairs]]:
    """The host work of ``submit_rips_pairs``: distances (B, k, k) and sizes (B,) of each cloud -> pairs."""
    if ready is not None:
        ready.synchronize()                                    # the copies to the host are done
    jobs = [d[:n, :n] for dist, sizes in clouds for d, n in zip(dist.numpy(), sizes.tolist())]
    pairs = list(_pool(workers).map(rips_pairs_from_distances, jobs)) if workers > 0 else \
        [rips_pairs_from_distances(d) for d in jobs]
    out, start = [], 0
    for dist, _ in clouds:
        out.append(pairs[start:start + len(dist)])
        start += len(dist)
    return out


def submit_rips_pairs(clouds: list[tuple[Tensor, Tensor]],
                      workers: int = 0) -> Future[list[list[PersistencePairs]]]:
    """Start computing the persistence pairs of each sample of each (x (B, k, C), valid (B, k)) in ``clouds``
    (all on one device).

    Queues the float64 distances (so that the edge order is that of the exact lengths) and valid sizes on x's
    device, and their copies to the host, without waiting for them; the background thread then computes the pairs,
    sending all samples of all clouds to the ``workers`` processes at once (0: one after another in the thread).
    Returns a future of ``rips_pairs_batch``'s result.
    """
    host = [(_to_host(_squared_distances(x.detach().double()).sqrt()),      # (B, k, k)
             _to_host(valid.sum(1))) for x, valid in clouds]                 # (B,)
    ready = None
    if clouds and clouds[0][0].device.type == "cuda":
        ready = torch.cuda.current_stream(clouds[0][0].device).record_event()
    return _host_thread().submit(_pairs_job, host, ready, workers)


def rips_pairs_batch(clouds: list[tuple[Tensor, Tensor]], workers: int = 0) -> list[list[PersistencePairs]]:
    """Persistence pairs of each sample of each (x (B, k, C), valid (B, k)) in ``clouds``, on the CPU.

    All samples of all clouds go to the ``workers`` processes at once (0: computed one after another).
    """
    return submit_rips_pairs(clouds, workers).result()


def diagrams_from_pairs(x: Tensor, pairs: list[PersistencePairs], dims: tuple[int, ...],
                        scale: Tensor | None = None) -> dict[int, tuple[Tensor, Tensor]]:
    """``{dim: (points (B, P, 2), mask (B, P))}``: the critical edge lengths of ``pairs`` recomputed from x (B, k, C)
    in torch (differentiable), divided by ``scale`` (B,) if given."""
    out = {}
    for dim in dims:
        birth, death, mask = (_to_device(t, x.device) for t in _critical_edges(pairs, dim))
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
    ``start(...)`` then ``.result()`` lets other work be queued while the pairs are computed on the host.

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
        workers: processes computing the persistence pairs of the 2B clouds of a step in parallel (0: in the
            background thread, where they hold the GIL). The pairs are host work; on a GPU machine with idle cores,
            8 workers cut their time several-fold.
    """

    # what its KD loss hook passes, once per captured stage (fields of distill.step.MatchedStage); the hook
    # calls ``start`` as soon as the step's shared work is done and collects the result last
    stage_inputs = ("student_feat", "teacher_feat", "offset")

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

    def start(self, student_feat: Tensor, teacher_feat: Tensor, offset: Tensor) -> PendingTopology:
        """Queue the device work and start the host work of the loss; ``.result()`` of the return value gives it.

        Args:
            student_feat: (N, C_s) student features, matched point by point with the teacher's.
            teacher_feat: (N, C_t) teacher features (detached here).
            offset: (B,) cumulative point counts.
        """
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
            pairs = submit_rips_pairs([(x_s, valid), (x_t, valid)], self.workers)
        return PendingTopology(self, pairs, x_s, x_t, scale_s, scale_t)

    def forward(self, student_feat: Tensor, teacher_feat: Tensor, offset: Tensor) -> dict[str, Tensor]:
        return self.start(student_feat, teacher_feat, offset).result()


@dataclass
class PendingTopology:
    """A ``TopologyKD`` loss whose persistence pairs are being computed on the host (``TopologyKD.start``)."""

    loss: TopologyKD
    pairs: Future[list[list[PersistencePairs]]]     # [student pairs, teacher pairs], B each
    x_s: Tensor                     # (B, k, C_s) subsampled student features
    x_t: Tensor                     # (B, k, C_t) subsampled teacher features, detached
    scale_s: Tensor | None          # (B,) their mean pairwise distances, if normalized
    scale_t: Tensor | None

    def result(self) -> dict[str, Tensor]:
        """``{"loss_kd_topo": loss}``, once the pairs are there (an error of their computation is raised here)."""
        pairs_s, pairs_t = self.pairs.result()
        kd = self.loss
        with torch.autocast(device_type=self.x_s.device.type, enabled=False):
            diag_s = diagrams_from_pairs(self.x_s, pairs_s, kd.dims, self.scale_s)
            diag_t = diagrams_from_pairs(self.x_t, pairs_t, kd.dims, self.scale_t)
            loss = sum(kd.distance(*diag_s[d], *diag_t[d]).mean() for d in kd.dims)
        return {"loss_kd_topo": loss * kd.loss_weight}
