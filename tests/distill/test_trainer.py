"""DistillTrainer: frozen teacher, strict teacher loading, loss terms, gradient path, student-only checkpoints."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pointcept_distill.data  # noqa: F401
import pointcept_distill.distill  # noqa: F401
from pointcept_distill.data.simulator import generate
from pointcept_distill.distill.capture import FeatureCapture
from pointcept_distill.distill.distiller import Distiller, criteria_ignore_index
from pointcept_distill.distill.matching import match_by_voxel, voxel_keys
from pointcept_distill.engine import default_config_parser, default_setup
from pointcept_distill.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pointcept_distill.engine.train import TRAINERS
from pointcept_distill.models import LOSSES, LovaszLoss, build_criteria, build_model
from pointcept_distill.models.plan import plan_batch
from pointcept_distill.models.point import Point

REPO = Path(__file__).parents[2]
CONFIG = REPO / "configs" / "nuscenes" / "distill-ptv3-sim-tiny.py"


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nuscenes")
    generate("nuscenes", str(root), train=2, val=1, seed=3, scale=0.08)
    return root


def _teacher_checkpoint(cfg, path: Path, with_module: bool = True) -> dict:
    torch.manual_seed(0)
    teacher = build_model(cfg.teacher)
    for m in teacher.modules():  # non-trivial BN statistics, so that eval mode matters
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    state = {("module." if with_module else "") + k: v for k, v in teacher.state_dict().items()}
    torch.save({"epoch": 1, "state_dict": state}, path)
    return teacher.state_dict()


def _trainer(tmp_path, sim_root, *options):
    weight = tmp_path / "teacher.pth"
    opts = [f"save_path={tmp_path / 'exp'}", f"data_root={sim_root}", f"data.train.data_root={sim_root}",
            f"data.val.data_root={sim_root}", f"data.test.data_root={sim_root}", f"teacher_weight={weight}", "epoch=1", "eval_epoch=1",
            *options]
    from pointcept_distill.utils.config import parse_options
    cfg = default_config_parser(str(CONFIG), parse_options(opts))
    reference = _teacher_checkpoint(cfg, weight) if not weight.exists() else None
    return TRAINERS.build(dict(type=cfg.train.type, cfg=default_setup(cfg))), reference


def test_step_gives_every_loss_term_and_leaves_teacher_untouched(tmp_path, sim_root):
    trainer, reference = _trainer(tmp_path, sim_root)
    before = {k: v.clone() for k, v in trainer.teacher.model.state_dict().items()}
    for k, v in reference.items():
        assert torch.equal(before[k], v), k  # loaded exactly, "module." prefix stripped
    trainer.train()
    after = trainer.teacher.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN buffers bit-identical
    assert not trainer.teacher.training and not any(m.training for m in trainer.teacher.modules())
    assert all(p.grad is None for p in trainer.teacher.parameters())
    logged = trainer.comm_info["model_output_dict"]
    for key in ("loss_seg", "loss_kd_logit", "loss_kd_grad", "loss_kd_topo"):
        assert key in logged and torch.isfinite(logged[key]), key
    assert logged["loss_kd_topo"] > 0 and logged["loss_kd_grad"] > 0


def test_each_loss_reaches_the_student(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root)
    batch = trainer.to_device(next(iter(trainer.train_loader)))
    trainer.model.train()
    losses = trainer.forward_losses(batch)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    for key in ("loss_kd_logit", "loss_kd_grad", "loss_kd_topo"):
        grads = torch.autograd.grad(losses[key], params, retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads), key


def test_losses_switch_off_from_options(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root, "distill.topo_kd=None", "distill.grad_kd.loss_weight=0")
    assert [hook.name for hook in trainer.distiller.loss_hooks] == ["logit_kd"]
    batch = trainer.to_device(next(iter(trainer.train_loader)))
    losses = trainer.forward_losses(batch)
    assert set(losses) == {"loss_seg", "loss_kd_logit"}


def test_teacher_gradient_map_matches_full_autograd(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root)
    batch = trainer.to_device(next(iter(trainer.train_loader)))
    _, feats, grads = trainer.distiller.teacher_forward(batch, trainer.distiller.needs())
    # by hand: the whole teacher under autograd, its bottleneck feature kept as a graph node
    teacher = trainer.teacher.model
    with FeatureCapture(teacher.backbone, ["bottleneck"]) as cap, torch.enable_grad():
        x = {**batch, "feat": batch["feat"].clone().requires_grad_(True)}
        point = teacher.backbone(Point(x))
        loss = teacher.criteria(teacher.seg_head(point.feat), batch["segment"])
        (expected,) = torch.autograd.grad(loss, cap.features["bottleneck"].feat)
    assert torch.allclose(grads["bottleneck"], expected, rtol=1e-5, atol=1e-8)
    assert torch.equal(feats["bottleneck"].grid_coord, cap.features["bottleneck"].grid_coord)


def test_student_checkpoint_is_a_plain_segmentor(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root)
    trainer.train()
    ckpt = load_checkpoint(tmp_path / "exp" / "model" / "model_last.pth")
    assert not any("teacher" in k for k in ckpt["state_dict"])
    plain = build_model(trainer.cfg.model)
    plain.load_state_dict(ckpt["state_dict"], strict=True)


def test_mismatched_teacher_checkpoint_lists_keys(tmp_path, sim_root):
    weight = tmp_path / "teacher.pth"
    torch.save({"state_dict": {"seg_head.weight": torch.zeros(3, 3)}}, weight)
    with pytest.raises(CheckpointError, match="missing") as err:
        _trainer(tmp_path, sim_root)
    assert "teacher_weight" in str(err.value) and "backbone." in str(err.value)


def test_several_stages_each_get_their_terms(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root, "distill.stages=[bottleneck,enc2]")
    batch = trainer.to_device(next(iter(trainer.train_loader)))
    losses = trainer.forward_losses(batch)
    for stage in ("bottleneck", "enc2"):
        for loss in ("loss_kd_grad", "loss_kd_topo"):
            assert torch.isfinite(losses[f"{loss}_{stage}"]), (loss, stage)
    assert losses["loss_kd_grad_bottleneck"] != losses["loss_kd_grad_enc2"]


def _sequential_losses(distiller, student, batch) -> dict:
    """The step's losses computed one after another in the step's order (each loss over every stage), each stage's
    topology loss in place (the reference order)."""
    from pointcept_distill.distill.matching import match_by_voxel, voxel_keys
    from pointcept_distill.models.point import batch_to_offset
    stages, modules = distiller.stages, distiller.loss_modules
    with FeatureCapture(student.backbone, stages) as capture:
        out = student(batch, return_point=True)
    logits_t, feats_t, grads_t = distiller.teacher_forward(batch, distiller.needs())
    losses = {"loss_seg": out["loss"],
              **modules["logit_kd"](student.head_logits(out["point"]), logits_t, batch["segment"])}
    grads_s = distiller.task_gradients(out["loss"], capture.features, distiller.needs())
    matched = {}
    for stage in stages:
        s, t = capture.features[stage], feats_t[stage]
        idx_s, idx_t = match_by_voxel(voxel_keys(s.grid_coord, s.batch), voxel_keys(t.grid_coord, t.batch))
        offset = batch_to_offset(s.batch[idx_s], len(batch["offset"]))
        matched[stage] = (s.feat[idx_s], grads_s[stage][idx_s], t.feat[idx_t], grads_t[stage][idx_t], offset)
    for stage, (feat_s, grad_s, feat_t, grad_t, offset) in matched.items():
        terms = modules["grad_kd"](feat_s, grad_s, feat_t, grad_t, offset)
        losses.update({f"{k}_{stage}": v for k, v in terms.items()})
    for stage, (feat_s, _, feat_t, _, offset) in matched.items():
        terms = modules["topo_kd"](feat_s, feat_t, offset)
        losses.update({f"{k}_{stage}": v for k, v in terms.items()})
    return losses


def test_overlapped_topology_losses_equal_the_sequential_ones(tmp_path, sim_root):
    # the topology losses start right after the teacher forward and are collected last: same values, same keys
    # in the same order (the total loss sums them in that order)
    trainer, _ = _trainer(tmp_path, sim_root, "distill.stages=[bottleneck,enc2]")
    student = trainer.model.eval()  # deterministic forward: no order shuffle, no drop path
    batch = trainer.to_device(next(iter(trainer.train_loader)))
    got = trainer.distiller.compute_loss(student, batch)
    want = _sequential_losses(trainer.distiller, student, batch)
    assert list(got) == list(want) and "loss_kd_topo_enc2" in got
    for key in want:
        assert torch.equal(got[key], want[key]), (key, float(got[key]), float(want[key]))


def test_every_loss_vanishes_when_the_teacher_is_the_student(tmp_path, sim_root):
    # teacher and student outputs are compared point by point (logits) and voxel by voxel (features): a student
    # identical to the teacher (both in eval mode, so with the same BN statistics and no drop path) must give
    # zero distillation losses, whatever order either model visited the points in
    import copy

    from pointcept_distill.distill.distiller import Distiller
    from pointcept_distill.distill.teacher import FrozenTeacher
    trainer, _ = _trainer(tmp_path, sim_root)
    student = trainer.model.eval()
    distiller = Distiller(FrozenTeacher(copy.deepcopy(student)), trainer.cfg.distill, trainer.device)
    batch = next(iter(trainer.train_loader))
    losses = distiller.compute_loss(student, batch)
    assert losses["loss_seg"] > 0
    for key in ("loss_kd_logit", "loss_kd_grad", "loss_kd_topo"):
        assert abs(float(losses[key])) < 1e-5, (key, float(losses[key]))


def test_distillation_step_reads_the_host_only_for_the_persistence_pairs(tmp_path, sim_root, monkeypatch):
    # beyond the two models' own forwards (serialization depth, one torch.unique per pooling, and the CPU order
    # shuffle of training), the only host reads of a step are the distances the persistence pairs are computed
    # from, and those are made in the topology loss's background job: on CUDA a read on the main thread is a
    # synchronisation in the middle of the step
    from host_reads import HostReads

    from pointcept_distill.distill.losses import topo_kd
    job_reads, pairs_job = HostReads(), topo_kd._pairs_job

    def counted_pairs_job(*args):
        with job_reads:  # the modes are per thread: the main thread's does not see the job's reads
            return pairs_job(*args)

    monkeypatch.setattr(topo_kd, "_pairs_job", counted_pairs_job)
    trainer, _ = _trainer(tmp_path, sim_root)
    batch = next(iter(trainer.train_loader))
    trainer.model.train()
    trainer.distiller.compute_loss(trainer.model, batch)  # first step: also checks the voxel sets once
    job_reads.hits.clear()
    with HostReads() as reads:
        trainer.distiller.compute_loss(trainer.model, batch)
    outside_models = {key: n for key, n in reads.hits.items() if not key[1].startswith("models/")}
    assert reads.hits and not outside_models, outside_models
    assert job_reads.hits and {where for _, where, _ in job_reads.hits} == {"distill/losses/topo_kd.py"}, job_reads.hits


# ------------------------------------------------------------------ the KD loss hooks
@LOSSES.register_module("_NormGapKD", force=True)
class _NormGapKD(torch.nn.Module):
    """A KD loss that only the tests know: the squared gap between the mean feature norms of a stage."""

    stage_inputs = ("student_feat", "teacher_feat")

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student_feat, teacher_feat):
        gap = student_feat.norm(dim=1).mean() - teacher_feat.detach().norm(dim=1).mean()
        return {"loss_kd_gap": gap ** 2 * self.loss_weight}


def test_a_new_loss_is_a_registered_class_and_a_config_line(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root, "distill.gap_kd.type=_NormGapKD", "distill.stages=[bottleneck,enc2]")
    assert [hook.name for hook in trainer.distiller.loss_hooks] == ["logit_kd", "grad_kd", "topo_kd", "gap_kd"]
    assert trainer.hooks[:4] == trainer.distiller.loss_hooks         # before the config's hooks: they log the step
    batch = trainer.to_device(next(iter(trainer.train_loader)))
    losses = trainer.forward_losses(batch)
    assert list(losses)[-2:] == ["loss_kd_gap_bottleneck", "loss_kd_gap_enc2"]   # after the shipped losses
    student = [p for p in trainer.model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(losses["loss_kd_gap_enc2"], student, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_a_loss_must_name_what_it_reads():
    from pointcept_distill.distill.hooks import KDLossHook
    with pytest.raises(TypeError, match="distill.mse_kd: MSELoss must name what it reads"):
        KDLossHook("mse_kd", torch.nn.MSELoss())


def test_losses_are_left_out_by_name_outside_a_trainer(tmp_path, sim_root):
    # tools/benchmark.py times the step with each loss left out
    trainer, _ = _trainer(tmp_path, sim_root)
    distiller, student = trainer.distiller, trainer.model.eval()
    batch = trainer.to_device(next(iter(trainer.train_loader)))
    every = distiller.compute_loss(student, batch)
    assert list(every) == ["loss_seg", "loss_kd_logit", "loss_kd_grad", "loss_kd_topo"]
    topo = distiller.compute_loss(student, batch, losses=["topo_kd"])
    assert list(topo) == ["loss_seg", "loss_kd_topo"] and torch.equal(topo["loss_kd_topo"], every["loss_kd_topo"])
    assert list(distiller.compute_loss(student, batch, losses=[])) == ["loss_seg"]
    assert distiller.needs(distiller.select(["logit_kd"])) == ((), False)      # no features, no task gradients
    with pytest.raises(KeyError, match=r"\['cwd_kd'\] are not active"):
        distiller.compute_loss(student, batch, losses=["cwd_kd"])


def test_the_step_is_released_after_its_terms(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root)
    trainer.forward_losses(trainer.to_device(next(iter(trainer.train_loader))))
    assert trainer.distill_step is None


# ------------------------------------------------------------------ distill.teacher_capture
# On the CPU the padded batch runs eagerly (the CUDA graph replay of the same function is measured on the GPU
# machine by ``tools/benchmark.py --teacher-capture``): padding, label fill, stage cuts and voxel matching are
# what these tests pin down.
STAGES = "distill.stages=[bottleneck,enc2,dec1]"


def _sorted_by_voxel(feature, *rows):
    order = torch.argsort(voxel_keys(feature.grid_coord, feature.batch))
    return [r[order] for r in rows]


def test_padded_teacher_outputs_equal_the_eager_ones(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root, STAGES, "distill.teacher_capture=graphs")
    distiller = trainer.distiller
    batch = trainer.to_device(next(iter(trainer.train_loader)))
    assert batch["plan"] == plan_batch(batch, trainer.model.backbone.strides)   # planned in the loader's collate
    needs = distiller.needs()
    eager_logits, eager_feats, eager_grads = distiller.teacher_forward(batch, needs)   # CPU input: the eager path
    logits, feats, grads = distiller.replay_teacher(batch, needs)
    torch.testing.assert_close(logits, eager_logits, rtol=1e-5, atol=1e-6)
    for stage in ("bottleneck", "enc2", "dec1"):
        e, p = eager_feats[stage], feats[stage]
        assert p.feat.shape == e.feat.shape, stage                     # the padding sample's voxels cut off
        assert int(p.batch.max()) < len(batch["offset"])
        idx_e, idx_p = match_by_voxel(voxel_keys(e.grid_coord, e.batch), voxel_keys(p.grid_coord, p.batch))
        torch.testing.assert_close(p.feat[idx_p], e.feat[idx_e], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grads[stage][idx_p], eager_grads[stage][idx_e], rtol=1e-4, atol=1e-9)
        assert grads[stage].abs().sum() > 0


def test_captured_teacher_step_gives_the_eager_losses(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root, "distill.teacher_capture=graphs")
    student = trainer.model.eval()
    batch = trainer.to_device(next(iter(trainer.train_loader)))
    eager = trainer.distiller.compute_loss(student, batch)
    trainer.distiller.teacher_forward = trainer.distiller.replay_teacher      # the path CUDA inputs take
    captured = trainer.distiller.compute_loss(student, batch)
    assert list(captured) == list(eager)
    for key in eager:
        torch.testing.assert_close(captured[key], eager[key], rtol=1e-4, atol=1e-6)


def test_teacher_capture_settings_are_checked(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root)
    with pytest.raises(ValueError, match="teacher_capture"):
        Distiller(trainer.teacher, dict(trainer.cfg.distill, teacher_capture="compiled"), trainer.device)
    with pytest.raises(ValueError, match="teacher_amp_dtype"):
        Distiller(trainer.teacher, dict(trainer.cfg.distill, teacher_amp_dtype="half"), trainer.device)
    assert Distiller(trainer.teacher, dict(trainer.cfg.distill, teacher_amp_dtype="None"),
                     trainer.device).teacher_amp_dtype is None
    from pointcept_distill.distill.distiller import TEACHER_MAX_GRAPHS, TEACHER_STEPS_PER_OCTAVE
    captured = Distiller(trainer.teacher, dict(trainer.cfg.distill, teacher_capture="graphs"),
                         trainer.device).captured_teacher
    assert (captured.max_graphs, captured.steps_per_octave) == (TEACHER_MAX_GRAPHS, TEACHER_STEPS_PER_OCTAVE)
    assert captured.labels == {"segment": -1}
    assert criteria_ignore_index(trainer.teacher.model.criteria) == -1
    # a term that ignores nothing would count the padding sample's labels
    criteria = build_criteria([dict(type="CrossEntropyLoss", ignore_index=-1)])
    criteria.criteria.append(LovaszLoss(mode="multiclass", ignore_index=None))
    with pytest.raises(ValueError, match="LovaszLoss"):
        criteria_ignore_index(criteria)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_captured_teacher_replays_the_eager_outputs_on_cuda(tmp_path, sim_root):
    # CUDA twin of test_padded_teacher_outputs_equal_the_eager_ones: the same comparison through the CUDA graph
    # (float32, so the implicit GEMM's IEEE products meet the eager gather path closely), replayed twice
    trainer, _ = _trainer(tmp_path, sim_root, STAGES, "distill.teacher_capture=graphs")
    distiller = trainer.distiller
    distiller.teacher_amp_dtype = None                                   # float32 teacher, no step autocast
    batches = [trainer.to_device(next(iter(trainer.train_loader))) for _ in range(2)]   # two augmented draws
    needs = distiller.needs()
    for batch in batches + batches:
        logits, feats, grads = distiller.replay_teacher(batch, needs)
        eager_logits, eager_feats, eager_grads = distiller.teacher_outputs(batch, needs)
        torch.testing.assert_close(logits, eager_logits, rtol=1e-4, atol=1e-4)
        for stage, e in eager_feats.items():
            p = feats[stage]
            idx_e, idx_p = match_by_voxel(voxel_keys(e.grid_coord, e.batch), voxel_keys(p.grid_coord, p.batch))
            torch.testing.assert_close(p.feat[idx_p], e.feat[idx_e], rtol=1e-4, atol=1e-4)
            # by norm: the Lovasz term's gradient jumps where two points' errors swap order, and 1e-6 feature
            # differences (implicit GEMM vs gather-GEMM) swap a few near-ties (H100: 32 of 73k entries)
            diff = (grads[stage][idx_p] - eager_grads[stage][idx_e]).norm() / eager_grads[stage].norm()
            assert diff < 1e-2, (stage, float(diff))
    assert 1 <= len(distiller.captured_teacher.captures) <= 2           # the second round replays


# ------------------------------------------------------------------ distill.cwd_kd and distill.feat_kd
CWD_FEAT = ("distill.cwd_kd.type=ChannelWiseKD", "distill.feat_kd.type=FeatureMimicKD", "distill.topo_kd=None")


def _projectors(trainer) -> dict:
    return {stage: loss.projector for stage, loss in trainer.distiller.loss_modules["feat_kd"].items()}


def test_cwd_and_feature_mimic_terms_reach_the_student(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root, *CWD_FEAT, "distill.stages=[bottleneck,enc2]")
    # the projectors' widths are read from the stages: student 16 -> teacher 32 at the bottleneck, 8 -> 16 at enc2
    widths = {s: (p.in_features, p.out_features) for s, p in _projectors(trainer).items()}
    assert widths == {"bottleneck": (16, 32), "enc2": (8, 16)}
    assert trainer.distiller.needs().stages == ("bottleneck", "enc2")
    batch = trainer.to_device(next(iter(trainer.train_loader)))
    losses = trainer.forward_losses(batch)
    assert {"loss_kd_cwd", "loss_kd_feat_bottleneck", "loss_kd_feat_enc2"} <= set(losses)
    student = [p for p in trainer.model.parameters() if p.requires_grad]
    for key in ("loss_kd_cwd", "loss_kd_feat_bottleneck", "loss_kd_feat_enc2"):
        grads = torch.autograd.grad(losses[key], student, retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads), key
    projector = _projectors(trainer)["enc2"]
    grads = torch.autograd.grad(losses["loss_kd_feat_enc2"], list(projector.parameters()), retain_graph=True)
    assert all(g.abs().sum() > 0 for g in grads)


def test_feature_mimic_widths_are_checked_and_needed(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root)
    cfg = dict(trainer.cfg.distill, feat_kd=dict(type="FeatureMimicKD", teacher_channels=31))
    with pytest.raises(ValueError, match="31 differs from stage 'bottleneck''s 32"):
        Distiller(trainer.teacher, cfg, trainer.device, trainer.model)
    with pytest.raises(ValueError, match="student_channels"):
        Distiller(trainer.teacher, dict(cfg, feat_kd=dict(type="FeatureMimicKD")), trainer.device)
    given = dict(type="FeatureMimicKD", student_channels=16, teacher_channels=32)
    assert "feat_kd" in Distiller(trainer.teacher, dict(cfg, feat_kd=given), trainer.device).loss_modules
    with pytest.raises(KeyError, match="distill"):
        Distiller(trainer.teacher, dict(cfg, feat_kd=None, cwd=dict(type="ChannelWiseKD")), trainer.device)


def test_projectors_are_trained_in_the_student_groups_and_checkpointed_apart(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root, *CWD_FEAT)
    projector = _projectors(trainer)["bottleneck"]
    initial = {k: v.clone() for k, v in projector.state_dict().items()}
    groups = trainer.optimizer.param_groups
    assert len(groups) == 1 + len(trainer.cfg.param_dicts)        # no group of their own: OneCycleLR's max_lr list
    assert {id(p) for p in projector.parameters()} <= {id(p) for p in groups[0]["params"]}
    assert sum(len(g["params"]) for g in groups) == len(list(trainer.model.parameters())) + 2
    assert {id(p) for p in projector.parameters()} <= {id(p) for p in trainer.trained_parameters()}  # clip_grad
    trainer.train()
    logged = trainer.comm_info["model_output_dict"]
    assert torch.isfinite(logged["loss_kd_cwd"]) and torch.isfinite(logged["loss_kd_feat"])
    assert not any(torch.equal(initial[k], v) for k, v in projector.state_dict().items())   # stepped
    ckpt = load_checkpoint(tmp_path / "exp" / "model" / "model_last.pth")
    assert set(ckpt["state_dict"]) == set(trainer.model.state_dict())                      # the student's alone
    build_model(trainer.cfg.model).load_state_dict(ckpt["state_dict"], strict=True)
    distill_state = ckpt["distill_state_dict"]
    assert set(distill_state) == {"feat_kd.bottleneck.projector.weight", "feat_kd.bottleneck.projector.bias"}
    assert all(torch.equal(v, projector.state_dict()[k.rsplit(".", 1)[-1]]) for k, v in distill_state.items())


def test_resume_restores_the_projectors_and_their_optimizer_state(tmp_path, sim_root, caplog):
    trainer, _ = _trainer(tmp_path, sim_root, *CWD_FEAT)
    trainer.train()
    last = tmp_path / "exp" / "model" / "model_last.pth"
    resumed, _ = _trainer(tmp_path, sim_root, *CWD_FEAT, "resume=True", f"weight={last}")
    before = {k: v.clone() for k, v in _projectors(resumed)["bottleneck"].state_dict().items()}
    resumed.before_train()                                          # CheckpointLoader: weights and training state
    want, got = _projectors(trainer)["bottleneck"], _projectors(resumed)["bottleneck"]
    assert not all(torch.equal(before[k], v) for k, v in want.state_dict().items())
    for key, value in want.state_dict().items():
        assert torch.equal(got.state_dict()[key], value), key
    for p_want, p_got in zip(want.parameters(), got.parameters()):
        s_want, s_got = trainer.optimizer.state[p_want], resumed.optimizer.state[p_got]
        assert s_want and all(torch.equal(s_want[k], s_got[k]) for k in s_want)
    # a checkpoint without the projectors' state resumes from their initialisation, with a warning
    ckpt = load_checkpoint(last)
    del ckpt["distill_state_dict"]
    torch.save(ckpt, tmp_path / "older.pth")
    older, _ = _trainer(tmp_path, sim_root, *CWD_FEAT, "resume=True",
                        f"weight={tmp_path / 'older.pth'}")
    initial = {k: v.clone() for k, v in _projectors(older)["bottleneck"].state_dict().items()}
    older.before_train()
    assert all(torch.equal(initial[k], v) for k, v in _projectors(older)["bottleneck"].state_dict().items())
    assert "has no 'distill_state_dict'" in (tmp_path / "exp" / "train.log").read_text()


# ------------------------------------------------------------------ distill.grad_norm_interval
def _flat_norm(loss, params) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return float(torch.cat([g.double().reshape(-1) for g in grads if g is not None]).norm())


def test_logged_gradient_norms_equal_a_reference_computation(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root, *CWD_FEAT, "distill.grad_norm_interval=1")
    student = trainer.model.eval()               # deterministic forward: the reference recomputes the same graph
    batch = trainer.to_device(next(iter(trainer.train_loader)))
    got = trainer.forward_losses(batch)
    terms = ["loss_seg", "loss_kd_logit", "loss_kd_cwd", "loss_kd_grad", "loss_kd_feat"]
    assert set(got) == {*terms, *(f"grad_norm/{k}" for k in terms), *(f"grad_ratio/{k}" for k in terms[1:])}
    reference = trainer.distiller.compute_loss(student, batch)
    params = [p for p in student.parameters() if p.requires_grad]
    norms = {key: _flat_norm(reference[key], params) for key in terms}
    for key in terms:
        assert float(got[f"grad_norm/{key}"]) == pytest.approx(norms[key], rel=1e-5), key
        assert norms[key] > 0, key
    for key in terms[1:]:
        assert float(got[f"grad_ratio/{key}"]) == pytest.approx(norms[key] / norms["loss_seg"], rel=1e-5), key
    with pytest.raises(ValueError, match="grad_norm_interval"):
        Distiller(trainer.teacher, dict(trainer.cfg.distill, grad_norm_interval=-1), trainer.device, student)


def test_gradient_norm_steps_train_alike_and_reach_tensorboard(tmp_path, sim_root):
    import glob

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    runs = {}
    for interval in (0, 1):
        trainer, _ = _trainer(tmp_path / str(interval), sim_root, "distill.topo_kd=None", "epoch=2", "eval_epoch=2",
                              f"distill.grad_norm_interval={interval}")
        trainer.train()
        runs[interval] = trainer
    logged = {i: t.comm_info["model_output_dict"] for i, t in runs.items()}
    assert torch.equal(logged[0]["loss"], logged[1]["loss"])
    assert not any(k.startswith("grad_") for k in logged[0]) and "grad_norm/loss_kd_grad" in logged[1]
    weights = {i: t.model.state_dict() for i, t in runs.items()}
    for key, value in weights[0].items():
        assert torch.equal(weights[1][key], value), key
    events = EventAccumulator(glob.glob(str(tmp_path / "1" / "exp" / "events.out.tfevents.*"))[0])
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("grad_norm/loss_seg", "grad_norm/loss_kd_logit", "grad_norm/loss_kd_grad",
                "grad_ratio/loss_kd_logit", "grad_ratio/loss_kd_grad"):
        assert f"train_batch/{tag}" in tags, tag
        assert [e.step for e in events.Scalars(f"train_batch/{tag}")] == [1, 2]
    assert "train_batch/grad_ratio/loss_seg" not in tags


def test_resume_with_another_teacher_file_is_refused_naming_it(tmp_path, sim_root):
    trainer, _ = _trainer(tmp_path, sim_root)
    last = tmp_path / "exp" / "model" / "model_last.pth"
    save_checkpoint(trainer.training_state(1, 0), str(last))
    other = tmp_path / "retrained_teacher.pth"
    ckpt = torch.load(tmp_path / "teacher.pth", weights_only=True)
    first = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][first] = ckpt["state_dict"][first] + 1
    torch.save(ckpt, other)
    resumed, _ = _trainer(tmp_path, sim_root, "resume=True", f"weight={last}", f"teacher_weight={other}")
    with pytest.raises(CheckpointError, match=r"teacher_weight_sha256: '[0-9a-f]{64}' -> '[0-9a-f]{64}'.*refused"):
        resumed.before_train()
    same, _ = _trainer(tmp_path, sim_root, "resume=True", f"weight={last}")
    same.before_train()
    assert same.start_epoch == 1


def test_kd_weight_schedule_reads_the_trainers_progress(tmp_path, sim_root):
    from pointcept_distill.distill.schedule import KDWeightSchedule
    trainer, _ = _trainer(tmp_path, sim_root, "distill.topo_kd=None", "distill.grad_kd=None")
    batch = trainer.to_device(next(iter(trainer.train_loader)))
    torch.manual_seed(0)
    plain = trainer.forward_losses(batch)
    assert plain["loss_kd_logit"] > 0
    for hook in trainer.distiller.loss_hooks:
        hook.schedule = KDWeightSchedule(warmup=0.5)
    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="before_step"):     # the factor is the step's: set before it
        trainer.forward_losses(batch)
    for hook in trainer.distiller.loss_hooks:
        hook.before_step()
    torch.manual_seed(0)
    ramped = trainer.forward_losses(batch)                 # the first step of training: the factor is 0
    assert ramped["loss_kd_logit"] == 0 and ramped["loss_seg"] > 0
    trainer.max_epoch, trainer.epoch = 4, 3                 # the last step of a 4-epoch run: the factor is 1
    trainer.comm_info["iter"] = len(trainer.train_loader) - 1
    for hook in trainer.distiller.loss_hooks:
        hook.before_step()
    torch.manual_seed(0)
    torch.testing.assert_close(trainer.forward_losses(batch)["loss_kd_logit"], plain["loss_kd_logit"])
