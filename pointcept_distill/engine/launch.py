"""``launch``: run a function in one process, in one process per GPU (NCCL), in N CPU processes (gloo),
or under ``torchrun``."""
from __future__ import annotations

import datetime
import os
import socket
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ..utils import comm

__all__ = ["launch", "DEFAULT_TIMEOUT", "under_torchrun"]

DEFAULT_TIMEOUT = datetime.timedelta(minutes=60)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def under_torchrun() -> bool:
    """True when started by ``torchrun`` (or any launcher that sets LOCAL_RANK, RANK and WORLD_SIZE)."""
    return all(k in os.environ for k in ("LOCAL_RANK", "RANK", "WORLD_SIZE"))


def launch(main_func: Callable[..., Any], num_gpus_per_machine: int, num_machines: int = 1,
           machine_rank: int = 0, dist_url: str | None = "auto", cfg: tuple = (),
           timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> None:
    """Call ``main_func(*cfg)`` in every process of the job.

    - under torchrun: this process joins the job described by the environment;
    - ``num_machines * num_gpus_per_machine == 1``: called directly, no process group;
    - otherwise ``num_gpus_per_machine`` processes are spawned on this machine, with NCCL on CUDA
      machines and gloo on CPU-only ones. ``dist_url='auto'`` (one machine only) picks a free port.
    """
    if under_torchrun():
        _torchrun_worker(main_func, cfg, timeout)
        return
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        main_func(*cfg)
        return
    if dist_url in (None, "auto"):
        if num_machines != 1:
            raise ValueError("launch: dist_url='auto' works on one machine only; pass tcp://<host>:<port>")
        dist_url = f"tcp://127.0.0.1:{_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        raise ValueError("launch: file:// init is unreliable across machines; use tcp://<host>:<port>")
    mp.spawn(_distributed_worker, nprocs=num_gpus_per_machine,
             args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, cfg, timeout),
             daemon=False)


def _share_cpu_threads(local_size: int) -> None:
    # processes of one machine would each start one thread per core (GPU runs do host work too: the
    # persistence pairs, data glue); split the cores instead
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_size))


def _make_local_groups(num_machines: int, per_machine: int, machine_rank: int) -> None:
    for machine in range(num_machines):
        group = dist.new_group(list(range(machine * per_machine, (machine + 1) * per_machine)))
        if machine == machine_rank:
            comm.set_local_group(group, per_machine)


def _distributed_worker(local_rank: int, main_func: Callable[..., Any], world_size: int,
                        num_gpus_per_machine: int, machine_rank: int, dist_url: str, cfg: tuple,
                        timeout: datetime.timedelta) -> None:
    backend = _backend()
    if backend == "nccl":
        if num_gpus_per_machine > torch.cuda.device_count():
            raise RuntimeError(f"launch: --num-gpus {num_gpus_per_machine} but only "
                               f"{torch.cuda.device_count()} CUDA devices are visible")
        torch.cuda.set_device(local_rank)
    _share_cpu_threads(num_gpus_per_machine)
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    dist.init_process_group(backend=backend, init_method=dist_url, world_size=world_size, rank=global_rank,
                            timeout=timeout)
    try:
        _make_local_groups(world_size // num_gpus_per_machine, num_gpus_per_machine, machine_rank)
        comm.synchronize()
        main_func(*cfg)
        # every rank is done before any tears its connections down (gloo aborts a peer still using them)
        comm.synchronize()
    finally:
        dist.destroy_process_group()


def _torchrun_worker(main_func: Callable[..., Any], cfg: tuple, timeout: datetime.timedelta) -> None:
    local_rank, world_size = int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    backend = _backend()
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    _share_cpu_threads(local_size)
    dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    try:
        rank = dist.get_rank()
        _make_local_groups(world_size // local_size, local_size, rank // local_size)
        comm.synchronize()
        main_func(*cfg)
        # every rank is done before any tears its connections down (gloo aborts a peer still using them)
        comm.synchronize()
    finally:
        dist.destroy_process_group()
