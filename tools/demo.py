"""The embedded default, end to end on a CPU: ``make demo`` (or ``python tools/demo.py``).

1. writes simulated nuScenes-format scans to ``data/demo/nuscenes`` (the LiDAR simulator, no download);
2. trains a small PT-v3m1 teacher (``configs/demo/semseg-pt-v3m1-teacher.py``) -> ``exp/demo/teacher``;
3. distills it into a narrow student with our recipe (``configs/demo/distill-ptv3.py``) -> ``exp/demo/distill``,
   and, at the same time (one core each), trains the same student without distillation
   (``configs/demo/semseg-pt-v3m1-student.py``) -> ``exp/demo/student``;
4. tests all three with ``scripts/test.sh``, single-pass and with test-time augmentation, and prints a table
   (parameters, seconds per scan on this machine, mIoU), also written to ``exp/demo/summary.md`` and ``.json``;
5. releases the teacher and the distilled student (``tools/release.py``: weights, config, metrics, model card,
   SHA-256) to ``exp/demo/release/``, lists them in ``exp/demo/MODEL_ZOO.md`` and draws ``exp/demo/bev.png`` (a
   scan coloured by ground truth, teacher, student and the student's errors) and ``exp/demo/curves.png``
   (training curves of the distillation run).

Every step is the command a user would type (``sh scripts/train.sh -d demo -c <config> -n <name>``), run as a
subprocess, so the demo exercises exactly the user's path. The demo is one seed of ``tools/kd_bench.py``'s CPU size
(same configs, a shorter teacher schedule and fewer frames); the multi-seed numbers are in docs/kd_results.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pointcept_distill.data.simulator import generate  # noqa: E402
from pointcept_distill.engine.checkpoint import load_checkpoint  # noqa: E402
from release import make_release  # noqa: E402  (tools/release.py)
from visualize import render_bev_scan, render_curves  # noqa: E402  (tools/visualize.py)

TEACHER = ("teacher", "semseg-pt-v3m1-teacher", "teacher")   # (experiment name, config, label in the table)
STUDENTS = (("distill", "distill-ptv3", "student, distilled"), ("student", "semseg-pt-v3m1-student", "student alone"))
RUNS = (TEACHER, *STUDENTS)
PROGRESS = re.compile(r"Train: \[(\d+)/(\d+)\]\[(\d+)/(\d+)\].*Remain (\S+)")


def start(cmd: list[str], log: Path, threads: int | None = None) -> tuple[subprocess.Popen, Path, float]:
    print(f"$ {' '.join(cmd)}", flush=True)
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    with open(log, "w", encoding="utf-8") as f:  # the child keeps its own handle
        return subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env), log, time.time()


def progress(log: Path) -> str:
    """'epoch e/E, iteration i/I, ~T left' from the last training line of a log ('' before the first)."""
    lines = [m for m in PROGRESS.finditer(log.read_text(encoding="utf-8", errors="replace"))]
    if not lines:
        return ""
    e, n_e, i, n_i, remain = lines[-1].groups()
    return f"epoch {e}/{n_e}, iteration {i}/{n_i}, {remain} left"


def wait(steps: list[tuple[subprocess.Popen, Path, float]], every: float = 30.0) -> None:
    """Wait for running steps, printing each one's progress every ``every`` seconds; a failure shows its log."""
    shown = time.time()
    while any(proc.poll() is None for proc, _, _ in steps):
        time.sleep(0.5)
        if time.time() - shown < every:
            continue
        shown = time.time()
        for proc, log, _ in steps:
            if proc.poll() is None and progress(log):
                print(f"  [{log.name.split('.')[0]}] {progress(log)}", flush=True)
    for proc, log, began in steps:
        if proc.returncode != 0:
            tail = log.read_text(encoding="utf-8").splitlines()[-40:]
            sys.exit(f"demo: step failed (exit {proc.returncode}); last lines of {log}:\n" + "\n".join(tail))
        print(f"  done in {time.time() - began:.0f} s (log: {log.relative_to(ROOT)})", flush=True)


def run(cmd: list[str], log: Path) -> None:
    """Run one step to its end."""
    wait([start(cmd, log)])


def parameters(exp_dir: Path) -> int:
    ckpt = load_checkpoint(str(exp_dir / "model" / "model_best.pth"))
    return sum(v.numel() for k, v in ckpt["state_dict"].items() if not k.endswith(("running_mean", "running_var",
                                                                                     "num_batches_tracked")))


def table(rows: list[dict], val_frames: int) -> str:
    lines = ["| model | parameters | seconds per scan (this CPU) | mIoU single-pass | mIoU TTA | mAcc | allAcc |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['params']:,} | {r['seconds_per_scan']:.3f} | {r['mIoU']:.4f} | "
                     f"{r['mIoU_tta']:.4f} | {r['mAcc']:.4f} | {r['allAcc']:.4f} |")
    lines.append(f"\nOne seed, {val_frames} validation frames: the student alone varies by 1-2 mIoU points from seed to "
                 "seed, so one run's difference between the students says little. Several seeds and the paired "
                 "differences with their 95 % intervals: docs/kd_results.md (tools/kd_bench.py --size cpu).")
    return "\n".join(lines)


def test(name: str, py: list[str], exp_root: Path) -> dict:
    """Test single-pass then with TTA; the summaries are kept as result/summary_{single,tta}.json."""
    result = {}
    for mode, extra in (("single", ["--", "test.single_pass=true"]), ("tta", [])):
        run(["sh", "scripts/test.sh", *py, "-g", "1", "-d", "demo", "-n", name, "-w", "model_best", *extra],
            exp_root / f"{name}.test-{mode}.out")
        summary = exp_root / name / "result" / "summary.json"
        result[mode] = json.loads(summary.read_text())
        os.replace(summary, summary.with_name(f"summary_{mode}.json"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-frames", type=int, default=40)
    parser.add_argument("--val-frames", type=int, default=16)
    parser.add_argument("--scale", type=float, default=0.05, help="simulator azimuth resolution factor")
    parser.add_argument("--epochs", type=int, default=None, help="override the configs' epochs")
    args = parser.parse_args()

    exp_root, data_root = ROOT / "exp" / "demo", ROOT / "data" / "demo" / "nuscenes"
    exp_root.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if data_root.exists():
        shutil.rmtree(data_root)
    report = generate("nuscenes", str(data_root), train=args.train_frames, val=args.val_frames, seed=0,
                      scale=args.scale)
    print(f"simulated {sum(report.frames.values())} scans into {data_root.relative_to(ROOT)} "
          f"in {report.seconds:.1f} s", flush=True)

    extra = [f"epoch={args.epochs}", f"eval_epoch={args.epochs}"] if args.epochs else []
    py = ["-p", sys.executable]
    def train(name: str, config: str, threads: int | None = None) -> tuple[subprocess.Popen, Path, float]:
        shutil.rmtree(exp_root / name, ignore_errors=True)
        return start(["sh", "scripts/train.sh", *py, "-g", "1", "-d", "demo", "-c", config, "-n", name, "--", *extra],
                     exp_root / f"{name}.train.out", threads)

    wait([train(*TEACHER[:2])])
    threads = max(1, (os.cpu_count() or 2) // len(STUDENTS))
    wait([train(name, config, threads) for name, config, _ in STUDENTS])
    rows = []
    for name, _, label in RUNS:
        summary = test(name, py, exp_root)
        rows.append(dict(name=name, label=label, params=parameters(exp_root / name),
                         mIoU_tta=summary["tta"]["mIoU"],
                         **{k: summary["single"][k] for k in ("mIoU", "mAcc", "allAcc", "seconds_per_scan")}))
    text = table(rows, args.val_frames)
    (exp_root / "summary.md").write_text(text + "\n")
    (exp_root / "summary.json").write_text(json.dumps(rows, indent=2))
    releases = exp_root / "release"
    for name in ("teacher", "distill"):
        make_release(str(exp_root / name), str(releases / name), latency_runs=3, device="cpu",
                     name=f"demo-{name}", zoo=str(exp_root / "MODEL_ZOO.md"))
    render_bev_scan(str(exp_root / "bev.png"), teacher=str(releases / "teacher"), student=str(releases / "distill"),
                    index=0, device="cpu")
    render_curves(str(exp_root / "distill"), str(exp_root / "curves.png"))
    print(f"releases in {releases.relative_to(ROOT)}, pictures: exp/demo/bev.png, exp/demo/curves.png")
    print(f"\npointcept-distill demo ({time.time() - started:.0f} s, {os.cpu_count()} CPU cores):\n{text}")


if __name__ == "__main__":
    main()
