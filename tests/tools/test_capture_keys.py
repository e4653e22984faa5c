"""tools/capture_keys.py: the capacity keys of augmented training batches (no model run)."""
from __future__ import annotations

from tool_modules import load_tool


def test_capture_keys_counts_the_keys_of_training_batches():
    tool = load_tool("capture_keys")
    plans = tool.batch_plans("nuscenes", frames=3, batch_size=2, steps=8, strides=[2, 2], scale=0.1, seed=0)
    assert len(plans) == 8 and all(len(p.sizes) == 3 and p.samples == 2 for p in plans)
    fine, coarse = tool.key_statistics(plans, 8), tool.key_statistics(plans, 1)
    assert 1 <= coarse["keys"] <= fine["keys"] <= 8 and sum(fine["new_keys_per_quarter"]) == fine["keys"]
    assert 0 < fine["mean_padding"] <= 1 / 8 and fine["mean_padding"] <= coarse["mean_padding"] <= 1
    assert "| 8 | 8 |" in tool.table([fine])


def test_capture_keys_reads_a_dataset_on_disk(tmp_path, capsys):
    from pointcept_distill.data.simulator import generate
    tool = load_tool("capture_keys")
    generate("semantic_kitti", str(tmp_path), train=2, val=0, seed=1, scale=0.1)
    rows = tool.main(["--profile", "semantic_kitti", "--data-root", str(tmp_path), "--batch-size", "1",
                      "--steps", "6", "--steps-per-octave", "4", "--stride", "2,2"])
    assert rows[0]["steps"] == 6 and 1 <= rows[0]["keys"] <= 6
    assert str(tmp_path) in capsys.readouterr().out
