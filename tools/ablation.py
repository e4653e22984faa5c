"""The paper's ablation on simulator data, one command: teacher, student alone, +logit KD, +gradient-guided,
+topology, all; mIoU single-pass and with Pointcept's test-time augmentation; step cost from the train logs.

    python tools/ablation.py --gpus 0,1,2,3 --out exp/ablation/ablation.md

Every run is the user's command (``scripts/train.sh`` / ``scripts/test.sh`` with ``EXP_ROOT``), so the table
measures exactly what users run. The teacher trains first (DDP over all ``--gpus``), then the five students run
in parallel, one GPU each. Runs whose checkpoint exists are not retrained with ``--resume`` (so a table can be
finished across several calls). The TTA numbers come from each run's PreciseEvaluator (the configs' tester),
the single-pass ones from ``scripts/test.sh -- test.single_pass=true``. The ``-d nuscenes`` configs are used with the data
root pointed at the simulated scans.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from queue import Queue

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pointcept_distill.data.simulator import generate  # noqa: E402

DISTILL_OFF = {  # ablation row -> distillation losses switched off in distill-ptv3
    "+logit KD": ["distill.grad_kd=None", "distill.topo_kd=None"],
    "+gradient-guided": ["distill.topo_kd=None"],
    "+topology": ["distill.grad_kd=None"],
    "all": [],
}


def sh(cmd: list[str], log: Path, gpus: str, env_extra: dict[str, str]) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpus, **env_extra}
    start = time.time()
    with open(log, "w", encoding="utf-8") as f:
        code = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    print(f"[gpu {gpus}] {' '.join(cmd[2:8])} ... exit {code} in {time.time() - start:.0f} s", flush=True)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed; see {log}")


def run_on_gpus(jobs: list, gpus: list[str]) -> list:
    """Run ``job(device)`` for every job, at most one job per GPU at a time; results in job order."""
    free: Queue = Queue()
    for g in gpus or [""]:
        free.put(g)

    def call(job):
        g = free.get()
        try:
            return job(g)
        finally:
            free.put(g)

    with ThreadPoolExecutor(max(len(gpus), 1)) as pool:
        return list(pool.map(call, jobs))


def count_parameters(checkpoint: Path) -> int:
    """Learnable parameters of a checkpoint's model (BatchNorm buffers left out)."""
    import torch
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    return sum(v.numel() for k, v in state.items()
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))


def batch_seconds(train_log: Path) -> float:
    """Median per-iteration time of the run (IterationTimer's 'Batch' field, warm-up iterations excluded)."""
    times = [float(m) for m in re.findall(r"Batch (\d+\.\d+) \(", train_log.read_text())]
    return statistics.median(times[len(times) // 5:]) if times else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpus", default="0", help="comma-separated GPU ids ('' on a CPU machine)")
    p.add_argument("--data-root", default="data/ablation/nuscenes")
    p.add_argument("--exp-root", default="exp/ablation")
    p.add_argument("--train-frames", type=int, default=160)
    p.add_argument("--val-frames", type=int, default=24)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--teacher-epochs", type=int, default=6)
    p.add_argument("--student-epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=8, help="global batch of every run")
    p.add_argument("--options", nargs="*", default=[], help="extra KEY=VALUE for every run (e.g. tiny models)")
    p.add_argument("--student-options", nargs="*", default=[], help="extra KEY=VALUE for the student runs")
    p.add_argument("--resume", action="store_true", help="reuse runs whose model_best.pth exists")
    p.add_argument("--out", default="exp/ablation/ablation.md")
    args = p.parse_args()

    gpus = [g for g in args.gpus.split(",") if g != ""]
    exp = ROOT / args.exp_root / "nuscenes"
    exp.mkdir(parents=True, exist_ok=True)
    data_root = str(Path(args.data_root).resolve())
    if not (Path(data_root) / "info").is_dir():
        report = generate("nuscenes", data_root, train=args.train_frames, val=args.val_frames, seed=0,
                          scale=args.scale)
        print(f"simulated {report.frames} into {data_root} in {report.seconds:.0f} s", flush=True)
    roots = [f"data.{s}.data_root={data_root}" for s in ("train", "val", "test")]
    common = [*roots, f"batch_size={args.batch_size}", "enable_amp=true", "amp_dtype=bfloat16", *args.options]
    py, env = ["-p", sys.executable], {"EXP_ROOT": str(ROOT / args.exp_root)}

    def train(name: str, config: str, epochs: int, devices: list[str] | str, extra: list[str]) -> None:
        devices = [devices] if isinstance(devices, str) else devices
        devices = [d for d in devices if d != ""]
        if args.resume and (exp / name / "model" / "model_best.pth").is_file():
            return
        n = str(max(len(devices), 1))
        sh(["sh", "scripts/train.sh", *py, "-g", n, "-d", "nuscenes", "-c", config, "-n", name, "--", *common,
            f"epoch={epochs}", f"eval_epoch={epochs}", *extra], exp / f"{name}.train.out", ",".join(devices), env)
        # the configs' PreciseEvaluator has just tested model_best with test-time augmentation
        result = exp / name / "result"
        os.replace(result / "summary.json", result / "summary_tta.json")

    def test(name: str, device: str) -> dict:
        result = exp / name / "result"
        if not (result / "summary_tta.json").is_file():
            sh(["sh", "scripts/test.sh", *py, "-g", "1", "-d", "nuscenes", "-n", name, "--", *roots],
               exp / f"{name}.test-tta.out", device, env)
            os.replace(result / "summary.json", result / "summary_tta.json")
        sh(["sh", "scripts/test.sh", *py, "-g", "1", "-d", "nuscenes", "-n", name, "--", *roots,
            "test.single_pass=true"], exp / f"{name}.test-single.out", device, env)
        return {"single": json.loads((result / "summary.json").read_text()),
                "tta": json.loads((result / "summary_tta.json").read_text())}

    started = time.time()
    train("teacher", "semseg-pt-v3m1-0-base", args.teacher_epochs, gpus, [])
    teacher_weight = f"teacher_weight={exp / 'teacher' / 'model' / 'model_best.pth'}"
    runs = [("student", "semseg-pt-v3m1-student", "student alone", args.student_options)]
    runs += [(f"kd-{i}", "distill-ptv3", row, [teacher_weight, *off, *args.student_options])
             for i, (row, off) in enumerate(DISTILL_OFF.items())]
    run_on_gpus([partial(train, name, config, args.student_epochs, extra=extra) for name, config, _, extra in runs],
                gpus)
    names = [("teacher", "teacher (PT-v3m1 base)")] + [(name, row) for name, _, row, _ in runs]
    results = dict(zip([n for n, _ in names], run_on_gpus([partial(test, n) for n, _ in names], gpus)))

    rows = []
    for name, label in names:
        rows.append(dict(name=name, label=label, params=count_parameters(exp / name / "model" / "model_best.pth"),
                         mIoU_single=results[name]["single"]["mIoU"], mIoU_tta=results[name]["tta"]["mIoU"],
                         step_seconds=batch_seconds(exp / name / "train.log")))
    base = next(r["step_seconds"] for r in rows if r["name"] == "student")
    lines = ["| model | parameters | mIoU single-pass | mIoU TTA | step (s) | step / student-alone step |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['params']:,} | {r['mIoU_single']:.4f} | {r['mIoU_tta']:.4f} | "
                     f"{r['step_seconds']:.3f} | {r['step_seconds'] / base:.2f} |")
    step = {r["label"]: r["step_seconds"] for r in rows}
    shares = {"topology": 1 - step["+gradient-guided"] / step["all"], "gradient-guided": 1 - step["+topology"] / step["all"],
              "teacher forward + logit KD": step["+logit KD"] / step["all"] - step["student alone"] / step["all"]}
    lines += ["", "Share of the full distillation step (from the step times above): " +
              ", ".join(f"{k} {v:.0%}" for k, v in shares.items())]
    text = "\n".join(lines)
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    out.with_suffix(".json").write_text(json.dumps(dict(rows=rows, shares=shares, args=vars(args),
                                                        seconds=time.time() - started),
                                                   indent=2))
    print(text)


if __name__ == "__main__":
    main()
