"""tools/export.py: a tiny student exported at a fixed capacity runs through examples/run_exported.py in a Python
that cannot import pointcept_distill, with the eager model's logits (1e-4 relative)."""
from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pointcept_distill.models import build_model
from tiny_configs import ROOT, tiny_config
from tool_modules import load_tool

export = load_tool("export")
EXAMPLE = os.path.join(ROOT, "examples", "run_exported.py")
CAPACITY = 1024

# runs the loader example where importing pointcept_distill fails, and records what it imported
ISOLATED = r"""
import json, runpy, sys
import numpy as np
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pointcept_distill":
            raise ImportError("pointcept_distill must not be needed by an exported model")
sys.meta_path.insert(0, Blocked())
repo, folder, inputs, out, scan = sys.argv[1:6]
assert not any(p and repo.rstrip("/") == p.rstrip("/") for p in sys.path), sys.path
example = runpy.run_path(repo + "/examples/run_exported.py")
exported = example["Exported"](folder)
data = np.load(inputs)
np.save(out, exported.logits(data["coord"], data["grid_coord"], data["feat"]).numpy())
sys.argv = ["run_exported.py", folder, scan, "--out", out + ".label"]
example["main"]()
print(json.dumps(sorted(m for m in sys.modules if m.startswith("pointcept"))))
"""


def _scan(n: int = 900, seed: int = 0) -> np.ndarray:
    """(n, 4) float32 points in a 3 m cube (about 60 voxels a side at 5 cm), nuScenes-style intensity 0-255."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(-1.5, 1.5, (n, 3)), rng.uniform(0, 255, (n, 1))], 1).astype(np.float32)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    cfg = tiny_config("nuscenes", str(root / "data"))
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    weight = str(root / "model.pth")
    torch.save({"state_dict": model.state_dict()}, weight)
    return cfg, weight, model, root


def _run_isolated(root, folder, voxels, points):
    np.savez(root / "inputs.npz", **dict(zip(("coord", "grid_coord", "feat"), voxels)))
    points.tofile(root / "scan.bin")
    out = str(root / "logits.npy")
    proc = subprocess.run([sys.executable, "-I", "-c", ISOLATED, ROOT, str(folder), str(root / "inputs.npz"),
                           out, str(root / "scan.bin")], cwd=str(root), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []          # no module of the package loaded
    return torch.from_numpy(np.load(out)), np.fromfile(out + ".label", dtype=np.int32)


def _check_against_eager(student, fmt):
    cfg, weight, model, root = student
    folder = root / fmt
    meta = export.export_checkpoint(cfg, weight, [CAPACITY], str(folder), fmt=fmt, log=lambda *a: None)
    assert meta["artifacts"][0]["file"] == f"model_c{CAPACITY}.pt2" and meta["min_depth"] == 4
    assert meta["feat_keys"] == ["coord", "strength"] and meta["grid_size"] == 0.05
    assert meta["intensity"] == "nuscenes" and not meta["unsupported"]
    example = runpy.run_path(EXAMPLE)
    points = _scan()
    coord, grid, feat, inverse = voxels = example["voxelize"](points, meta)
    assert 0 < len(coord) < CAPACITY
    logits, labels = _run_isolated(root, folder, voxels[:3], points)
    with torch.no_grad():
        ref = model(dict(coord=torch.from_numpy(coord), grid_coord=torch.from_numpy(grid),
                         feat=torch.from_numpy(feat), offset=torch.tensor([len(coord)])))["seg_logits"]
    torch.testing.assert_close(logits, ref, rtol=0, atol=1e-4 * float(ref.abs().max()))
    np.testing.assert_array_equal(labels, ref.argmax(1).numpy()[inverse])


def test_exported_program_runs_without_the_package_with_eager_logits(student):
    _check_against_eager(student, "program")


@pytest.mark.slow
def test_aoti_package_runs_without_the_package_with_eager_logits(student):
    _check_against_eager(student, "aoti")       # compiles C++ (about a minute on 2 busy cores)


def test_in_graph_depth_codes_equal_the_eager_codes():
    from pointcept_distill.models.serialization import encode_orders
    g = torch.randint(0, 300, (500, 3))
    batch = torch.zeros(500, dtype=torch.long)
    orders = ("z", "z-trans", "hilbert", "hilbert-trans")
    for depth in (9, 12, 16):
        ref = torch.argsort(encode_orders(g, batch, depth, orders), dim=1, stable=True)
        got = export._encode(g, batch, torch.tensor(depth), orders)
        assert torch.equal(torch.argsort(got, dim=1, stable=True), ref)
        assert torch.equal(export._hilbert(g, torch.tensor(depth)), encode_orders(g, None, depth, ("hilbert",))[0])


def test_cuda_packages_are_tuned_on_the_traced_inputs_and_keep_the_cpu_workaround():
    cuda, cpu = export.aoti_configs(torch.device("cuda")), export.aoti_configs(torch.device("cpu"))
    assert cuda["triton.autotune_at_compile_time"] is False
    assert "triton.autotune_at_compile_time" not in cpu
    assert cpu["inplace_buffers"] is False and cuda["inplace_buffers"] is False


def test_a_scan_larger_than_the_capacity_and_a_bad_capacity_are_refused(student, tmp_path):
    cfg, weight, model, _ = student
    with pytest.raises(ValueError, match="capacity must be at least 2"):
        export.export_model(model, 1, str(tmp_path / "m.pt2"), "program")
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "export.json").write_text(json.dumps(dict(
        format="program", artifacts=[dict(capacity=64, file="model_c64.pt2")], min_depth=4, max_grid_coord=65535,
        feat_keys=["coord", "strength"], grid_size=0.05, intensity="nuscenes", point_cloud_range=None)))
    example = runpy.run_path(EXAMPLE)
    exported = example["Exported"](str(folder))
    with pytest.raises(ValueError, match="the scan has .* voxels, more than the largest exported capacity allows "
                                         r"\(64 rows, one of them padding\); export one with tools/export.py "
                                         "--capacity"):
        example["segment"](exported, _scan(400))


def test_an_artifact_unlike_the_eager_model_is_not_kept(student, tmp_path, monkeypatch):
    _, _, model, _ = student
    path = tmp_path / "model_c1024.pt2"
    wrong = SimpleNamespace(module=lambda: (lambda *inputs: torch.zeros(CAPACITY, 16)))
    monkeypatch.setattr(torch.export, "load", lambda *args, **kwargs: wrong)
    with pytest.raises(RuntimeError, match=r"model_c1024.pt2 \(program\) differs from the eager model by 1 .* "
                                           "the artifact is not kept"):
        export.export_model(model, CAPACITY, str(path), "program")
    assert not path.exists()


def test_verify_checks_the_artifacts_already_written_and_keeps_them(student, tmp_path):
    """``--verify`` (e.g. in a fresh process, or on the deploying machine) checks what an export wrote without
    exporting again; an artifact of other weights fails the check and stays; a missing one is named."""
    cfg, weight, model, root = student
    folder = tmp_path / "program"
    export.export_checkpoint(cfg, weight, [CAPACITY], str(folder), fmt="program", log=lambda *a: None)
    written = (folder / f"model_c{CAPACITY}.pt2").read_bytes()
    log: list[str] = []
    meta = export.export_checkpoint(cfg, weight, [CAPACITY], str(folder), fmt="program", log=log.append,
                                    verify=True)
    assert meta["artifacts"][0]["relative_error"] <= 1e-4 and any("checked" in line for line in log)
    assert (folder / f"model_c{CAPACITY}.pt2").read_bytes() == written              # not exported again
    other = build_model(cfg.model)
    torch.save({"state_dict": other.state_dict()}, tmp_path / "other.pth")
    with pytest.raises(RuntimeError, match="differs from the eager model .* the artifact is kept"):
        export.export_checkpoint(cfg, str(tmp_path / "other.pth"), [CAPACITY], str(folder), fmt="program",
                                 log=log.append, verify=True)
    assert (folder / f"model_c{CAPACITY}.pt2").read_bytes() == written
    with pytest.raises(FileNotFoundError, match=r"no artifact .*model_c2048.pt2"):
        export.export_checkpoint(cfg, weight, [2048], str(folder), fmt="program", log=log.append, verify=True)


def test_constants_left_on_another_device_are_moved_before_compiling():
    """A table the model makes on the host during tracing becomes a lifted host constant of the program; a CUDA
    package must not carry it (``constants_to``; here moved to the meta device, which the CPU has)."""

    class WithTable(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("scale", torch.ones(3))

        def forward(self, x):
            return x * self.scale + torch.tensor([1.0, 2.0, 3.0])

    program = torch.export.export(WithTable(), (torch.zeros(2, 3),), strict=False)
    moved = export.constants_to(program, torch.device("meta"))
    assert set(moved) == set(program.constants) | {"scale"} and len(moved) == 2
    assert all(v.device.type == "meta" for v in [*program.constants.values(), *program.state_dict.values()])
    assert export.constants_to(program, torch.device("meta")) == []
