"""The paper's ablation on simulator data, one command: teacher, student alone, +logit KD, +gradient-guided,
+topology, all; mIoU single-pass and with Pointcept's test-time augmentation; then the cost of a distillation step
against a student-only step and each loss's share, measured by ``tools/benchmark.py`` on an otherwise idle GPU.

    python tools/ablation.py --gpus 0,1,2,3 --out exp/ablation/ablation.md

Every run is the user's command (``scripts/train.sh`` / ``scripts/test.sh`` with ``EXP_ROOT``), so the table
measures exactly what users run. The teacher trains first (DDP over all ``--gpus``), then the five students run
in parallel, ``--jobs-per-gpu`` on each GPU (one scan's step is host-bound, so two runs share a GPU well; their
step times are therefore not used for the cost, which is measured last, alone). Runs whose checkpoint exists are
not retrained with ``--resume`` (so a table can be finished across several calls). The TTA numbers come from
each run's PreciseEvaluator (the configs' tester), the single-pass ones from ``scripts/test.sh --
test.single_pass=true``. The ``-d nuscenes`` configs are used with the data root pointed at the simulated scans.
"""
from __future__ import annotations

import argparse
import json
import os
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


def run_on_gpus(jobs: list, gpus: list[str], per_gpu: int = 1) -> list:
    """Run ``job(device)`` for every job, at most ``per_gpu`` jobs per GPU at a time; results in job order."""
    free: Queue = Queue()
    slots = [g for _ in range(per_gpu) for g in gpus or [""]]
    for g in slots:
        free.put(g)

    def call(job):
        g = free.get()
        try:
            return job(g)
        finally:
            free.put(g)

    with ThreadPoolExecutor(len(slots)) as pool:
        return list(pool.map(call, jobs))


def count_parameters(checkpoint: Path) -> int:
    """Learnable parameters of a checkpoint's model (BatchNorm buffers left out)."""
    import torch
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    return sum(v.numel() for k, v in state.items()
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))


STEP_COST_INPUTS, STEP_COST_REPEATS = 4, 10  # distinct batches the timed steps cycle through; timed steps


def step_cost(args: argparse.Namespace, device: str, out: Path, env: dict[str, str]) -> list[str]:
    """Student-only vs distillation step and each loss's share, from ``tools/benchmark.py`` (markdown lines)."""
    json_path = out.with_name(out.stem + "-step-cost.json")
    sh([sys.executable, "tools/benchmark.py", "--no-inference", "--distill-config", "configs/nuscenes/distill-ptv3.py",
        "--train-batches", str(args.step_cost_batch), "--scale", str(args.step_cost_scale),
        "--train-repeats", str(STEP_COST_REPEATS), "--train-warmup", "3", "--train-inputs", str(STEP_COST_INPUTS),
        "--json", str(json_path),
        *(["--device", "cpu", "--train-dtype", "fp32"] if device == "" else ["--train-dtype", "bf16"])],
       out.with_name(out.stem + "-step-cost.out"), device, env)
    report = json.loads(json_path.read_text())
    ms = {r["step"]: r["median_ms"] for r in report["train"]}
    r0 = report["train"][0]
    lines = [f"Step cost ({report['environment']['device']}, {r0['dtype']}, {r0['scans']} scans = {r0['points']:,} "
             f"points in the first of the {STEP_COST_INPUTS} batches the steps cycle through, median of "
             f"{STEP_COST_REPEATS} steps, random weights, no other run on the device):", "",
             "| step | ms | vs student-only step | share of the distillation step |", "|---|---|---|---|"]
    for name in ms:
        share = ((ms["distill"] - ms[name]) / ms["distill"] if name.startswith("distill - ") else
                 (ms[name] - ms["student"]) / ms["distill"] if name == "teacher only" else None)
        label = {"teacher only": "student step + teacher forward (share: the teacher forward)"}.get(name, name)
        lines.append(f"| {label} | {ms[name]:.1f} | {ms[name] / ms['student']:.2f} | "
                     f"{'' if share is None else f'{share:.0%}'} |")
    return lines


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
    p.add_argument("--eval-rounds", type=int, default=5, help="validations per run (model_best is chosen by them)")
    p.add_argument("--jobs-per-gpu", type=int, default=2, help="student runs sharing one GPU")
    p.add_argument("--step-cost-batch", type=int, default=8, help="scans per step of the cost measurement")
    p.add_argument("--step-cost-scale", type=float, default=1.0, help="simulator scale of the cost measurement")
    p.add_argument("--no-step-cost", action="store_true", help="skip the step-cost measurement")
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
            f"epoch={epochs}", f"eval_epoch={min(epochs, args.eval_rounds)}", *extra],
           exp / f"{name}.train.out", ",".join(devices), env)
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
                gpus, args.jobs_per_gpu)
    names = [("teacher", "teacher (PT-v3m1 base)")] + [(name, row) for name, _, row, _ in runs]
    results = dict(zip([n for n, _ in names], run_on_gpus([partial(test, n) for n, _ in names], gpus,
                                                           args.jobs_per_gpu)))

    rows = [dict(name=name, label=label, params=count_parameters(exp / name / "model" / "model_best.pth"),
                 mIoU_single=results[name]["single"]["mIoU"], mIoU_tta=results[name]["tta"]["mIoU"])
            for name, label in names]
    lines = ["| model | parameters | mIoU single-pass | mIoU TTA |", "|---|---|---|---|"]
    lines += [f"| {r['label']} | {r['params']:,} | {r['mIoU_single']:.4f} | {r['mIoU_tta']:.4f} |" for r in rows]
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    if not args.no_step_cost:  # last, alone on the first GPU, so that no other run shares it while it is timed
        lines += ["", *step_cost(args, gpus[0] if gpus else "", out, env)]
    text = "\n".join(lines)
    out.write_text(text + "\n")
    out.with_suffix(".json").write_text(json.dumps(dict(rows=rows, args=vars(args), seconds=time.time() - started),
                                                   indent=2))
    print(text)


if __name__ == "__main__":
    main()
