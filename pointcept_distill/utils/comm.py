"""Distributed helpers (Pointcept's ``comm`` names); every one works without an initialised process group."""
from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.distributed as dist

__all__ = ["get_world_size", "get_rank", "get_local_rank", "get_local_size", "is_main_process",
           "synchronize", "all_reduce_sum", "average_gradients", "all_gather", "gather", "reduce_dict",
           "device_of_backend"]

# one process group per machine, set by engine.launch; None when running a single process
_LOCAL_PROCESS_GROUP: dist.ProcessGroup | None = None
_LOCAL_SIZE: int = 1


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if _initialized() else 1


def get_rank() -> int:
    return dist.get_rank() if _initialized() else 0


def get_local_rank() -> int:
    """Rank within this machine."""
    if not _initialized() or _LOCAL_PROCESS_GROUP is None:
        return get_rank() % max(_LOCAL_SIZE, 1)
    return dist.get_rank(group=_LOCAL_PROCESS_GROUP)


def get_local_size() -> int:
    """Number of processes on this machine."""
    if not _initialized() or _LOCAL_PROCESS_GROUP is None:
        return _LOCAL_SIZE
    return dist.get_world_size(group=_LOCAL_PROCESS_GROUP)


def set_local_group(group: dist.ProcessGroup | None, local_size: int) -> None:
    """Record this machine's process group (called by ``engine.launch``)."""
    global _LOCAL_PROCESS_GROUP, _LOCAL_SIZE
    _LOCAL_PROCESS_GROUP, _LOCAL_SIZE = group, local_size


def is_main_process() -> bool:
    return get_rank() == 0


def device_of_backend() -> torch.device:
    """The device collectives must use: CUDA for NCCL, CPU otherwise."""
    if _initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def synchronize() -> None:
    """Barrier across all processes; a no-op for one process."""
    if get_world_size() > 1:
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes (returns a new tensor on the input's device)."""
    if get_world_size() == 1:
        return tensor.clone()
    out = tensor.detach().to(device_of_backend()).clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(tensor.device)


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Average the gradients of ``params`` over all processes in place (one collective), as DDP does for the
    parameters it wraps; parameters without a gradient must be the same on every process."""
    grads = [p.grad for p in params if p.grad is not None]
    if get_world_size() == 1 or not grads:
        return
    total = all_reduce_sum(torch.cat([g.reshape(-1) for g in grads]))
    for grad, mean in zip(grads, (total / get_world_size()).split([g.numel() for g in grads])):
        grad.copy_(mean.view_as(grad))


def all_gather(data: Any) -> list[Any]:
    """Gather any picklable object from every process; returns the list ordered by rank."""
    if get_world_size() == 1:
        return [data]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, data)
    return out


def gather(data: Any, dst: int = 0) -> list[Any]:
    """Gather any picklable object on rank ``dst``; other ranks get an empty list."""
    if get_world_size() == 1:
        return [data]
    out: list[Any] | None = [None] * get_world_size() if get_rank() == dst else None
    dist.gather_object(data, out, dst=dst)
    return out if out is not None else []


def reduce_dict(values: dict[str, torch.Tensor], average: bool = True) -> dict[str, torch.Tensor]:
    """Sum (or average) a dict of scalar tensors over processes; keys must match on every rank."""
    if get_world_size() == 1:
        return dict(values)
    keys = sorted(values)
    stacked = all_reduce_sum(torch.stack([values[k].detach().float() for k in keys]))
    if average:
        stacked = stacked / get_world_size()
    return dict(zip(keys, stacked))


