"""Argument parser, config parser, per-process setup and DDP wrapping, as Pointcept's ``defaults.py``."""
from __future__ import annotations

import argparse
import importlib
import multiprocessing as mp
import os
import time
from typing import Any

import torch
from torch import nn

from ..utils import comm
from ..utils.config import Config, OptionError, apply_options, parse_options
from ..utils.misc import set_seed

__all__ = ["default_argument_parser", "default_config_parser", "default_setup", "create_ddp_model",
           "default_device", "check_new_run", "ddp_options", "RUNTIME_KEYS", "AMP_DTYPE_NAMES", "DDP_DEFAULTS"]

# keys the engine reads with a default, so that a config may leave them out and an override may still set them
RUNTIME_KEYS = ("save_path", "weight", "resume", "overwrite", "evaluate", "test_only", "seed", "num_worker", "batch_size_val",
                "batch_size_test", "gradient_accumulation_steps", "clip_grad", "max_bad_steps", "deterministic",
                "sync_bn", "enable_amp", "amp_dtype", "empty_cache", "empty_cache_per_epoch", "find_unused_parameters",
                "ddp", "enable_wandb", "wandb_project", "wandb_key", "mix_prob", "param_dicts", "custom_imports",
                "balance_ranks")
AMP_DTYPE_NAMES = ("float16", "bfloat16")
# the config's ``ddp`` dict: DistributedDataParallel's communication options, defaults as before the key existed
# (bucket_cap_mb None: DDP's own, 25 MiB buckets after a first one of 1 MiB; a number sets every bucket's cap)
DDP_DEFAULTS = {"bucket_cap_mb": None, "static_graph": False, "gradient_as_bucket_view": False,
                "broadcast_buffers": False}


class _DictAction(argparse.Action):
    """``--options a.b=1 c=[1,2]`` -> ``{"a.b": 1, "c": [1, 2]}`` (Pointcept's value syntax)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        options = dict(getattr(namespace, self.dest, None) or {})
        try:
            options.update(parse_options(values))
        except ValueError as err:
            parser.error(str(err))
        setattr(namespace, self.dest, options)


def default_argument_parser(epilog: str | None = None) -> argparse.ArgumentParser:
    """Pointcept's flags: ``--config-file --num-gpus --num-machines --machine-rank --dist-url --options``."""
    parser = argparse.ArgumentParser(
        epilog=epilog or ("Single machine: --num-gpus N (CPU-only machines spawn N gloo processes). "
                          "Several machines: the same command on each, with --num-machines M, "
                          "--machine-rank i and --dist-url tcp://<rank-0 host>:<port>. Under torchrun the "
                          "environment (LOCAL_RANK, RANK, WORLD_SIZE) decides and --num-gpus is ignored."),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to config file")
    parser.add_argument("--num-gpus", type=int, default=1, help="number of processes (GPUs) per machine")
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument("--machine-rank", type=int, default=0, help="the rank of this machine")
    parser.add_argument("--dist-url", default="auto",
                        help="initialization URL for pytorch distributed backend; 'auto' picks a free "
                             "localhost port (one machine only)")
    parser.add_argument("--options", nargs="+", action=_DictAction, default={},
                        help="KEY=VALUE config overrides (dotted keys, list indices allowed)")
    return parser


def check_new_run(cfg: Config) -> None:
    """Refuse to start a run in a ``save_path`` that already holds one (``model/model_last.pth``,
    ``model/model_best.pth`` or a non-empty ``train.log``) unless ``resume`` or ``overwrite=True``: a new run
    would truncate its log and replace its checkpoints."""
    overwrite = cfg.get("overwrite", False)
    if overwrite not in (True, False, None):
        raise ValueError(f"overwrite must be True or False, not {overwrite!r}")
    if cfg.get("resume", False) or overwrite:
        return
    save_path = str(cfg.save_path)
    found = [os.path.join("model", name) for name in ("model_last.pth", "model_best.pth")
             if os.path.isfile(os.path.join(save_path, "model", name))]
    log = os.path.join(save_path, "train.log")
    if os.path.isfile(log) and os.path.getsize(log) > 0:
        found.append("train.log")
    if found:
        raise FileExistsError(
            f"save_path '{save_path}' already holds a run ({', '.join(found)}): not overwriting it. Resume it "
            f"(scripts/train.sh -r true, or resume=True weight=<its model_last.pth>), choose another experiment "
            f"name or save_path, or pass overwrite=True (scripts/train.sh ... -- overwrite=True) to start a new "
            f"run there, which truncates train.log and replaces its checkpoints.")


def default_config_parser(file_path: str, options: dict | None, dump: bool = True,
                          for_training: bool = False) -> Config:
    """Load a config (a file, or ``dataset-name`` for ``configs/dataset/name.py``), apply ``options`` (checked by
    ``apply_options``: ``OptionError`` for an unknown top-level key or a malformed value), draw a seed if none, set ``data.train.loop = epoch // eval_epoch``, create ``save_path/model`` and,
    unless resuming or ``dump=False``, write the merged config to ``save_path/config.py``.

    ``for_training`` (``tools/train.py``): first ``check_new_run``, so that starting a run in the folder of
    an earlier one is refused before anything is written."""
    if not os.path.isfile(file_path):
        dataset, _, name = file_path.partition("-")
        candidate = os.path.join("configs", dataset, f"{name}.py")
        if not name or not os.path.isfile(candidate):
            raise FileNotFoundError(f"config '{file_path}' is neither a file nor a configs/<dataset>/<name>.py "
                                    f"shorthand")
        file_path = candidate
    cfg = Config.fromfile(file_path)
    if options:
        apply_options(cfg, options, RUNTIME_KEYS)
    ddp_options(cfg, where=file_path)  # a bad ddp dict is reported before anything is written
    amp_dtype = cfg.get("amp_dtype", "float16")
    if amp_dtype not in AMP_DTYPE_NAMES:
        raise OptionError(f"{file_path}: amp_dtype={amp_dtype!r}: expected one of "
                          f"{', '.join(repr(n) for n in AMP_DTYPE_NAMES)}")
    if for_training:
        check_new_run(cfg)
        if cfg.get("enable_wandb", False):
            from .writers import require_wandb
            require_wandb()  # before config.py and the run's folders are written
    if cfg.get("seed") is None:
        cfg.seed = int.from_bytes(os.urandom(2), "little") + os.getpid() + int(time.time()) % 2**20
    for key in ("epoch", "eval_epoch"):
        if key not in cfg:
            raise KeyError(f"{file_path}: config has no '{key}'")
    if cfg.epoch % cfg.eval_epoch:
        raise ValueError(f"{file_path}: epoch={cfg.epoch} must be a multiple of eval_epoch={cfg.eval_epoch}")
    if "data" in cfg and "train" in cfg.data:
        cfg.data.train.loop = cfg.epoch // cfg.eval_epoch
    os.makedirs(os.path.join(cfg.save_path, "model"), exist_ok=True)
    if dump and not cfg.get("resume", False):
        cfg.dump(os.path.join(cfg.save_path, "config.py"))
    return cfg


def default_setup(cfg: Config) -> Config:
    """Per-process derived keys (``*_per_gpu``), checks, and seeding with ``seed + rank * num_worker_per_gpu``.

    ``deterministic`` (default: on without CUDA, off with it) turns on torch's deterministic algorithms,
    which exact (bit-identical) resume needs.

    ``custom_imports`` are imported again here, because spawned processes do not replay them.
    """
    for module in (cfg.get("custom_imports") or {}).get("imports", []):
        importlib.import_module(module)
    world_size = comm.get_world_size()
    cfg.num_worker = cfg.get("num_worker") if cfg.get("num_worker") is not None else mp.cpu_count()
    cfg.num_worker_per_gpu = cfg.num_worker // world_size
    for key in ("batch_size", "batch_size_val", "batch_size_test"):
        value = cfg.get(key)
        if value is not None and value % world_size:
            raise ValueError(f"{key}={value} (total over processes) is not divisible by the world size "
                             f"{world_size}")
    cfg.batch_size_per_gpu = cfg.batch_size // world_size
    cfg.batch_size_val_per_gpu = cfg.batch_size_val // world_size if cfg.get("batch_size_val") else 1
    cfg.batch_size_test_per_gpu = cfg.batch_size_test // world_size if cfg.get("batch_size_test") else 1
    if world_size > 1:
        # machines (or torchrun processes) that each parsed the config may have drawn different seeds;
        # the sampler's global order needs one, so every process takes rank 0's
        cfg.seed = comm.all_gather(cfg.seed)[0]
    set_seed(cfg.seed + comm.get_rank() * cfg.num_worker_per_gpu)
    deterministic = cfg.get("deterministic")
    if deterministic is None:
        deterministic = not torch.cuda.is_available()
    if deterministic:
        # scatter/index_add backward is otherwise order-dependent across threads, and an exact resume
        # needs every step to repeat bit for bit; warn_only: CUDA ops without a deterministic kernel warn
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return cfg


def default_device() -> torch.device:
    """This process's CUDA device (set by ``launch``), or the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def ddp_options(cfg: Any, where: str | None = None) -> dict[str, Any]:
    """The ``DistributedDataParallel`` keyword arguments of a config: its ``ddp`` dict (missing entries, or a
    missing or None ``ddp``, take ``DDP_DEFAULTS``) plus the top-level ``find_unused_parameters`` (default False).

    ``OptionError`` naming the key for an unknown entry or a value of the wrong type:
    ``bucket_cap_mb`` a positive number (MiB) or None (DDP's default, left out of the result), the others True or
    False. ``find_unused_parameters`` stays a top-level
    key (Pointcept's), so inside ``ddp`` it is refused too."""
    prefix = f"{where}: " if where else ""
    given = cfg.get("ddp")
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise OptionError(f"{prefix}ddp={given!r}: expected a dict of {', '.join(DDP_DEFAULTS)} (or None)")
    unknown = sorted(set(given) - set(DDP_DEFAULTS))
    if unknown:
        hint = (" (find_unused_parameters is a top-level config key, not a ddp entry)"
                if "find_unused_parameters" in unknown else "")
        raise OptionError(f"{prefix}ddp: unknown option(s) {', '.join(repr(k) for k in unknown)}; known: "
                          f"{', '.join(DDP_DEFAULTS)}{hint}")
    options = {**DDP_DEFAULTS, **given}
    for key, value in options.items():
        if key == "bucket_cap_mb":
            ok = value is None or isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
            expected = "a positive number (MiB) or None"
        else:
            ok = isinstance(value, bool)
            expected = "True or False"
        if not ok:
            raise OptionError(f"{prefix}ddp.{key}={value!r}: expected {expected}")
    unused = cfg.get("find_unused_parameters", False)
    if not isinstance(unused, bool):
        raise OptionError(f"{prefix}find_unused_parameters={unused!r}: expected True or False")
    if options["bucket_cap_mb"] is None:
        del options["bucket_cap_mb"]
    return {**options, "find_unused_parameters": unused}


def create_ddp_model(model: nn.Module, options: dict[str, Any] | None = None, **kwargs: Any) -> nn.Module:
    """Wrap in ``DistributedDataParallel`` when there is more than one process; else return ``model``.

    ``options``: DDP's keyword arguments as ``ddp_options`` gives them (the trainers pass their config's);
    ``kwargs`` are added to them (and win), e.g. ``device_ids``. Without either, DDP's own defaults."""
    if comm.get_world_size() == 1:
        return model
    kwargs = {**(options or {}), **kwargs}
    if next(model.parameters()).is_cuda:
        kwargs.setdefault("device_ids", [torch.cuda.current_device()])
        kwargs.setdefault("output_device", torch.cuda.current_device())
    return nn.parallel.DistributedDataParallel(model, **kwargs)
