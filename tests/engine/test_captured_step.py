"""The captured training step (engine/captured_step.py, config key ``captured_step``): it trains the tiny PT-v3m1
as the eager trainer does, learning-rate changes reach it without a new capture, non-finite losses skip it, and
what it cannot run is refused by name. On the CPU the padded step runs eagerly (drawn order permutations, masked
batch norms, the separate optimizer step); on CUDA the same tests run the graphs (and check they were captured and
replayed), and fp16 with its GradScaler is checked there (``needs CUDA``)."""
from __future__ import annotations

import pytest
import torch

from pointcept_distill.data.simulator import generate
from pointcept_distill.engine.captured_step import CapturedTrainStep, captured_step_options
from pointcept_distill.engine.defaults import default_config_parser, default_setup
from pointcept_distill.engine.train import TRAINERS
from pointcept_distill.models.captured import captured_backend
from pointcept_distill.models.plan import BatchPlan
from pointcept_distill.utils.config import Config, parse_options
from tiny_configs import ROOT

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (CPU twin: the fp32 tests)")

CONFIG = f"{ROOT}/configs/nuscenes/semseg-pt-v3m1-sim-tiny.py"


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nuscenes")
    generate("nuscenes", str(root), train=4, val=1, seed=5, scale=0.08)
    return root


HOOKS = [dict(type="ModelHook"), dict(type="IterationTimer"), dict(type="InformationWriter")]


def _trainer(tmp_path, sim_root, *options, **values):
    """The sim-tiny trainer on ``sim_root`` (1 epoch, no evaluation, drop path off, clipping), with command-line
    ``options`` and config ``values`` (set after parsing, e.g. ``captured_step=dict(...)``)."""
    opts = [f"save_path={tmp_path}", *(f"data.{s}.data_root={sim_root}" for s in ("train", "val", "test")),
            "epoch=1", "eval_epoch=1", "evaluate=False", "model.backbone.drop_path=0.0", "clip_grad=1.0", *options]
    cfg = default_config_parser(CONFIG, parse_options(opts))
    cfg.hooks = HOOKS
    for key, value in values.items():
        setattr(cfg, key, value)
    return TRAINERS.build(dict(type=cfg.train.type, cfg=default_setup(cfg)))


def _same_kernels(trainer) -> None:
    """The eager run on the captured step's convolution (the implicit GEMM on CUDA, the gather-GEMM on the CPU; on
    CUDA the default would be spconv, another summation order), so that the two runs differ only in how the step
    runs."""
    trainer.model.backbone.set_backend(captured_backend(trainer.model.backbone.backend, implicit_gemm=True))


class _Recorder:
    """Records each step's losses (the logged dict) after the step."""

    def __init__(self, trainer):
        self.losses: list[float] = []
        run_step = trainer.run_step

        def recorded() -> None:
            run_step()
            self.losses.append(float(trainer.comm_info["model_output_dict"]["loss"]))
        trainer.run_step = recorded


def test_captured_step_trains_as_the_eager_step(tmp_path, sim_root):
    """Two epochs of 2 steps: every step's loss and the final weights, optimizer state and batch-norm statistics
    equal the eager trainer's (order shuffles on, drawn before each step; drop path off: padding shifts its
    draws, models/padded_training.py), with a OneCycle schedule changing lr and betas at every step and gradient
    clipping. Adam's eps is raised to 1e-4: parameters whose true gradient is zero (a bias before a batch norm)
    get rounding noise, which Adam with eps 1e-8 turns into steps of +-lr that differ between any two
    summation orders (measured: up to 3e-3 apart here); with 1e-4 they move 5e-6 and every weight agrees to 1.3e-6
    (the largest change of a weight is 3.5e-4)."""
    runs = {}
    adam = dict(type="AdamW", lr=0.002, weight_decay=0.005, eps=1e-4)
    for name, values in (("eager", {"captured_step": False}), ("captured", {"captured_step": dict(enabled=True, steps_per_octave=4)})):
        trainer = _trainer(tmp_path / name, sim_root, "epoch=2", "eval_epoch=2", optimizer=adam, **values)
        _same_kernels(trainer)
        recorder = _Recorder(trainer)
        trainer.train()
        runs[name] = (trainer, recorder.losses)
    (eager, eager_losses), (captured, captured_losses) = runs["eager"], runs["captured"]
    assert eager.captured_step is None and isinstance(captured.captured_step, CapturedTrainStep)
    assert captured.captured_step.losses is captured.model      # no hook adds terms: the graphs hold the model
    assert len(captured_losses) == 4 and captured.captured_step.steps == 4
    assert captured_losses == pytest.approx(eager_losses, rel=1e-5)
    assert len(set(eager_losses)) == 4                                  # distinct steps: the comparison can fail
    for (name, value), want in zip(captured.model.state_dict().items(), eager.model.state_dict().values()):
        torch.testing.assert_close(value, want, rtol=1e-4, atol=5e-6, msg=name)
    eager_state = eager.optimizer.state_dict()["state"]
    for key in ("step", "exp_avg", "exp_avg_sq"):      # moments rounding apart, relative to the largest of all
        scale = max(float(state[key].abs().max()) for state in eager_state.values())
        for index, state in captured.optimizer.state_dict()["state"].items():
            assert float((state[key] - eager_state[index][key]).abs().max()) <= 1e-4 * scale, f"{index}.{key}"
    assert [g["lr"] for g in captured.optimizer.param_groups] == [g["lr"] for g in eager.optimizer.param_groups]
    if torch.cuda.is_available():                       # graphs: one per distinct padded plan, then replays
        step = captured.captured_step
        assert 1 <= step.captures <= 4 and step.num_graphs == step.captures and step.optimizer_graph is not None


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_compiled_captured_step_trains_as_the_uncompiled_one(tmp_path, sim_root):
    """``compile``: the backbone's forward traced whole by torch.compile (fullgraph, one compilation per padded
    plan; head and losses as they are) gives the uncompiled step's losses and weights over the 2 steps of an epoch,
    and the module keeps its eager forward outside the step. The backend here is
    aot_eager (dynamo's trace and AOTAutograd's joint graph without inductor's code generation, which takes minutes
    on 2 cores); the config key takes "inductor", which the benchmark's compiled row runs. Adam's eps is 1e-4 as in
    the eager comparison above (a zero-gradient bias's rounding noise)."""
    runs = {}
    adam = dict(type="AdamW", lr=0.002, weight_decay=0.005, eps=1e-4)
    for backend in (None, "aot_eager"):
        trainer = _trainer(tmp_path / str(backend), sim_root, captured_step=True, optimizer=adam)
        step = CapturedTrainStep(trainer.model, trainer.optimizer, clip_grad=1.0, compile=backend,
                                 losses=trainer.model)
        trainer.model.train()
        losses = []
        torch._dynamo.reset()
        for batch in trainer.train_loader:
            losses.append(float(step(trainer.to_device(batch))["loss"]))
            step.step()
        assert "forward" not in vars(trainer.model.backbone)                # the eager forward outside the step
        compiled_frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        assert (compiled_frames > 0) == (backend is not None)
        runs[backend] = losses, _snapshot(trainer.model)
    (plain, plain_state), (compiled, compiled_state) = runs[None], runs["aot_eager"]
    assert len(set(plain)) == 2 and compiled == pytest.approx(plain, rel=1e-5)
    for name, want in plain_state.items():
        torch.testing.assert_close(compiled_state[name], want, rtol=1e-4, atol=5e-6, msg=name)


def test_learning_rate_changes_reach_the_captured_optimizer_step(tmp_path, sim_root):
    """lr 0 leaves every parameter as it was, a later lr moves them, with the same optimizer graph (no new
    capture); a ``zero_grad(set_to_none=True)`` in between does not detach the graphs' gradient tensors."""
    trainer = _trainer(tmp_path, sim_root, captured_step=True)
    step, batch = trainer.captured_step, trainer.to_device(next(iter(trainer.train_loader)))
    trainer.model.train()
    params = [p for p in trainer.model.parameters()]
    for group in trainer.optimizer.param_groups:
        group["lr"] = 0.0
    before = [p.detach().clone() for p in params]
    step(batch)
    step.step()
    graph = step.optimizer_graph
    assert all(torch.equal(p, b) for p, b in zip(params, before))
    trainer.optimizer.zero_grad(set_to_none=True)
    for group in trainer.optimizer.param_groups:
        group["lr"] = 1e-3
    step(batch)
    assert all(p.grad is g for p, g in zip(step.params, step.grads))
    step.step()
    moved = [float((p.detach() - b).abs().max()) for p, b in zip(params, before)]
    assert min(moved) > 0 and max(moved) <= 1e-3 * 1.01            # Adam's steps are at most lr (+ rounding)
    assert step.optimizer_graph is graph and step.captures == (1 if torch.cuda.is_available() else 0)


def test_a_nonfinite_loss_skips_the_captured_step(tmp_path, sim_root, caplog):
    """A NaN feature in the first batch: the loss is NaN, the step is skipped with the eager step's warning and
    the weights stay as they were (the BN statistics take the NaN batch as in an eager step: not compared); the
    next step trains from them."""
    trainer = _trainer(tmp_path, sim_root, captured_step=True)
    initial = _snapshot(trainer.model)
    to_device, states = trainer.to_device, []

    def poisoned(batch):
        batch = to_device(batch)
        if trainer.comm_info["iter"] == 0:
            batch["feat"] = batch["feat"].clone().fill_(float("nan"))
        return batch
    trainer.to_device = poisoned
    run_step = trainer.run_step

    def recorded() -> None:
        run_step()
        states.append(_snapshot(trainer.model))
    trainer.run_step = recorded
    trainer.train()
    assert "Non-finite loss" in caplog.text and trainer.bad_steps == 0 and len(states) == 2
    trained = [k for k, _ in trainer.model.named_parameters()]
    assert all(torch.equal(states[0][k], initial[k]) for k in trained)
    assert any(not torch.equal(states[1][k], initial[k]) for k in trained)
    assert all(torch.isfinite(states[1][k]).all() for k in trained)


@needs_cuda
def test_fp16_captured_step_scales_and_matches_the_eager_step(tmp_path, sim_root):
    """fp16 autocast with the GradScaler: the loss is scaled inside the graph, unscaled and checked eagerly, and
    the scale evolves as the eager run's; losses agree to fp16 rounding."""
    runs = {}
    for name, values in (("eager", {"captured_step": False}), ("captured", {"captured_step": True})):
        trainer = _trainer(tmp_path / name, sim_root, "epoch=2", "eval_epoch=2", "enable_amp=True",
                           "amp_dtype=float16", **values)
        _same_kernels(trainer)
        recorder = _Recorder(trainer)
        trainer.train()
        runs[name] = (trainer, recorder.losses)
    (eager, eager_losses), (captured, captured_losses) = runs["eager"], runs["captured"]
    assert captured.scaler is not None and captured.captured_step.scaler is captured.scaler
    assert captured_losses == pytest.approx(eager_losses, rel=1e-2)
    assert captured.scaler.get_scale() == eager.scaler.get_scale()


def test_batches_carry_their_plan_only_for_the_captured_step(tmp_path, sim_root):
    eager = _trainer(tmp_path / "eager", sim_root, captured_step=False)
    captured = _trainer(tmp_path / "captured", sim_root, captured_step=True)
    assert "plan" not in next(iter(eager.train_loader))
    plan = next(iter(captured.train_loader))["plan"]
    assert isinstance(plan, BatchPlan) and plan.strides == tuple(captured.model.backbone.strides)


def test_captured_step_options_are_checked_by_name():
    assert captured_step_options(Config({})) is None and captured_step_options(Config({"captured_step": False})) \
        is None
    assert captured_step_options(Config({"captured_step": dict(enabled=False, steps_per_octave=2)})) is None
    assert captured_step_options(Config({"captured_step": True}))["steps_per_octave"] == 4
    assert captured_step_options(Config({"captured_step": dict(enabled=True, compile="None")}))["compile"] is None
    with pytest.raises(KeyError, match=r"captured_step: unknown key\(s\) \['step_per_octave'\]"):
        captured_step_options(Config({"captured_step": {"step_per_octave": 4}}))
    with pytest.raises(ValueError, match="captured_step.compile must be None or 'inductor'"):
        captured_step_options(Config({"captured_step": {"compile": "eager"}}))
    assert captured_step_options(Config({"captured_step": dict(enabled="auto")}))["enabled"] == "auto"
    with pytest.raises(ValueError, match="captured_step.enabled must be True, False or 'auto'"):
        captured_step_options(Config({"captured_step": {"enabled": "yes"}}))


def test_auto_trains_eagerly_where_the_step_cannot_be_captured(tmp_path, sim_root):
    """``enabled='auto'``: captured on CUDA when nothing is refused; here (on the CPU, or with a hook adding
    terms that cannot be captured) eager steps with the reason logged, and batches planned only where captured."""
    trainer = _trainer(tmp_path / "auto", sim_root, captured_step=dict(enabled="auto"),
                       hooks=HOOKS + [dict(type="RecorderHook")])
    assert trainer.captured_step is None
    log = (tmp_path / "auto" / "train.log").read_text()
    assert "captured_step.enabled=auto: eager steps (" in log
    assert "hooks that cannot be captured (RecorderHook)" in log          # the reason, named
    assert ("plan" in next(iter(trainer.train_loader))) == torch.cuda.is_available()


def test_captured_step_is_set_from_the_command_line(tmp_path, sim_root):
    """The runtime default is "auto" (captured on CUDA only); ``--options captured_step.enabled=False`` turns it
    off, ``captured_step.enabled=True captured_step.steps_per_octave=2`` on with its buckets; an unknown entry is
    refused by name."""
    default = _trainer(tmp_path / "default", sim_root)
    assert default.cfg.captured_step["enabled"] == "auto"
    assert (default.captured_step is not None) == torch.cuda.is_available()
    assert _trainer(tmp_path / "off", sim_root, "captured_step.enabled=False").captured_step is None
    trainer = _trainer(tmp_path / "on", sim_root, "captured_step.enabled=True", "captured_step.steps_per_octave=2")
    assert trainer.captured_step.graphs.steps_per_octave == 2
    with pytest.raises(Exception, match="step_per_octave"):
        _trainer(tmp_path / "bad", sim_root, "captured_step.enabled=True", "captured_step.step_per_octave=2")


@pytest.mark.parametrize("values, match", [
    (dict(gradient_accumulation_steps=2), "gradient_accumulation_steps=2"),
    (dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)), "must be Adam or AdamW"),
    (dict(hooks=HOOKS + [dict(type="RecorderHook")]), r"hooks that cannot be captured \(RecorderHook\)"),
])
def test_what_the_captured_step_cannot_run_is_refused_by_name(tmp_path, sim_root, values, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _trainer(tmp_path, sim_root, captured_step=True, **values)


def test_a_captured_run_resumes_exactly_after_a_crash(tmp_path, sim_root):
    """Crash after global step 3 of 4 (saved: a checkpoint every step), resume from model_last.pth: the weights
    equal the uninterrupted captured run's bit for bit (the optimizer state of GraphAdam is the optimizer's own, saved and
    loaded as such; the order permutations come from the restored CPU generator)."""
    saver = [dict(type="CheckpointLoader"), *HOOKS, dict(type="CheckpointSaver", save_freq_iter=1)]
    common = dict(captured_step=True, hooks=saver)
    run = ("epoch=2", "eval_epoch=2", "deterministic=True")       # off by default on CUDA
    reference = _trainer(tmp_path / "ref", sim_root, *run, **common)
    reference.train()
    crashed = _trainer(tmp_path / "run", sim_root, *run, captured_step=True,
                       hooks=saver + [dict(type="CrashAt", global_iter=3)])
    with pytest.raises(RuntimeError, match="planned crash"):
        crashed.train()
    resumed = _trainer(tmp_path / "run", sim_root, *run, "resume=True", "overwrite=False",
                       f"weight={tmp_path / 'run' / 'model' / 'model_last.pth'}", **common)
    resumed.train()
    assert resumed.captured_step.steps == 1                # the resumed run stepped the last step itself
    for (name, value), want in zip(resumed.model.state_dict().items(), reference.model.state_dict().values()):
        assert torch.equal(value, want), name
