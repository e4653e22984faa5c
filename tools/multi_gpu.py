"""Multi-GPU distillation checks and the scaling figure (issue: 4 GPUs with NCCL), one command:

    python tools/multi_gpu.py --gpus 0,1,2,3 --teacher-weight exp/.../teacher/model/model_best.pth

1. equivalence: ``sh scripts/train.sh -g 4 -d nuscenes -c distill-ptv3-bench`` against ``-g 1`` with the same
   global batch (SyncBN, no Mix3D), compared weight by weight after the same number of steps;
2. resume: the 4-GPU run is started again, SIGKILLed mid-epoch once an iteration checkpoint exists, resumed with
   ``-r true`` and compared with the uninterrupted 4-GPU run;
3. scaling: samples per second of the distillation step and of the student-only step on 1, 2 and 4 GPUs (the
   same per-GPU batch), with each process's peak GPU memory (nvidia-smi, sampled); the runs of more than one GPU
   once per DDP option set of ``--ddp`` (the config's ``ddp`` dict: a preset name or a JSON dict, repeatable),
   the 1-GPU run (no DDP) once, as every set's speed-up baseline:

    python tools/multi_gpu.py --gpus 0,1,2,3 --phases scaling --ddp all

Writes ``<out>.md`` and ``<out>.json``. On a machine without CUDA, ``--gpus`` counts gloo CPU processes and the
memory column is each process's peak resident memory (VmHWM) instead.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pointcept_distill.data.simulator import generate  # noqa: E402
from pointcept_distill.engine.checkpoint import load_checkpoint  # noqa: E402  (weights_only: no code from files)
from pointcept_distill.utils.progress import StageProgress, wait_with_progress  # noqa: E402


# ``--ddp`` presets: the config's ``ddp`` dict (docs/multi_gpu.md#ddp-options); entries left out keep the defaults
DDP_PRESETS = {
    "default": {},
    "static_graph": {"static_graph": True},
    "bucket_view": {"gradient_as_bucket_view": True},
    "static_view": {"static_graph": True, "gradient_as_bucket_view": True},
    "static_view_100mb": {"static_graph": True, "gradient_as_bucket_view": True, "bucket_cap_mb": 100},
    "static_view_5mb": {"static_graph": True, "gradient_as_bucket_view": True, "bucket_cap_mb": 5},
}


def ddp_sets(specs: list[str]) -> dict[str, dict]:
    """``--ddp`` values (preset names, ``all``, JSON dicts or ``NAME=JSON``) -> {label: ddp dict}, in order;
    entries are checked as the trainer checks them (before any run starts)."""
    from pointcept_distill.engine.defaults import ddp_options
    sets: dict[str, dict] = {}
    for spec in specs or ["default"]:
        if spec == "all":
            sets.update(DDP_PRESETS)
            continue
        if spec in DDP_PRESETS:
            sets[spec] = DDP_PRESETS[spec]
            continue
        name, sep, text = spec.partition("=")
        if not sep or name.lstrip().startswith("{"):
            name, text = "", spec
        try:
            options = json.loads(text)
        except json.JSONDecodeError as err:
            raise SystemExit(f"multi_gpu: --ddp {spec!r} is neither a preset ({', '.join(DDP_PRESETS)}, all) nor a "
                             f"JSON dict: {err}") from None
        if not isinstance(options, dict):
            raise SystemExit(f"multi_gpu: --ddp {spec!r}: expected a JSON dict, e.g. '{{\"static_graph\": true}}'")
        try:
            ddp_options({"ddp": options})
        except ValueError as err:
            raise SystemExit(f"multi_gpu: --ddp {spec!r}: {err}") from None
        sets[name or ",".join(f"{k}={v}" for k, v in options.items()) or "default"] = options
    return sets


def _descendants(root: int) -> list[int]:
    """Process ids below ``root`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class MemoryPeak:
    """Largest nvidia-smi ``memory.used`` (MiB) of each GPU while the context is open; without CUDA, the largest
    peak resident memory (VmHWM, MiB) of this process's descendants (the training processes), under key ``cpu``."""

    def __init__(self, gpus: list[str]) -> None:
        self.cuda = torch.cuda.is_available()
        self.gpus, self._stop = gpus, threading.Event()
        self.peak = {g: 0 for g in gpus} if self.cuda else {"cpu": 0}

    def _poll_rss(self) -> None:
        while not self._stop.wait(0.2):
            for pid in _descendants(os.getpid()):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                hwm = re.search(r"VmHWM:\s+(\d+) kB", status)
                if hwm:
                    self.peak["cpu"] = max(self.peak["cpu"], int(hwm.group(1)) // 1024)

    def _poll(self) -> None:
        if not self.cuda:
            self._poll_rss()
            return
        while not self._stop.wait(0.5):
            out = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True).stdout
            for line in out.splitlines():
                index, used = (s.strip() for s in line.split(","))
                if index in self.peak:
                    self.peak[index] = max(self.peak[index], int(used))

    def __enter__(self) -> "MemoryPeak":
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def step_seconds(train_log: Path) -> float:
    times = [float(t) for t in re.findall(r"Batch (\d+\.\d+) \(", train_log.read_text())]
    return statistics.median(times[2:]) if len(times) > 2 else float("nan")


def max_difference(a: Path, b: Path) -> dict:
    sa = load_checkpoint(str(a))["state_dict"]
    sb = load_checkpoint(str(b))["state_dict"]
    sa = {k.removeprefix("module."): v for k, v in sa.items()}
    sb = {k.removeprefix("module."): v for k, v in sb.items()}
    floats = [k for k, v in sa.items() if v.is_floating_point()]
    diff = max(float((sa[k] - sb[k]).abs().max()) for k in floats)
    norm = sum(float((sa[k] - sb[k]).norm() ** 2) for k in floats) ** 0.5
    ref = sum(float(sa[k].norm() ** 2) for k in floats) ** 0.5
    return {"max_abs": diff, "relative_l2": norm / ref, "same_keys": sorted(sa) == sorted(sb)}


def save_random_teacher(path: Path, config: str = "distill-ptv3-bench") -> None:
    import pointcept_distill.models  # noqa: F401
    from pointcept_distill.models import build_model
    from pointcept_distill.utils.config import Config
    torch.manual_seed(0)
    teacher = build_model(Config.fromfile(str(ROOT / f"configs/nuscenes/{config}.py")).teacher)
    torch.save({"epoch": 0, "state_dict": teacher.state_dict()}, path)


def kill_mid_epoch(proc: subprocess.Popen, ckpt: Path) -> dict:
    """SIGKILL the run's process group once its checkpoint is an iteration checkpoint of the second epoch."""
    while proc.poll() is None:
        if ckpt.is_file():
            state = load_checkpoint(str(ckpt))
            if state.get("epoch", 0) >= 1 and state.get("iter", 0) > 0:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return {"epoch": state["epoch"], "iter": state["iter"]}
        time.sleep(0.5)
    raise RuntimeError(f"the run ended before a mid-epoch checkpoint could be caught in {ckpt}")


def scaling(run, per_gpu_batch: int, gpus: list[str], counts: list[int], exp: Path, rows: list[dict],
            save, steps: dict[str, str] | None = None, ddp: dict[str, dict] | None = None) -> list[dict]:
    """Samples per second and peak memory per GPU of each of ``steps`` ({kind: config}) on each of ``counts``
    GPUs, per-GPU batch fixed: one 1-GPU run (no DDP: the speed-up baseline of every option set), and the runs of
    more GPUs once per ``ddp`` option set ({label: the config's ``ddp`` dict}). Each row is appended to ``rows``
    and ``save()``d as soon as it is measured (a run cut short keeps its rows)."""
    steps = steps or {"distillation": "distill-ptv3-bench", "student only": "semseg-pt-v3m1-student-bench"}
    ddp = ddp or {"default": {}}
    for kind, config in steps.items():
        for n in counts:
            for label, options in ddp.items() if n > 1 else [("-", {})]:
                name = f"scale-{kind.split()[0]}-g{n}" + (f"-{_slug(label)}" if n > 1 and len(ddp) > 1 else "")
                extra = ("sync_bn=false", *(f"ddp.{k}={v}" for k, v in options.items()))  # the users' settings
                with MemoryPeak(gpus[:n]) as mem:
                    run(name, config, n, per_gpu_batch * n, 1, extra=extra)
                seconds = step_seconds(exp / name / "train.log")
                one = next((r for r in rows if r["step"] == kind and r["gpus"] == 1), None)
                speed = per_gpu_batch * n / seconds
                rows.append({"step": kind, "ddp": label, "ddp_options": options, "gpus": n, "step_seconds": seconds,
                             "samples_per_second": speed,
                             "speed_up": speed / one["samples_per_second"] if one else None,
                             "peak_memory_mib_per_gpu": max(mem.peak.values()) or None,
                             "memory": "GPU (nvidia-smi)" if mem.cuda else "process RSS (VmHWM)"})
                save()
    return rows


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", label).strip("_")


def scaling_table(rows: list[dict]) -> list[str]:
    lines = ["| step | DDP options | GPUs | s / step | samples / s | speed-up | peak memory per GPU (MiB) |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        speed_up = f"{row['speed_up']:.2f}" if row.get("speed_up") else "-"
        memory = row["peak_memory_mib_per_gpu"]
        memory = "-" if memory is None else f"{memory}" + ("" if row.get("memory", "GPU").startswith("GPU") else
                                                           " (RSS)")
        lines.append(f"| {row['step']} | {row.get('ddp', '-')} | {row['gpus']} | {row['step_seconds']:.3f} | "
                     f"{row['samples_per_second']:.1f} | {speed_up} | {memory} |")
    return lines + [""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpus", default="0,1,2,3")
    p.add_argument("--teacher-weight", default=None,
                   help="trained teacher checkpoint; without it a randomly initialised teacher is saved and used "
                        "(enough for equivalence, resume and speed, which do not depend on the teacher's quality)")
    p.add_argument("--data-root", default="data/multigpu/nuscenes")
    p.add_argument("--exp-root", default="exp/multigpu")
    p.add_argument("--train-frames", type=int, default=64)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--per-gpu-batch", type=int, default=2)
    p.add_argument("--options", nargs="*", default=[], help="extra KEY=VALUE for every run")
    p.add_argument("--counts", default=None,
                   help="GPU counts of the scaling phase, comma-separated (default: 1, 2 and all of --gpus)")
    p.add_argument("--phases", default="equivalence,resume,scaling",
                   help="any of equivalence, resume, scaling (resume needs equivalence's N-GPU run)")
    p.add_argument("--out", default="exp/multigpu/multi_gpu")
    p.add_argument("--ddp", action="append", default=[], metavar="SET",
                   help="a DDP option set of the scaling phase (the config's ddp dict), repeatable: a preset ("
                        f"{', '.join(DDP_PRESETS)}), 'all' (every preset), a JSON dict such as "
                        "'{\"static_graph\": true, \"bucket_cap_mb\": 50}', or LABEL=JSON (default: default)")
    p.add_argument("--steps", default="distillation,student",
                   help="the scaling phase's steps: distillation and/or student (comma-separated)")
    p.add_argument("--distill-config", default="distill-ptv3-bench",
                   help="configs/nuscenes/<name>.py of the distillation runs (and of the random teacher)")
    p.add_argument("--student-config", default="semseg-pt-v3m1-student-bench",
                   help="configs/nuscenes/<name>.py of the student-only scaling runs")
    args = p.parse_args()
    ddp = ddp_sets(args.ddp)
    known_steps = {"distillation": args.distill_config, "student": args.student_config}
    if set(args.steps.split(",")) - set(known_steps):
        raise SystemExit(f"multi_gpu: --steps {args.steps}: expected distillation and/or student")
    steps = {("student only" if k == "student" else k): known_steps[k] for k in args.steps.split(",")}

    gpus = args.gpus.split(",")
    n_max = len(gpus)
    counts = sorted({int(c) for c in args.counts.split(",")} if args.counts else {1, min(2, n_max), n_max})
    if counts[0] < 1 or counts[-1] > n_max:
        raise SystemExit(f"multi_gpu: --counts {args.counts} must lie between 1 and the {n_max} GPUs of --gpus")
    data_root = str(Path(args.data_root).resolve())
    if not (Path(data_root) / "info").is_dir():
        generate("nuscenes", data_root, train=args.train_frames, val=2, seed=0, scale=args.scale)
    exp = Path(args.exp_root).resolve() / "nuscenes"
    exp.mkdir(parents=True, exist_ok=True)
    random = "random_teacher" + ("" if args.distill_config == "distill-ptv3-bench" else f"-{args.distill_config}")
    teacher_weight = Path(args.teacher_weight or exp / f"{random}.pth").resolve()
    if not teacher_weight.is_file():
        save_random_teacher(teacher_weight, args.distill_config)
    # eager steps at every GPU count: the captured step (the runtime's default on one GPU) is refused under DDP, so
    # a 1-GPU run would otherwise be timed on another step than the N-GPU runs it is compared with
    common = [*(f"data.{s}.data_root={data_root}" for s in ("train", "val", "test")), "seed=7",
              "enable_amp=true", "amp_dtype=bfloat16", "captured_step.enabled=false",
              *args.options]
    env = {**os.environ, "EXP_ROOT": str(Path(args.exp_root).resolve()), "PYTHONUNBUFFERED": "1"}

    # runs compared weight by weight use torch's deterministic kernels where they exist (off by default on
    # CUDA, and slower); spconv has none of its own, so its sums may still differ in their last bits
    exact = ("deterministic=true",)

    def start(name: str, config: str, n: int, batch: int, epochs: int, resume: bool = False,
              extra: tuple[str, ...] = exact) -> subprocess.Popen:
        # a rerun of this tool replaces its own earlier runs: overwrite=True (no effect when resuming)
        cmd = ["sh", "scripts/train.sh", "-p", sys.executable, "-g", str(n), "-d", "nuscenes", "-c", config,
               "-n", name, *(["-r", "true"] if resume else []), "--", "overwrite=True", *common, f"batch_size={batch}",
               f"epoch={epochs}", f"eval_epoch={epochs}", *extra,
               *([f"teacher_weight={teacher_weight}"] if config == args.distill_config else [])]
        path = exp.parent / f"{name}{'.resume' if resume else ''}.out"
        progress.start(f"{name}{' (resumed)' if resume else ''}: {n} process(es), batch {batch}, {epochs} epoch(s); "
                       f"log {path}")
        with open(path, "w") as log:  # the child keeps its copy
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**env, "CUDA_VISIBLE_DEVICES": ",".join(gpus[:n])})
        proc.log_path = str(path)  # type: ignore[attr-defined]
        return proc

    def run(name: str, config: str, n: int, batch: int, epochs: int, resume: bool = False,
            extra: tuple[str, ...] = exact) -> float:
        began = time.time()
        proc = start(name, config, n, batch, epochs, resume, extra)
        code = wait_with_progress({name: (proc, proc.log_path)}, every=30.0)[name]
        if code != 0:
            raise RuntimeError(f"run {name} failed (exit {code}); see {exp.parent / name}.out")
        return time.time() - began

    report: dict = {"gpus": n_max, "per_gpu_batch": args.per_gpu_batch}
    phases = args.phases.split(",")
    # training runs of each phase
    runs = {"scaling": len(steps) * sum(len(ddp) if n > 1 else 1 for n in counts), "equivalence": 3, "resume": 2}
    progress = StageProgress("multi_gpu", sum(k for phase, k in runs.items() if phase in phases))
    batch = args.per_gpu_batch * n_max

    def final(name: str) -> Path:
        return exp / name / "model" / "model_last.pth"

    lines: list[str] = []

    def save() -> None:
        rows = scaling_table(report["scaling"]) if report.get("scaling") else []
        Path(args.out).with_suffix(".md").write_text("\n".join(rows + lines) + "\n")
        Path(args.out).with_suffix(".json").write_text(json.dumps(report, indent=2))

    if "scaling" in phases:  # first, so that nothing else shares the GPUs while it is timed
        scaling(run, args.per_gpu_batch, gpus, counts, exp, report.setdefault("scaling", []), save, steps, ddp)
    if "equivalence" in phases:  # the same global batch on N processes and on one (twice: the noise floor)
        report["seconds_n"] = run(f"distill-g{n_max}", args.distill_config, n_max, batch, 2)
        report["seconds_1"] = run("distill-g1-same-batch", args.distill_config, 1, batch, 2)
        report["n_vs_1"] = max_difference(final(f"distill-g{n_max}"), final("distill-g1-same-batch"))
        lines.append(f"{n_max} GPUs vs 1 GPU, same global batch {batch}, after 2 epochs: {report['n_vs_1']}")
        save()
        run("distill-g1-repeat", args.distill_config, 1, batch, 2)
        report["1_vs_1"] = max_difference(final("distill-g1-repeat"), final("distill-g1-same-batch"))
        lines.append(f"1 GPU vs the same 1-GPU run repeated (run-to-run noise): {report['1_vs_1']}")
        save()
    if "resume" in phases:  # kill mid-epoch, resume, compare with the uninterrupted run
        report["killed_at"] = kill_mid_epoch(start(f"distill-g{n_max}-killed", args.distill_config, n_max, batch, 2),
                                             final(f"distill-g{n_max}-killed"))
        run(f"distill-g{n_max}-killed", args.distill_config, n_max, batch, 2, resume=True)
        report["resumed_vs_uninterrupted"] = max_difference(final(f"distill-g{n_max}-killed"),
                                                            final(f"distill-g{n_max}"))
        lines.append(f"killed at {report['killed_at']}, resumed vs uninterrupted: "
                     f"{report['resumed_vs_uninterrupted']}")
    save()
    progress.done()
    print(Path(args.out).with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
