import numpy as np
import pytest
import torch

from pointcept_distill.distill.losses import TopologyKD, persistence_diagrams, rips_persistence_pairs
from pointcept_distill.distill.losses.diagram_distance import chamfer_diagram_distance
from pointcept_distill.distill.losses.persistence import pairwise_distances
from pointcept_distill.models.builder import LOSSES


def _feats(counts=(120, 40, 90), c_s=8, c_t=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = sum(counts)
    student = torch.randn(n, c_s, generator=g, requires_grad=True)
    teacher = torch.randn(n, c_t, generator=g)
    return student, teacher, torch.tensor(counts).cumsum(0)


@pytest.mark.parametrize("distance", ["chamfer", "sliced_wasserstein"])
@pytest.mark.parametrize("sampling", ["fps", "stride"])
def test_zero_when_teacher_equals_student(distance, sampling):
    _, teacher, offset = _feats()
    kd = TopologyKD(num_points=32, sampling=sampling, distance=distance)
    assert kd(teacher.clone(), teacher, offset)["loss_kd_topo"].item() == 0.0


@pytest.mark.parametrize("distance", ["chamfer", "sliced_wasserstein"])
def test_gradient_reaches_student_only(distance):
    student, teacher, offset = _feats()
    teacher.requires_grad_(True)
    out = TopologyKD(num_points=32, distance=distance, loss_weight=0.1)(student, teacher, offset)
    assert list(out) == ["loss_kd_topo"] and out["loss_kd_topo"] > 0
    out["loss_kd_topo"].backward()
    assert teacher.grad is None
    assert torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0


def test_deterministic():
    student, teacher, offset = _feats()
    kd = TopologyKD(num_points=24)
    assert kd(student, teacher, offset)["loss_kd_topo"] == kd(student.clone(), teacher.clone(), offset)["loss_kd_topo"]


def test_diagram_values_are_the_rips_lengths():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 20, 6, generator=g, dtype=torch.float64)
    valid = torch.ones(2, 20, dtype=torch.bool)
    valid[1, 15:] = False
    diagrams = persistence_diagrams(x, valid, (0, 1))
    for b, n in enumerate((20, 15)):
        cloud = x[b, :n].numpy()
        d, pairs = pairwise_distances(cloud), rips_persistence_pairs(cloud)
        h0 = np.c_[np.zeros(len(pairs.h0_death)), d[tuple(pairs.h0_death.T)]]
        h1 = np.c_[d[tuple(pairs.h1_birth.T)], d[tuple(pairs.h1_death.T)]]
        for dim, want in ((0, h0), (1, h1)):
            points, mask = diagrams[dim]
            np.testing.assert_allclose(points[b][mask[b]].numpy(), want, rtol=1e-10)


def test_topology_loss_passes_gradcheck():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 12, 3, generator=g, dtype=torch.float64, requires_grad=True)
    target = persistence_diagrams(torch.randn(1, 12, 3, generator=g, dtype=torch.float64),
                                  torch.ones(1, 12, dtype=torch.bool), (0, 1))
    valid = torch.ones(1, 12, dtype=torch.bool)

    def loss(y):
        dg = persistence_diagrams(y, valid, (0, 1))
        return sum(chamfer_diagram_distance(*dg[d], *target[d]).sum() for d in (0, 1))

    assert torch.autograd.gradcheck(loss, (x,), eps=1e-7, atol=1e-5)


def test_normalisation_removes_feature_scale():
    student, teacher, offset = _feats(seed=2)
    norm, raw = TopologyKD(num_points=32), TopologyKD(num_points=32, normalize=False)
    scaled = student.detach() * 5.0
    assert torch.allclose(norm(scaled, teacher, offset)["loss_kd_topo"],
                          norm(student.detach(), teacher, offset)["loss_kd_topo"], rtol=1e-4)
    assert not torch.allclose(raw(scaled, teacher, offset)["loss_kd_topo"],
                              raw(student.detach(), teacher, offset)["loss_kd_topo"], rtol=1e-2)


def test_tiny_samples_and_single_dimension():
    student, teacher, offset = _feats(counts=(2, 1, 30))
    for dims in ((0,), (1,), (0, 1)):
        out = TopologyKD(num_points=16, homology_dims=dims)(student, teacher, offset)["loss_kd_topo"]
        assert torch.isfinite(out)


def test_registry_and_validation():
    assert isinstance(LOSSES.build(dict(type="TopologyKD", num_points=8)), TopologyKD)
    for bad in (dict(sampling="random"), dict(homology_dims=(2,)), dict(distance="bottleneck"),
                dict(num_points=1)):
        with pytest.raises(ValueError, match="TopologyKD"):
            TopologyKD(**bad)
    student, teacher, offset = _feats()
    with pytest.raises(ValueError, match="TopologyKD"):
        TopologyKD()(student[:-1], teacher, offset)


def test_same_loss_under_autocast():
    student, teacher, offset = _feats(seed=6)
    kd = TopologyKD(num_points=32)
    want = kd(student, teacher, offset)["loss_kd_topo"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = kd(student, teacher, offset)["loss_kd_topo"]
    assert got.dtype == torch.float32 and torch.allclose(got, want, rtol=1e-6)


def test_empty_loop_diagrams_give_zero_and_finite_gradient():
    line = torch.linspace(0, 1, 40)[:, None] * torch.ones(1, 4)
    student = (2.0 * line).requires_grad_(True)
    for distance in ("chamfer", "sliced_wasserstein"):
        out = TopologyKD(num_points=16, homology_dims=(1,), distance=distance)(student, line, torch.tensor([40]))
        out["loss_kd_topo"].backward()
        assert out["loss_kd_topo"].item() == 0.0 and torch.isfinite(student.grad).all()


def test_worker_processes_give_the_same_loss_and_gradient():
    from pointcept_distill.distill.losses import TopologyKD
    torch.manual_seed(0)
    s = torch.randn(90, 8, requires_grad=True)
    t = torch.randn(90, 16)
    offset = torch.tensor([40, 90])
    local = TopologyKD(num_points=24)(s, t, offset)["loss_kd_topo"]
    (g_local,) = torch.autograd.grad(local, s)
    pooled = TopologyKD(num_points=24, workers=2)(s, t, offset)["loss_kd_topo"]
    (g_pooled,) = torch.autograd.grad(pooled, s)
    assert torch.equal(local, pooled) and torch.equal(g_local, g_pooled)


@pytest.mark.parametrize("workers", [0, 2])
def test_started_loss_equals_forward(workers):
    student, teacher, offset = _feats(seed=7)
    kd = TopologyKD(num_points=24, workers=workers)
    want = kd(student, teacher, offset)["loss_kd_topo"]
    (g_want,) = torch.autograd.grad(want, student)
    pending = kd.start(student, teacher, offset)
    torch.randn(64, 64) @ torch.randn(64, 64)  # other work while the pairs are computed
    got = pending.result()
    (g_got,) = torch.autograd.grad(got["loss_kd_topo"], student)
    assert list(got) == ["loss_kd_topo"] and torch.equal(got["loss_kd_topo"], want) and torch.equal(g_got, g_want)


def test_error_in_the_persistence_job_is_raised_by_result(monkeypatch):
    from pointcept_distill.distill.losses import topo_kd

    def broken(dist):
        raise RuntimeError("persistence failed")

    student, teacher, offset = _feats()
    kd = TopologyKD(num_points=16)
    with monkeypatch.context() as patch:
        patch.setattr(topo_kd, "rips_pairs_from_distances", broken)
        pending = kd.start(student, teacher, offset)
        with pytest.raises(RuntimeError, match="persistence failed"):
            pending.result()
    assert torch.isfinite(kd(student, teacher, offset)["loss_kd_topo"])  # the thread still serves


_RANKS_USING_WORKERS = """
import torch
from pointcept_distill.engine.launch import launch
from pointcept_distill.distill.losses.topo_kd import rips_pairs_batch

def main():
    x = torch.randn(2, 12, 4)
    rips_pairs_batch([(x, torch.ones(2, 12, dtype=torch.bool))], workers=2)

if __name__ == "__main__":
    launch(main, num_gpus_per_machine=2)  # two spawned gloo ranks, each with its own worker pool
    print("all ranks exited")
"""


def test_spawned_ranks_with_worker_pools_exit(tmp_path):
    # a rank is a multiprocessing child: it joins its children before threading's atexit hooks run, so a pool
    # left open would keep it (and the job) waiting forever; the pools must be shut down by then
    import subprocess
    import sys
    script = tmp_path / "ranks.py"
    script.write_text(_RANKS_USING_WORKERS)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240,
                          env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "all ranks exited" in done.stdout
