"""tools/release.py: a release of a tiny random PT-v3m1 on simulator frames loads strictly and reproduces
its metrics."""
from __future__ import annotations

import json
import os
import re
import shutil

import pytest
import torch

import pointcept_distill.data  # noqa: F401
import pointcept_distill.models  # noqa: F401
from pointcept_distill.data.simulator import generate
from pointcept_distill.engine import SemSegTester
from pointcept_distill.engine.checkpoint import CheckpointError
from pointcept_distill.inference import sha256_file
from pointcept_distill.models import build_model
from pointcept_distill.utils.config import Config
from payloads import WritesMarker
from tiny_configs import tiny_config
from tool_modules import load_tool


release = load_tool("release")


def make_tiny_exp(root, seed: int = 0) -> str:
    """exp/nuscenes/tiny: a tiny config on 1 simulated val frame, random weights saved as a
    DDP-trained checkpoint (``module.`` keys, optimizer) with a stray teacher key."""
    data_root = os.path.join(root, "data", "nuscenes")
    generate("nuscenes", data_root, 1, 1, seed=0, scale=0.1)
    exp = os.path.join(root, "exp", "nuscenes", "tiny")
    os.makedirs(os.path.join(exp, "model"))
    cfg = tiny_config("nuscenes", data_root)
    cfg.save_path = exp
    cfg.dump(os.path.join(exp, "config.py"))
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state}, os.path.join(exp, "model", "model_last.pth"))  # what the tester loads
    state["teacher.seg_head.weight"] = torch.zeros(1)
    torch.save({"epoch": 2, "state_dict": state, "optimizer": {"state": {}}, "best_metric_value": 0.1},
               os.path.join(exp, "model", "model_best.pth"))
    return exp


def run_tester(exp: str, single_pass: bool) -> dict:
    cfg = Config.fromfile(os.path.join(exp, "config.py"))
    cfg.merge_from_dict(dict(weight=os.path.join(exp, "model", "model_last.pth"), num_worker_per_gpu=0))
    summary = SemSegTester(cfg, single_pass=single_pass).test()
    release._close_file_handlers(exp)
    return summary


@pytest.fixture(scope="module")
def tiny_exp(tmp_path_factory) -> tuple[str, dict, dict]:
    exp = make_tiny_exp(str(tmp_path_factory.mktemp("rel")))
    single = run_tester(exp, single_pass=True)
    os.replace(os.path.join(exp, "result", "summary.json"), os.path.join(exp, "result", "summary_single.json"))
    tta = run_tester(exp, single_pass=False)
    return exp, single, tta


def test_release_files_weights_and_metrics(tiny_exp, tmp_path):
    exp, single, tta = tiny_exp
    out = str(tmp_path / "tiny")
    info = release.make_release(exp, out, half=True, latency_runs=1, device="cpu")
    assert sorted(os.listdir(out)) == ["README.md", "SHA256SUMS", "config.py", "metrics.json", "model.pth",
                                       "model_fp16.pth"]
    ckpt = torch.load(os.path.join(out, "model.pth"), map_location="cpu", weights_only=True)
    assert list(ckpt) == ["state_dict"]
    state = ckpt["state_dict"]
    assert not any(k.startswith(("module.", "teacher.")) for k in state)
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    half = torch.load(os.path.join(out, "model_fp16.pth"), map_location="cpu", weights_only=True)["state_dict"]
    assert half.keys() == state.keys() and half["seg_head.weight"].dtype == torch.float16

    cfg = Config.fromfile(os.path.join(out, "config.py"))
    model = build_model(cfg.model)
    model.load_state_dict(state, strict=True)
    assert info["params"] == sum(p.numel() for p in model.parameters())

    recorded = json.loads(open(os.path.join(out, "metrics.json")).read())
    assert recorded["metrics"]["single_pass"]["mIoU"] == pytest.approx(single["mIoU"])
    assert recorded["metrics"]["tta"]["iou_per_class"] == pytest.approx(tta["iou_per_class"])
    assert recorded["metrics"]["tta"]["views"] == 2 and recorded["source"]["epoch"] == 2
    assert recorded["latency"]["ms_median"] > 0 and recorded["latency"]["device"].startswith("CPU")
    assert recorded["dataset"] == "nuscenes" and recorded["metrics"]["tta"]["weight"].endswith("model_last.pth")

    sums = dict(reversed(line.split()) for line in open(os.path.join(out, "SHA256SUMS")))
    assert set(sums) == set(os.listdir(out)) - {"SHA256SUMS"}
    assert all(sha256_file(os.path.join(out, name)) == digest for name, digest in sums.items())
    card = open(os.path.join(out, "README.md")).read()
    assert f"{100 * single['mIoU']:.2f}" in card and "weight=model.pth" in card and "vegetation" in card

    reproduced = release.verify_release(out)
    assert reproduced["single_pass"]["mIoU"] == pytest.approx(single["mIoU"], abs=1e-9)
    assert reproduced["tta"]["mIoU"] == pytest.approx(tta["mIoU"], abs=1e-9)


def test_evaluate_matches_exp_results_and_verify_catches_tampering(tiny_exp, tmp_path):
    exp, single, tta = tiny_exp
    out = str(tmp_path / "evaluated")
    info = release.make_release(exp, out, evaluate_now=True, latency_runs=0)
    assert info["latency"] is None and "model_fp16.pth" not in os.listdir(out)
    assert info["metrics"]["single_pass"]["iou_per_class"] == pytest.approx(single["iou_per_class"])
    assert info["metrics"]["tta"]["mIoU"] == pytest.approx(tta["mIoU"])

    tampered = str(tmp_path / "tampered")
    shutil.copytree(out, tampered)
    metrics = json.loads(open(os.path.join(tampered, "metrics.json")).read())
    metrics["metrics"]["single_pass"]["mIoU"] += 0.01
    with open(os.path.join(tampered, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    with pytest.raises(CheckpointError, match="metrics.json"):
        release.verify_release(tampered)
    release.write_sha256sums(tampered)
    with pytest.raises(release.ReleaseMismatch, match="single_pass"):
        release.verify_release(tampered)


def test_verify_refuses_incomplete_or_escaping_sums_and_pickled_code(tiny_exp, tmp_path):
    exp, _, _ = tiny_exp
    out = str(tmp_path / "rel")
    release.make_release(exp, out, latency_runs=0)

    def copy(name: str) -> str:
        return shutil.copytree(out, str(tmp_path / name))

    bare = copy("bare")
    os.remove(os.path.join(bare, "SHA256SUMS"))
    with pytest.raises(CheckpointError, match=r"bare/SHA256SUMS does not exist"):
        release.verify_release(bare)
    extra = copy("extra")
    with open(os.path.join(extra, "run.py"), "w") as f:
        f.write("print('unlisted')\n")
    with pytest.raises(CheckpointError, match=r"does not list \['run\.py'\]"):
        release.verify_release(extra)
    escaping = copy("escaping")
    with open(os.path.join(escaping, "SHA256SUMS"), "a") as f:
        f.write(f"{'0' * 64}  ../rel/model.pth\n")
    with pytest.raises(CheckpointError, match=r"lists '\.\./rel/model\.pth', a path outside the release"):
        release.verify_release(escaping)

    marker = tmp_path / "marker"
    evil = copy("evil")
    state = torch.load(os.path.join(out, "model.pth"), weights_only=True)
    torch.save({**state, "card": WritesMarker(marker)}, os.path.join(evil, "model.pth"))
    release.write_sha256sums(evil)
    with pytest.raises(CheckpointError, match=r"model\.pth' is refused"):
        release.verify_release(evil)
    assert not marker.exists()


def test_model_zoo_rows(tiny_exp, tmp_path):
    exp, single, _ = tiny_exp
    out = str(tmp_path / "releases" / "tiny")
    release.make_release(exp, out, latency_runs=0, name="tiny-student")
    zoo = str(tmp_path / "MODEL_ZOO.md")
    with open(zoo, "w") as f:
        f.write("# Zoo\n")
    release.update_model_zoo(zoo, out)
    release.update_model_zoo(zoo, out)
    text = open(zoo).read()
    rows = [line for line in text.splitlines() if line.startswith("| tiny-student |")]
    assert len(rows) == 1 and f"{100 * single['mIoU']:.2f}" in rows[0] and "`releases/tiny`" in rows[0]
    assert text.startswith("# Zoo") and sha256_file(os.path.join(out, "model.pth"))[:12] in rows[0]


def test_rejects_weights_of_another_model(tiny_exp, tmp_path):
    exp, _, _ = tiny_exp
    bad = str(tmp_path / "bad.pth")
    torch.save({"state_dict": {"seg_head.weight": torch.zeros(3, 3)}}, bad)
    with pytest.raises(CheckpointError, match="strictly"):
        release.make_release(exp, str(tmp_path / "out"), weight=bad, latency_runs=0)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a release"):
        release.make_release(exp, str(tmp_path / "notes"), latency_runs=0)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_release_writes_only_into_a_new_empty_or_its_own_folder(tiny_exp, tmp_path):
    exp, _, _ = tiny_exp
    empty = tmp_path / "empty"
    empty.mkdir()
    release.make_release(exp, str(empty), latency_runs=0)
    release.make_release(exp, str(empty), latency_runs=0, half=True)     # its own release: replaced
    assert "model_fp16.pth" in os.listdir(empty)
    release.make_release(exp, str(empty), latency_runs=0)                # ... and no stale fp16 weights left
    assert "model_fp16.pth" not in os.listdir(empty)
    release.verify_sha256sums(str(empty))

    def refused(folder, match: str) -> None:
        before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        with pytest.raises(FileExistsError, match=match):
            release.make_release(exp, str(folder), latency_runs=0)
        assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before

    mine = tmp_path / "mine"                                              # looks like a release, is not one
    mine.mkdir()
    (mine / "metrics.json").write_text("{}")
    (mine / "results.csv").write_text("my numbers")
    refused(mine, r"mine.*not a release made by tools/release\.py")
    extra = tmp_path / "extra"                                            # a release plus a file of the user's
    shutil.copytree(empty, extra)
    (extra / "notes.txt").write_text("mine")
    refused(extra, r"extra.*notes\.txt")
    edited = tmp_path / "edited"                                          # a release edited since
    shutil.copytree(empty, edited)
    (edited / "README.md").write_text("my edits")
    refused(edited, r"edited.*README\.md")


def test_command_line(tiny_exp, tmp_path, capsys):
    exp, single, _ = tiny_exp
    out = str(tmp_path / "cli")
    assert release.main([exp, out, "--latency-runs", "0", "--name", "cli-tiny",
                         "--zoo", str(tmp_path / "ZOO.md")]) == 0
    assert "released cli-tiny" in capsys.readouterr().out
    assert "| cli-tiny |" in (tmp_path / "ZOO.md").read_text()
    assert release.main(["--verify", out]) == 0
    assert f"single_pass: mIoU {single['mIoU']:.4f} reproduced" in capsys.readouterr().out


ABSOLUTE = re.compile(r"(?:^|[\s`'\"(=])/[^\s/`'\"]+/")  # a token that starts at the file-system root


def test_card_and_metrics_name_no_absolute_path_and_stages_are_printed(tiny_exp, tmp_path, capsys):
    exp, _, _ = tiny_exp
    assert os.path.isabs(exp) and os.path.isabs(Config.fromfile(os.path.join(exp, "config.py")).data.train.data_root)
    out = str(tmp_path / "portable")
    release.make_release(exp, out, latency_runs=0, evaluate_now=True, zoo=str(tmp_path / "ZOO.md"))
    card = open(os.path.join(out, "README.md"), encoding="utf-8").read()
    metrics = open(os.path.join(out, "metrics.json"), encoding="utf-8").read()
    for text in (card, metrics):
        assert not ABSOLUTE.search(text), ABSOLUTE.search(text).group(0)
        assert os.path.dirname(exp) not in text
    assert "`.../nuscenes/tiny` (`model/model_best.pth`" in card          # outside the working directory
    assert json.loads(metrics)["source"]["weight"] == "model/model_best.pth"
    stages = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[release] ")]
    assert [line.split()[2] for line in stages[:-1]] == [f"{k}/6:" for k in range(1, 7)]
    assert "evaluate tta" in stages[3] and "left)" in stages[3] and stages[-1].startswith("[release] released")
    release.main(["--verify", out])
    verify = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[release --verify] stage")]
    assert [line.split()[3] for line in verify] == ["1/1:", "2/3:", "3/3:"]
