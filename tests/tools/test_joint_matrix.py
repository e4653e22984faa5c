"""``tools/cross_dataset_matrix.py`` end to end on tiny simulated data (teacher, distilled student, joint)."""
from __future__ import annotations

import json

import pytest
from tool_modules import load_tool


def _load_tool(name: str = "cross_dataset_matrix"):
    return load_tool(name)


@pytest.mark.slow
def test_matrix_trains_distils_and_evaluates(tmp_path, capsys):
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
    # the console says which stage runs, its number among all and the time left
    stages = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[cross_dataset_matrix] stage")]
    assert [line.split()[2] for line in stages] == [f"{k}/8:" for k in range(1, 9)]
    assert stages[0].startswith("[cross_dataset_matrix] stage 1/8: waymo teacher: train")
    assert "joint student: evaluate on waymo, nuscenes" in stages[-1] and "left)" in stages[-1]


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
