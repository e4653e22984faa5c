"""``tools/cross_dataset_matrix.py`` end to end on tiny simulated data (teacher, distilled student, joint)."""
from __future__ import annotations

import json

import pytest
from tool_modules import load_tool


def _load_tool(name: str = "cross_dataset_matrix"):
    return load_tool(name)


@pytest.mark.slow
def test_matrix_trains_distils_and_evaluates(tmp_path):
    tool = _load_tool()
    out = tmp_path / "exp"
    report = tool.main(["--generate", str(tmp_path / "data"), "--train-frames", "1", "--val-frames", "1",
                        "--scale", "0.02", "--epochs", "1", "--sources", "waymo", "joint",
                        "--targets", "waymo", "nuscenes", "--out", str(out)])
    results = report["results"]
    assert set(results) == {"teacher", "student"}
    for kind in results.values():
        assert set(kind) == {"waymo", "joint"}
        for row in kind.values():
            assert set(row) == {"waymo", "nuscenes"}
            for cell in row.values():
                assert 0.0 <= cell["single_pass"]["mIoU"] <= 1.0
                assert "pole_sign" not in row["nuscenes"]["single_pass"]["iou_per_class"]
    assert (out / "joint" / "student" / "model" / "model_last.pth").is_file()
    with open(out / "matrix.json", encoding="utf-8") as f:
        assert json.load(f)["results"] == json.loads(json.dumps(results))
    table = (out / "matrix.md").read_text()
    assert "| joint |" in table and "**student**, single_pass" in table


@pytest.mark.slow
def test_sources_run_in_parallel_processes_give_the_same_matrix(tmp_path):
    tool = _load_tool()
    common = ["--train-frames", "1", "--val-frames", "1", "--scale", "0.02", "--epochs", "1", "--no-distill",
              "--sources", "waymo", "nuscenes", "--targets", "waymo", "nuscenes"]
    serial = tool.main(["--generate", str(tmp_path / "data"), *common, "--out", str(tmp_path / "serial")])
    parallel = tool.main(["--generate", str(tmp_path / "data"), *common, "--gpus", "0,0",
                          "--out", str(tmp_path / "parallel")])
    assert parallel["results"] == json.loads(json.dumps(serial["results"]))
    assert list(parallel["results"]["teacher"]) == ["waymo", "nuscenes"]
    for source in ("waymo", "nuscenes"):  # each source ran in its own process, with its own log
        assert "trained and evaluated" in (tmp_path / "parallel" / source / "matrix.log").read_text()


@pytest.mark.slow
def test_sim_loss_ablation_trains_every_row_from_one_teacher(tmp_path):
    tool = _load_tool("sim_loss_ablation")
    out = tmp_path / "exp"
    results = tool.main(["--generate", str(tmp_path / "data"), "--train-frames", "1", "--val-frames", "1",
                         "--scale", "0.02", "--epochs", "1", "--grad-weights", "10,1", "--out", str(out)])
    assert list(results) == ["teacher", "student alone", "+logit KD", "+gradient-guided (λ 10)",
                             "+gradient-guided (λ 1)", "+topology", "all three (λ 10)", "all three (λ 1)"]
    assert all(0.0 <= r[m] <= 1.0 for r in results.values() for m in ("single_pass", "tta"))
    logs = {p.parent.name: p.read_text() for p in out.glob("*/train.log")}
    assert "loss_kd" not in logs["student_alone"]
    assert "loss_kd_logit" in logs["logit_KD"] and "loss_kd_grad" not in logs["logit_KD"]
    assert "loss_kd_grad" in logs["gradient-guided_1"] and "loss_kd_topo" not in logs["gradient-guided_1"]
    assert all(f"loss_{k}" in logs["all_three_1"] for k in ("kd_logit", "kd_grad", "kd_topo"))
    configs = {p.parent.name: p.read_text() for p in out.glob("*/config.py")}
    assert "'loss_weight': 1.0" in configs["all_three_1"] and "'loss_weight': 10.0" in configs["all_three_10"]
    assert "| +topology |" in (out / "ablation.md").read_text()


def test_sim_loss_ablation_rows_are_selected_by_name():
    tool = _load_tool("sim_loss_ablation")
    rows = tool.variants([10.0, 1.0])
    assert tool.select(rows, None) is rows
    picked = tool.select(rows, "all three (λ 1), student alone")
    assert list(picked) == ["all three (λ 1)", "student alone"]
    assert picked["all three (λ 1)"] == {"grad_kd": {"loss_weight": 1.0}}
    with pytest.raises(SystemExit, match="all three"):
        tool.select(rows, "all three")
