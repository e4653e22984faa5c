"""``TRAINERS``, ``TrainerBase`` (the loop and the hook calls) and ``Trainer`` ("DefaultTrainer").

``Trainer`` follows Pointcept's ``DefaultTrainer``: the same config keys, build order, hook lifecycle,
``comm_info`` and checkpoint dict. What it adds: exact resume (random states and the position inside
an epoch are saved), deterministic data loading (``engine/dataloader.py``), non-finite losses skipped (an
update that makes weights non-finite, or an epoch whose every step was skipped, stops the run before that
state is evaluated or saved), loss dicts with several ``loss_*`` terms, a stage where hooks add loss terms to a
step (``HookBase.after_forward``), and a training step split into overridable parts (``compute_loss``,
``total_loss``, ``backward``, ``optimizer_step``) for subclasses such as a distillation trainer. With
``captured_step`` the step's forward, losses, backward and optimizer step replay CUDA graphs
(``engine/captured_step.py``).
"""
from __future__ import annotations

import math
import os
import weakref
from functools import partial
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..utils import comm
from ..utils.amp import AMP_DTYPES
from ..utils.events import EventStorage
from ..utils.logger import get_root_logger
from ..utils.misc import derive_seed, get_rng_state, set_rng_state
from ..utils.optimizer import build_optimizer
from ..utils.registry import Registry
from ..utils.scheduler import build_scheduler
from ..utils.tensors import to_device
from .captured_step import CapturedTrainStep, captured_step_options, stepping_by
from .checkpoint import CheckpointError
from .dataloader import (EpochSampler, SeededCollate, SeededSamples, build_train_sampler, planned_collate,
                         worker_init_fn)
from .defaults import create_ddp_model, ddp_options, default_device
from .hooks.base import HookBase, build_hooks
from .loss_terms import is_loss_key, sum_losses
from .writers import require_wandb

__all__ = ["TRAINERS", "TrainerBase", "Trainer", "is_loss_key", "sum_losses"]

TRAINERS = Registry("trainers")


def _plain(value: Any) -> Any:
    """A config value as plain dicts and lists (what a checkpoint loaded with ``weights_only`` may hold)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else key))
    return flat


def adds_loss_terms(hook: HookBase) -> bool:
    """Whether ``hook`` adds entries to the step after its forward (overrides ``after_forward``)."""
    return type(hook).after_forward is not HookBase.after_forward


class TrainerBase:
    """Owns the epoch/iteration loop and calls the hooks; knows nothing of models or data."""

    def __init__(self) -> None:
        self.hooks: list[HookBase] = []
        self.epoch = 0
        self.start_epoch = 0
        self.start_iter = 0  # iterations of ``start_epoch`` already done (mid-epoch resume)
        self.max_epoch = 0
        self.comm_info: dict[str, Any] = {}
        self.storage: EventStorage = EventStorage()
        self.completed = False  # True once every epoch ran; after_train hooks check it
        self.writer: Any = None
        self.logger = get_root_logger()

    def register_hooks(self, hooks: list[HookBase]) -> None:
        for hook in hooks:
            if not isinstance(hook, HookBase):
                raise TypeError(f"{type(self).__name__}: hook {hook!r} is not a HookBase")
            hook.trainer = weakref.proxy(self)
        self.hooks.extend(hooks)

    def train(self) -> None:
        self.storage, self.completed = EventStorage(), False
        try:
            self.before_train()
            for self.epoch in range(self.start_epoch, self.max_epoch):
                self.run_epoch()
            self.completed = True
        except Exception:
            self.logger.exception(f"Training stopped in epoch {self.epoch + 1} by an exception")
            raise
        finally:
            self.after_train()

    def run_epoch(self) -> None:
        raise NotImplementedError

    def _call(self, event: str) -> None:
        for hook in self.hooks:
            getattr(hook, event)()

    def before_train(self) -> None:
        self._call("before_train")

    def before_epoch(self) -> None:
        self._call("before_epoch")

    def before_step(self) -> None:
        self._call("before_step")

    def after_forward(self, output: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``output`` with every hook's ``after_forward`` entries added, hook by hook (each sees the earlier ones)."""
        output = dict(output)
        for hook in self.hooks:
            added = hook.after_forward(output)
            clash = sorted(output.keys() & added.keys())
            if clash:
                raise KeyError(f"{type(hook).__name__}.after_forward: {clash} already in the step's output")
            output.update(added)
        return output

    def after_step(self) -> None:
        self._call("after_step")

    def after_epoch(self) -> None:
        self._call("after_epoch")
        self.storage.reset_histories()

    def after_train(self) -> None:
        try:
            if self.completed:
                comm.synchronize()
            self._call("after_train")
        finally:
            if self.writer is not None:
                self.writer.close()


@TRAINERS.register_module("DefaultTrainer")
class Trainer(TrainerBase):
    """Pointcept's default trainer: model, loaders, optimizer, per-step scheduler, AMP, hooks from ``cfg``.

    One training step (``run_step``): ``compute_loss`` -> the hooks' ``after_forward`` terms (together:
    ``forward_losses``) -> ``total_loss`` (sum of the ``loss`` and ``loss_*`` terms) -> finite check (all
    processes agree) -> ``backward`` -> every ``gradient_accumulation_steps`` micro-batches, and at the end of
    each epoch, ``optimizer_step`` (clip, step, scheduler step). ``comm_info['model_output_dict']`` gets every
    scalar the step produced.
    """

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        if cfg.get("enable_wandb", False) and comm.is_main_process():
            require_wandb()  # a missing package stops the run before anything is written
        self.cfg = cfg
        self.max_epoch = cfg.eval_epoch
        self.best_metric_value = -float("inf")
        self.accumulation_counter = 0
        self.bad_steps = 0
        self.epoch_good_steps = 0  # steps of this epoch whose loss was finite (backpropagated)
        self._pending_rng_state: dict | None = None
        self.logger = get_root_logger(os.path.join(cfg.save_path, "train.log"),
                                      "a" if cfg.get("resume") else "w")
        self.logger.info(f"Save path: {cfg.save_path}")
        self.logger.info(f"Config:\n{cfg.pretty_text}")
        self.device = default_device()
        self.amp_enabled = bool(cfg.get("enable_amp", False))
        self.amp_dtype = AMP_DTYPES[cfg.get("amp_dtype", "float16")]
        self.accum_steps = int(cfg.get("gradient_accumulation_steps", 1))
        self.max_bad_steps = int(cfg.get("max_bad_steps", 5))
        self.logger.info("=> Building model ...")
        self.model = self.build_model()
        self.writer = self.build_writer()
        self.logger.info("=> Building train dataset & dataloader ...")
        self.train_loader = self.build_train_loader()
        self.logger.info("=> Building val dataset & dataloader ...")
        self.val_loader = self.build_val_loader()
        self.logger.info("=> Building optimize, scheduler, scaler(amp) ...")
        self.optimizer = self.build_optimizer()
        self.scheduler = self.build_scheduler()
        self.scaler = self.build_scaler()
        self.logger.info("=> Building hooks ...")
        self.register_hooks(self.build_hooks())
        self.captured_step = self.build_captured_step()

    # ----------------------------------------------------------------- building blocks (overridable)
    def build_model(self) -> nn.Module:
        from ..models import build_model
        model = build_model(self.cfg.model)
        if self.cfg.get("sync_bn", False) and self.device.type != "cuda":
            self.logger.warning("sync_bn=True ignored: torch's SyncBatchNorm needs CUDA; BatchNorm statistics "
                                "stay per process")
        elif self.cfg.get("sync_bn", False):
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.logger.info(f"Num params: {n_params}")
        return create_ddp_model(model.to(self.device), ddp_options(self.cfg))

    def build_writer(self) -> Any:
        """TensorBoard's ``SummaryWriter`` on the main process; with ``enable_wandb`` it and a
        ``WandbWriter`` (the same scalars and steps) behind one ``MultiWriter``."""
        if not comm.is_main_process():
            return None
        from torch.utils.tensorboard import SummaryWriter
        self.logger.info(f"Tensorboard writer logging dir: {self.cfg.save_path}")
        writer = SummaryWriter(self.cfg.save_path)
        if not self.cfg.get("enable_wandb", False):
            return writer
        from .writers import MultiWriter, WandbWriter
        wandb_writer = WandbWriter(self.cfg)
        self.logger.info(f"Weights & Biases run {wandb_writer.run.name!r} in project "
                         f"{self.cfg.get('wandb_project')!r}: the TensorBoard scalars")
        return MultiWriter([writer, wandb_writer])

    def train_collate_fn(self) -> Callable[[list], Any]:
        """Pointcept's collate; when ``plans_batches`` the loader's workers also plan each batch for the model's
        strides (its ``plan``), so that no forward reads sizes back from the device."""
        from ..data.collate import point_collate_fn
        collate = partial(point_collate_fn, mix_prob=self.cfg.get("mix_prob", 0))
        if not self.plans_batches():
            return collate
        return partial(planned_collate, collate, self.model_without_ddp.backbone.strides)

    def plans_batches(self) -> bool:
        """Whether training batches carry their host-side plan: a captured step needs it (``auto``: on CUDA)."""
        options = captured_step_options(self.cfg)
        return options is not None and (options["enabled"] is True or self.device.type == "cuda")

    def val_collate_fn(self) -> Callable[[list], Any]:
        from ..data.collate import collate_fn
        return collate_fn

    def _loader(self, dataset: Any, sampler: EpochSampler, batch_size: int, collate: Callable,
                drop_last: bool) -> DataLoader:
        workers = int(self.cfg.get("num_worker_per_gpu", 0))
        seed, rank = self.cfg.seed, comm.get_rank()
        return DataLoader(SeededSamples(dataset, seed), batch_size=batch_size, sampler=sampler, num_workers=workers,
                          collate_fn=SeededCollate(collate), pin_memory=self.device.type == "cuda",
                          drop_last=drop_last, persistent_workers=workers > 0,
                          worker_init_fn=partial(worker_init_fn, num_workers=workers, rank=rank, seed=seed),
                          generator=torch.Generator().manual_seed(derive_seed(seed, rank)))

    def build_train_loader(self) -> DataLoader:
        from ..data.builder import build_dataset
        dataset = build_dataset(self.cfg.data.train)
        sampler = build_train_sampler(dataset, self.cfg.seed, self.cfg.batch_size_per_gpu,
                                      self.cfg.get("balance_ranks", 0))
        return self._loader(dataset, sampler, self.cfg.batch_size_per_gpu, self.train_collate_fn(),
                            drop_last=len(dataset) > self.cfg.batch_size)

    def build_val_loader(self) -> DataLoader | None:
        if not self.cfg.get("evaluate", True):
            return None
        from ..data.builder import build_dataset
        dataset = build_dataset(self.cfg.data.val)
        sampler = EpochSampler(len(dataset), shuffle=False, seed=self.cfg.seed, rank=comm.get_rank(),
                               world_size=comm.get_world_size(), pad=False)
        return self._loader(dataset, sampler, self.cfg.batch_size_val_per_gpu,
                            self.val_collate_fn(), drop_last=False)

    def build_optimizer(self) -> torch.optim.Optimizer:
        return build_optimizer(self.cfg.optimizer, self.model, self.cfg.get("param_dicts"))

    def steps_per_epoch(self) -> int:
        """Optimizer steps per trainer epoch (a partial accumulation is stepped at epoch end)."""
        return math.ceil(len(self.train_loader) / self.accum_steps)

    def build_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        self.cfg.scheduler.total_steps = self.steps_per_epoch() * self.max_epoch
        return build_scheduler(self.cfg.scheduler, self.optimizer)

    def build_scaler(self) -> torch.amp.GradScaler | None:
        if self.amp_enabled and self.amp_dtype == torch.float16:
            return torch.amp.GradScaler(self.device.type)
        return None

    def build_hooks(self) -> list[HookBase]:
        return build_hooks(self.cfg.hooks)

    def build_captured_step(self) -> CapturedTrainStep | None:
        """The ``captured_step`` (engine/captured_step.py) or None (eager steps); what it cannot run is an error
        naming the config key or hook."""
        options = captured_step_options(self.cfg)
        if options is None:
            return None
        auto = options.pop("enabled") == "auto"
        problems = self.capture_problems()
        if auto and (problems or self.device.type != "cuda"):
            self.logger.info(f"captured_step.enabled=auto: eager steps ({'; '.join(problems) or 'not on CUDA'})")
            return None
        if problems:
            raise ValueError(f"captured_step cannot run with: {'; '.join(problems)}. Set captured_step.enabled=False "
                             f"(or 'auto') to train with eager steps.")
        dtype = self.amp_dtype if self.amp_enabled else None
        self.logger.info(f"Training steps from CUDA graphs (captured_step={options})")
        return CapturedTrainStep(self.model, self.optimizer, dtype, self.scaler, self.cfg.get("clip_grad"),
                                 losses=self.captured_losses(), **options)

    def captured_losses(self) -> Callable[[dict], dict[str, torch.Tensor]]:
        """What the captured step's graphs compute from a padded batch before the backward: ``forward_losses``,
        or the model alone where that is the same (no other ``compute_loss``, no hook adding terms: no hook code
        runs inside the graphs)."""
        adds = any(map(adds_loss_terms, self.hooks))
        return self.forward_losses if adds or type(self).compute_loss is not Trainer.compute_loss else self.model

    def capture_problems(self) -> list[str]:
        """What a captured step cannot run (yet), each named: DDP, SyncBatchNorm, accumulation, hooks adding loss
        terms that are not ``capturable``."""
        problems = []
        if self.model_is_ddp:
            problems.append("DDP (more than one process)")
        if any(isinstance(m, nn.SyncBatchNorm) for m in self.model.modules()):
            problems.append("sync_bn=True")
        if self.accum_steps != 1:
            problems.append(f"gradient_accumulation_steps={self.accum_steps}")
        adding = [getattr(h, "name", type(h).__name__) for h in self.hooks if adds_loss_terms(h) and not h.capturable]
        if adding:
            problems.append(f"loss terms added after the forward by hooks that cannot be captured "
                            f"({', '.join(adding)})")
        return problems

    # ------------------------------------------------------------------------------------- the loop
    @property
    def model_without_ddp(self) -> nn.Module:
        return self.model.module if self.model_is_ddp else self.model

    @property
    def model_is_ddp(self) -> bool:
        return isinstance(self.model, nn.parallel.DistributedDataParallel)

    @property
    def global_iter(self) -> int:
        """1-based count of iterations since the start of training (for logging)."""
        return self.epoch * len(self.train_loader) + self.comm_info.get("iter", 0) + 1

    @property
    def total_iters(self) -> int:
        """Iterations of the whole training run."""
        return self.max_epoch * len(self.train_loader)

    def remaining_iters(self) -> int:
        return self.total_iters - self.global_iter

    def run_epoch(self) -> None:
        start = self.start_iter if self.epoch == self.start_epoch else 0
        self.train_loader.sampler.set_epoch(self.epoch, start * self.train_loader.batch_size)
        self.model.train()
        self.before_epoch()
        if self._pending_rng_state is not None:
            # restored here, not in before_train, so that nothing between the save and the first step
            # of the resumed run draws from the generators in one run and not the other
            set_rng_state(self._pending_rng_state)
            self._pending_rng_state = None
        self.epoch_good_steps = 0
        for i, input_dict in enumerate(self.train_loader, start=start):
            self.comm_info["iter"], self.comm_info["input_dict"] = i, input_dict
            self.before_step()
            self.run_step()
            self.after_step()
        skipped = len(self.train_loader) - start
        if skipped and not self.epoch_good_steps:
            # evaluating and saving an epoch that trained nothing would report the run as done
            raise FloatingPointError(f"all {skipped} steps of epoch {self.epoch + 1} were skipped (non-finite "
                                     f"losses): stopping before evaluating or saving it. Check the data for "
                                     f"NaN/inf values; try a lower lr, clip_grad, or amp_dtype='bfloat16'.")
        self.log_cuda_statistics()
        self.after_epoch()
        if self.cfg.get("empty_cache_per_epoch", False) and self.device.type == "cuda":
            torch.cuda.empty_cache()

    def log_cuda_statistics(self) -> None:
        """On CUDA, after an epoch: the captured step's graph counts so far and the epoch's peak memory."""
        if self.device.type != "cuda":
            return
        line = f"Peak CUDA memory of the epoch: {torch.cuda.max_memory_allocated(self.device) / 2 ** 20:.0f} MiB"
        torch.cuda.reset_peak_memory_stats(self.device)
        step = self.captured_step
        if step is not None:
            line += (f"; captured_step: {step.steps} steps, {step.captures} graphs captured ({step.num_graphs} held), "
                     f"{100 * (1 - step.captures / max(step.steps, 1)):.1f} % of steps replayed a captured graph")
        self.logger.info(line)

    def to_device(self, obj: Any) -> Any:
        """``obj`` (a batch: tensors in dicts and lists) on this trainer's device."""
        return to_device(obj, self.device)

    def run_step(self) -> None:
        input_dict = self.to_device(self.comm_info["input_dict"])
        if self.captured_step is not None:
            output = self.captured_step(input_dict)           # forward, losses and backward
            loss = self.total_loss(output)
            finite = self.loss_is_finite(loss)
        else:
            output, loss, finite = self.eager_forward_backward(input_dict)
        if finite:
            self.bad_steps = 0
            self.epoch_good_steps += 1
            self.accumulation_counter += 1
        else:
            self.skip_bad_step(loss)
        last = self.comm_info["iter"] + 1 == len(self.train_loader)
        if self.accumulation_counter and (self.accumulation_counter >= self.accum_steps or last):
            self.optimizer_step()
            self.accumulation_counter = 0
            self.check_weights_finite()
        if self.cfg.get("empty_cache", False) and self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.comm_info["model_output_dict"] = self.loggable_outputs(output, loss)

    def eager_forward_backward(self, input_dict: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor, bool]:
        """The step's output, total loss and whether it is finite; its backward when it is (gradients zeroed at the
        first micro-batch of an accumulation)."""
        if self.accumulation_counter == 0:
            self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=self.amp_enabled, dtype=self.amp_dtype):
            output = self.forward_losses(input_dict)
        loss = self.total_loss(output)
        finite = self.loss_is_finite(loss)
        if finite:
            self.backward(loss / self.accum_steps)
        return output, loss, finite

    def forward_losses(self, input_dict: dict) -> dict[str, torch.Tensor]:
        """The step's output before its backward: ``compute_loss``, then the terms the hooks add (``after_forward``)."""
        return self.after_forward(self.compute_loss(input_dict))

    def compute_loss(self, input_dict: dict) -> dict[str, torch.Tensor]:
        """The model's output dict in train mode; override to change the forward (hooks add terms after it)."""
        return self.model(input_dict)

    def total_loss(self, output: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum_losses(output, f"{type(self).__name__}.compute_loss")

    def loss_is_finite(self, loss: torch.Tensor) -> bool:
        """True if the loss is finite on every process (so that all of them skip a bad step together)."""
        bad = torch.tensor([0.0 if torch.isfinite(loss.detach()).all() else 1.0])
        return float(comm.all_reduce_sum(bad)) == 0

    def where(self) -> str:
        """The current step, for messages: ``epoch E, iteration I (global G)``, all 1-based."""
        return f"epoch {self.epoch + 1}, iteration {self.comm_info['iter'] + 1} (global {self.global_iter})"

    def check_weights_finite(self) -> None:
        """After an optimizer step: raise ``FloatingPointError`` if the update made a trained parameter NaN or
        infinite (on any process), so that the run stops before hooks evaluate or save that state."""
        params = self.trained_parameters()
        # one multi-tensor norm per dtype and device and one read back per step; a NaN or inf makes its norm
        # non-finite (so may an overflowing norm of finite weights: the names are then checked element-wise)
        norms_finite = bool(torch.stack([n.float() for n in torch._foreach_norm([p.detach() for p in params])])
                            .isfinite().all())
        named = {} if norms_finite else {id(p): n for n, p in self.model_without_ddp.named_parameters()}
        names = [named.get(id(p), f"trained parameter {i}") for i, p in enumerate(params)
                 if not norms_finite and not torch.isfinite(p.detach()).all()]
        if float(comm.all_reduce_sum(torch.tensor([float(len(names))]))) == 0:
            return
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise FloatingPointError(f"update at {self.where()} made weights non-finite ({shown or 'on another process'})"
                                 f" although the loss was finite; stopping before this state is evaluated or "
                                 f"saved (model_last.pth keeps the last saved state). Try a lower lr, clip_grad, or "
                                 f"amp_dtype='bfloat16'.")

    def skip_bad_step(self, loss: torch.Tensor) -> None:
        self.bad_steps += 1
        where = self.where()
        self.logger.warning(f"Non-finite loss ({float(loss.detach()):.4g} here) at {where}: step skipped "
                            f"({self.bad_steps}/{self.max_bad_steps} consecutive)")
        if self.bad_steps >= self.max_bad_steps:
            raise FloatingPointError(f"{self.bad_steps} consecutive non-finite losses, the last at {where}; "
                                     f"stopping (config key max_bad_steps={self.max_bad_steps}). Try a lower "
                                     f"lr, clip_grad, or amp_dtype='bfloat16'.")

    def backward(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def trained_parameters(self) -> list[nn.Parameter]:
        """The parameters that ``clip_grad`` clips together: the model's (subclasses that train more add theirs)."""
        return list(self.model.parameters())

    def optimizer_step(self) -> None:
        """Clip, step, and step the scheduler, which is skipped when fp16 overflow skipped the step. A captured
        step clips and steps in its optimizer graph (``CapturedTrainStep.step``)."""
        clip = self.cfg.get("clip_grad")
        step = self.optimizer.step if self.captured_step is None else self.captured_step.step
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
            if clip is not None and self.captured_step is None:
                nn.utils.clip_grad_norm_(self.trained_parameters(), clip)
            with stepping_by(self.optimizer, step):
                self.scaler.step(self.optimizer)
            scale = self.scaler.get_scale()
            self.scaler.update()
            if scale <= self.scaler.get_scale():
                self.scheduler.step()
            return
        if clip is not None and self.captured_step is None:
            nn.utils.clip_grad_norm_(self.trained_parameters(), clip)
        step()
        self.scheduler.step()

    def loggable_outputs(self, output: dict, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        logged = {k: v.detach() for k, v in output.items() if isinstance(v, torch.Tensor) and v.numel() == 1}
        logged.setdefault("loss", loss.detach())
        return logged

    # ------------------------------------------------------------------------------ checkpoint state
    def training_state(self, epochs_done: int, iters_done: int) -> dict:
        """Pointcept's checkpoint dict plus our resume keys; collective (gathers every rank's RNG state)."""
        rng_states = comm.all_gather(get_rng_state())
        return {
            "epoch": epochs_done,
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "best_metric_value": self.best_metric_value,
            "iter": iters_done,
            "rng_states": rng_states,
            "seed": self.cfg.seed,
            "world_size": comm.get_world_size(),
            "run_settings": self.run_settings(),
        }

    def run_settings(self) -> dict:
        """What a resumed run must share with the run that wrote the checkpoint (``check_run_settings``): the
        optimizer, the schedule with the ``total_steps`` it was built for, ``param_dicts`` and the epoch counts.
        Plain types only; subclasses add theirs."""
        cfg = self.cfg
        return _plain({"optimizer": cfg.optimizer, "scheduler": cfg.scheduler, "param_dicts": cfg.get("param_dicts"),
                       "epoch": cfg.epoch, "eval_epoch": cfg.eval_epoch})

    def check_run_settings(self, saved: dict | None, source: str) -> None:
        """Refuse (``CheckpointError``) to resume with settings that differ from the checkpoint's ``run_settings``,
        naming each change: the saved optimizer state and schedule would override them silently, or fail inside
        the scheduler. A checkpoint without them (Pointcept's, older ones) is not compared."""
        if saved is None:
            self.logger.info(f"'{source}' does not record its run's optimizer, schedule and epochs: not compared")
            return
        old, new = _flatten(saved), _flatten(self.run_settings())
        unset = object()

        def shown(values: dict, key: str) -> str:
            return repr(values[key]) if key in values else "unset"

        changes = [f"{key}: {shown(old, key)} -> {shown(new, key)}"
                   for key in sorted(old.keys() | new.keys()) if old.get(key, unset) != new.get(key, unset)]
        if changes:
            raise CheckpointError(
                f"resume from '{source}': the config differs from the run that wrote it ({'; '.join(changes)}). "
                f"Resuming continues that run's optimizer state and learning-rate schedule, so these changes are "
                f"refused: undo them (scripts/train.sh -r true resumes with the run's own config.py), or start a "
                f"new run from these weights with resume=False weight={source} (a fresh optimizer and schedule; "
                f"another save_path, or overwrite=True)")

    def restore_training_state(self, ckpt: dict, source: str) -> None:
        """Resume from ``ckpt``; our extra keys are optional, so Pointcept checkpoints resume too."""
        for key in ("epoch", "optimizer", "scheduler"):
            if key not in ckpt:
                raise CheckpointError(f"checkpoint '{source}' has no '{key}' key, so it cannot be resumed "
                                      f"(use it as weight with resume=False)")
        self.start_epoch = int(ckpt["epoch"])
        self.start_iter = int(ckpt.get("iter", 0) or 0)
        self.best_metric_value = ckpt.get("best_metric_value", -float("inf"))
        self.check_run_settings(ckpt.get("run_settings"), source)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        elif self.scaler is not None:
            self.logger.warning(f"'{source}' has no GradScaler state: starting fp16 loss scaling afresh")
        elif ckpt.get("scaler") is not None:
            self.logger.info(f"'{source}' holds a GradScaler state; not used (no fp16 AMP in this run)")
        rng_states = ckpt.get("rng_states")
        if rng_states and len(rng_states) == comm.get_world_size():
            self._pending_rng_state = rng_states[comm.get_rank()]
        else:
            self.logger.warning(f"'{source}' has no random states for {comm.get_world_size()} process(es): "
                                f"the resumed run will not repeat the interrupted one exactly")
        if ckpt.get("seed") is not None and ckpt["seed"] != self.cfg.seed:
            self.logger.warning(f"'{source}' was written with seed {ckpt['seed']}, this run has seed "
                                f"{self.cfg.seed}: data order differs from the interrupted run")
        self.logger.info(f"Resuming train at eval epoch: {self.start_epoch}, iteration: {self.start_iter}")
