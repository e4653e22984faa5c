"""tools/kd_bench.py: the KD benchmark's protocol end to end at its smoke size, its reuse of finished runs, and
its statistics."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

import pytest
from scipy import stats

from tool_modules import load_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
kd_bench = load_tool("kd_bench")


def _bench(out, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, os.path.join(ROOT, "tools", "kd_bench.py"), "--size", "smoke", "--out", str(out), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.mark.slow
def test_smoke_size_writes_the_table_and_json_and_reuses_finished_runs(tmp_path):
    rows = "student alone,logit KD"
    proc = _bench(tmp_path, "--seeds", "2", "--rows", rows, "--data-seed", "3", "--grad-norm-interval", "1",
                  "--beside-teacher", "1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the student alone (no teacher needed) started while the teacher trained, the distilled rows after it
    teacher_done = (tmp_path / "teacher" / "kd_bench_result.json").stat().st_mtime
    started = {row: (tmp_path / "runs" / row / "seed0" / "config.py").stat().st_mtime
               for row in ("student_alone", "logit_KD")}
    assert started["student_alone"] < teacher_done < started["logit_KD"]
    report = json.loads((tmp_path / "kd_bench.json").read_text())
    assert len(report["teacher"]["miou"]) == 1 and 0 <= report["teacher"]["miou"][0] <= 1
    assert list(report["rows"]) == ["student alone", "logit KD"]
    for name, row in report["rows"].items():
        assert len(row["miou"]) == len(row["miou_tta"]) == len(row["miou_val2"]) == 2
        assert all(0 <= v <= 1 for v in row["miou"] + row["miou_tta"])
    kd, alone = report["rows"]["logit KD"], report["rows"]["student alone"]
    assert kd["diff"] == pytest.approx(sum(kd["miou"]) / 2 - sum(alone["miou"]) / 2)
    assert kd["diff_ci95"][0] <= kd["diff"] <= kd["diff_ci95"][1]
    # the KD term's gradient into the student against the segmentation loss's, read back from TensorBoard
    assert kd["grad_ratio"]["loss_kd_logit"] > 0 and alone["grad_ratio"] == {}
    assert "| logit KD | 2 |" in proc.stdout and "validation spread" in proc.stdout
    # the data came from --data-seed, with a second validation set
    assert json.loads((tmp_path / "data" / "settings.json").read_text())["data_seed"] == 3
    assert (tmp_path / "data" / "nuscenes-val2" / "info" / "nuscenes_infos_10sweeps_val.pkl").is_file()

    again = _bench(tmp_path, "--seeds", "2", "--rows", rows, "--data-seed", "3", "--grad-norm-interval", "1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "to train" not in again.stdout                     # every run was reused
    assert json.loads((tmp_path / "kd_bench.json").read_text())["rows"]["logit KD"]["miou"] == kd["miou"]

    changed = _bench(tmp_path, "--seeds", "2", "--rows", rows, "--data-seed", "3", "--student-epochs", "2",
                     "--grad-norm-interval", "1")
    assert changed.returncode != 0 and "other settings" in changed.stderr


def test_paired_interval_is_the_t_interval_of_the_differences():
    values, baseline = [0.41, 0.44, 0.40, 0.43], [0.39, 0.41, 0.40, 0.40]
    diff, low, high = kd_bench.paired_interval(values, baseline)
    d = [v - b for v, b in zip(values, baseline)]
    expected = stats.t.interval(0.95, len(d) - 1, loc=sum(d) / len(d), scale=stats.sem(d))
    assert diff == pytest.approx(sum(d) / len(d))
    assert (low, high) == pytest.approx(expected)


def test_rows_are_checked_and_extra_rows_are_built(tmp_path):
    with pytest.raises(SystemExit):
        kd_bench.parse_args(["--size", "smoke", "--out", str(tmp_path), "--rows", "student alone,nonsense"])
    spec = {"logit T2": {"config": "paper", "keep": ["logit_kd"],
                         "add": {"logit_kd": {"type": "LogitKD", "temperature": 2.0, "loss_weight": 1.0}}}}
    kd_bench.parse_args(["--size", "smoke", "--out", str(tmp_path), "--extra-rows", json.dumps(spec),
                         "--rows", "logit T2"])
    section = kd_bench.distill_section(kd_bench.SIZES["smoke"], kd_bench.ROWS["logit T2"])
    assert section["logit_kd"]["temperature"] == 2.0
    assert section["grad_kd"] is None and section["topo_kd"] is None
    assert kd_bench.distill_section(kd_bench.SIZES["smoke"], kd_bench.ROWS["student alone"]) is None
    with pytest.raises(SystemExit, match="config"):
        kd_bench.load_extra_rows(json.dumps({"x": {"config": "nope"}}))


def test_a_row_keeps_only_its_losses_of_the_shipped_recipe():
    # every *_kd key of the shipped recipe that a row does not keep is off, whatever the recipe holds
    shipped = kd_bench.distill_section(kd_bench.SIZES["smoke"], kd_bench.ROWS["distill"])
    on = sorted(k for k, v in shipped.items() if k.endswith("_kd") and v is not None)
    assert len(on) >= 2, on
    kd_bench.ROWS["only the first"] = kd_bench.Row("distill", (on[0],))
    try:
        section = kd_bench.distill_section(kd_bench.SIZES["smoke"], kd_bench.ROWS["only the first"])
    finally:
        del kd_bench.ROWS["only the first"]
    assert [k for k, v in section.items() if k.endswith("_kd") and v is not None] == [on[0]]
    dist = kd_bench.distill_section(kd_bench.SIZES["smoke"], kd_bench.ROWS["DIST"])
    assert dist["dist_kd"]["type"] == "DISTKD" and dist["logit_kd"] is None and dist.get("cwd_kd") is None


def _summary(rows: dict[str, list[float]]) -> dict:
    results = {name: [dict(miou=m, miou_tta=m, miou_val2=m, seed=k, train_minutes=1.0) for k, m in enumerate(ms)]
               for name, ms in rows.items()}
    return kd_bench.summarize(dict(miou=0.45), results)


def test_run_minutes_leave_resumed_runs_out():
    summary = _summary({"student alone": [0.37, 0.38, 0.36]})
    summary["student alone"].update(train_minutes=[2.0, 4.0, 0.1], resumed=[False, False, True])
    lines = kd_bench.table(dict(miou=0.45, miou_tta=0.46, train_minutes=5.0), summary).splitlines()
    assert lines[2].split("|")[7].strip() == "5.0"
    assert lines[3].split("|")[7].strip() == "3.0*" and "left out" in lines[-1]
    assert kd_bench.run_minutes([0.2], [True]) == "-" and kd_bench.run_minutes([1.0, 3.0], [False, False]) == "2.0"


def test_premise_checks_say_which_bar_is_met():
    alone = [0.37, 0.38, 0.36]
    lines = kd_bench.premise_checks(dict(miou=0.45), _summary({
        "student alone": alone, "distill": [m + 0.02 + 0.001 * k for k, m in enumerate(alone)],
        "CWD": [0.38, 0.36, 0.37], kd_bench.PLATEAU_ROW: [0.44, 0.45, 0.45]}))
    text = "\n".join(lines)
    assert lines[0].startswith("teacher leads the student alone by +8.00 points") and lines[0].endswith(": met")
    assert "twice the steps: +7.67 points" in text and "(plateau: < 1): NOT MET" in text
    assert "nothing to distil at a plateau" in text
    assert [ln for ln in lines if ln.startswith("distill:")][0].endswith(": met")
    assert [ln for ln in lines if ln.startswith("CWD:")][0].endswith("NOT MET")
    assert not [ln for ln in lines if ln.startswith(kd_bench.PLATEAU_ROW + ":")]
    lines = kd_bench.premise_checks(dict(miou=0.40), _summary({"student alone": alone, "distill": alone}))
    assert lines[0].endswith("NOT MET") and lines[1].endswith("NOT MET")
    assert kd_bench.premise_checks(dict(miou=0.4), _summary({"distill": alone})) == []


def test_plateau_row_trains_twice_the_student_schedule(tmp_path):
    size = kd_bench.SIZES["smoke"]
    roots = kd_bench.data_roots(str(tmp_path))
    _, runs = kd_bench.plan_runs(size, ["student alone", kd_bench.PLATEAU_ROW], 1, str(tmp_path), roots)
    assert [r.epochs for r in runs] == [size.student_epochs, 2 * size.student_epochs]
    assert runs[1].distill is None and runs[1].folder != runs[0].folder


def test_teacher_options_reach_the_teacher_only(tmp_path):
    size = dataclasses.replace(kd_bench.SIZES["smoke"], extra={"batch_size": 2},
                               teacher_extra={"param_dicts": [dict(keyword="block", lr=0.0002)]})
    roots = kd_bench.data_roots(str(tmp_path))
    teacher, runs = kd_bench.plan_runs(size, ["student alone", "distill"], 1, str(tmp_path), roots)
    assert teacher.options == {"batch_size": 2, "param_dicts": [dict(keyword="block", lr=0.0002)]}
    assert all(r.options == {"batch_size": 2} for r in runs)
    cfgs = [kd_bench.build_config(r) for r in (teacher, *runs)]
    assert cfgs[0].param_dicts == [dict(keyword="block", lr=0.0002)]
    assert all(c.captured_step["enabled"] is False for c in cfgs)     # eager steps: the protocol's, on CUDA too
    assert all(c.get("param_dicts") != cfgs[0].param_dicts for c in cfgs[1:])
    assert kd_bench.signature(teacher)["extra"] != kd_bench.signature(runs[0])["extra"]


def test_teacher_checkpoints_group_its_epochs_and_change_only_its_signature(tmp_path):
    size = dataclasses.replace(kd_bench.SIZES["smoke"], teacher_epochs=6, teacher_checkpoints=2)
    roots = kd_bench.data_roots(str(tmp_path))
    teacher, runs = kd_bench.plan_runs(size, ["student alone", "distill"], 1, str(tmp_path), roots)
    cfg = kd_bench.build_config(teacher)
    assert (cfg.eval_epoch, cfg.data.train.loop) == (2, 3)        # 6 epochs as 2 trainer epochs of 3 data passes
    assert kd_bench.signature(teacher)["checkpoints"] == 2
    for run in runs:
        assert kd_bench.build_config(run).eval_epoch == run.epochs and "checkpoints" not in kd_bench.signature(run)
    plain = kd_bench.plan_runs(dataclasses.replace(size, teacher_checkpoints=None), [], 1, str(tmp_path), roots)[0]
    assert "checkpoints" not in kd_bench.signature(plain)
    with pytest.raises(SystemExit, match="do not split into 4 checkpoints"):
        kd_bench.plan_runs(dataclasses.replace(size, teacher_checkpoints=4), [], 1, str(tmp_path), roots)


def test_runs_beside_the_teacher_take_their_threads_from_it(tmp_path):
    roots = kd_bench.data_roots(str(tmp_path))
    size = dataclasses.replace(kd_bench.SIZES["smoke"], threads=2, jobs=6)
    assert kd_bench.plan_runs(size, [], 1, str(tmp_path), roots)[0].threads == 12
    beside = dataclasses.replace(size, beside_teacher=3)
    assert kd_bench.plan_runs(beside, [], 1, str(tmp_path), roots)[0].threads == 6


def test_every_run_recomputes_its_batch_norm_statistics_before_it_is_saved(tmp_path):
    size = kd_bench.SIZES["smoke"]
    teacher, runs = kd_bench.plan_runs(size, ["student alone", "distill"], 1, str(tmp_path),
                                       kd_bench.data_roots(str(tmp_path)))
    for run in (teacher, *runs):
        types = [h["type"] for h in kd_bench.build_config(run).hooks]
        assert types.index("PreciseBN") == types.index("CheckpointSaver") - 1
        assert "SemSegEvaluator" not in types
        assert kd_bench.signature(run)["precise_bn"] == size.precise_bn_iters
    assert kd_bench.SIZES["cpu"].precise_bn_iters == kd_bench.SIZES["gpu"].precise_bn_iters == 200


@pytest.mark.parametrize("df", [1, 2, 5, 20, 21, 40, 200])
def test_t_quantile(df):
    assert kd_bench.t_quantile(df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-4)


@pytest.mark.slow
def test_workers_end_with_the_benchmark_process(tmp_path):
    """SIGKILL of the benchmark leaves no worker training on (their console goes to run.log, so find them by it)."""
    cmd = [sys.executable, os.path.join(ROOT, "tools", "kd_bench.py"), "--size", "smoke", "--out", str(tmp_path),
           "--seeds", "2", "--rows", "student alone", "--student-epochs", "50"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logs = tmp_path / "runs" / "student_alone"
    deadline = time.time() + 300
    while not list(logs.glob("seed*/train.log")) and time.time() < deadline:
        time.sleep(0.5)
    assert list(logs.glob("seed*/train.log")), "no student run started"
    workers = [pid for pid in _children(proc.pid) if b"spawn_main" in _cmdline(pid)]
    assert workers
    proc.kill()
    proc.wait()
    deadline = time.time() + 30
    while any(_running(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in workers if _running(pid)], "workers outlived the benchmark"


@pytest.mark.slow
def test_a_killed_run_goes_on_from_its_last_checkpoint(tmp_path):
    """A run killed by a time limit after a checkpoint is resumed by the next call, not trained again."""
    args = ["--seeds", "1", "--rows", "student alone", "--student-epochs", "6"]
    cmd = [sys.executable, os.path.join(ROOT, "tools", "kd_bench.py"), "--size", "smoke", "--out", str(tmp_path), *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = tmp_path / "runs" / "student_alone" / "seed0"
    deadline = time.time() + 300
    while not (run / "model" / "model_last.pth").is_file() and time.time() < deadline:
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    assert (run / "model" / "model_last.pth").is_file(), "no checkpoint before the time limit"
    assert not (run / "kd_bench_result.json").exists()
    again = _bench(tmp_path, *args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    resumed = [line for line in (run / "train.log").read_text().splitlines() if "Resuming train at eval epoch" in line]
    assert resumed and not resumed[0].rstrip().endswith("epoch: 0, iteration: 0")
    result = json.loads((run / "kd_bench_result.json").read_text())
    assert 0 <= result["miou"] <= 1 and result["signature"]["epochs"] == 6
    assert result["resumed"] is True


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _stat(int(entry)) and int(_stat(int(entry))[1]) == pid:
            found.append(int(entry))
    return found


def _stat(pid: int) -> list[str]:
    """(state, ppid) of a process from /proc, [] when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[:2]
    except OSError:
        return []


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _running(pid: int) -> bool:
    stat = _stat(pid)
    return bool(stat) and stat[0] != "Z"


def _device_script(tmp_path, limit: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SIZE="smoke", LIMIT=limit, OUT=str(tmp_path / "out"), RUNS=str(tmp_path / "runs"),
               PYTHON=sys.executable)
    return subprocess.run(["bash", os.path.join(ROOT, "tools", "kd_bench_gpu.sh"), "3", "1", "student alone"],
                          capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)


@pytest.mark.slow
def test_device_script_completes_the_table_and_packs_every_result(tmp_path):
    stopped = _device_script(tmp_path, "1")
    assert stopped.returncode == 124 and "run the same command again" in stopped.stdout
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)   # whatever a one-second call began
    done = _device_script(tmp_path, "600")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "out"
    report = json.loads((out / "kd_bench.json").read_text())
    assert len(report["rows"]["student alone"]["miou"]) == 1
    with tarfile.open(out / "results.tgz") as tar:
        folders = sorted(os.path.basename(os.path.dirname(name)) for name in tar.getnames())
    assert folders == ["seed0", "teacher"]
    assert "Train" in (out / "teacher_train_tail.log").read_text()
