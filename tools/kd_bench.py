"""Does distillation make a better student? One fixed protocol, several seeds, paired differences.

    python tools/kd_bench.py --size cpu --data-seed 7 --rows "student alone,distill" --out DIR
    python tools/kd_bench.py --size cpu --data-seed 0 --out exp/kd_bench/cpu       # every row
    python tools/kd_bench.py --size gpu --data-seed 0 --rows "student alone,distill" --out exp/kd_bench/gpu

Protocol (the same for every row, fixed before any result was seen):
1. the simulator writes nuScenes-format scans from ``--data-seed`` (train frames, and two validation sets: the
   benchmark's, and a second one from another seed that only measures how much one model's mIoU moves between
   validation sets);
2. the size's teacher config trains once (seed 0) for its fixed schedule (the student-alone runs, which do not
   need it, beside it where the size says so: ``beside_teacher``);
3. every row x seed trains the size's student for the same schedule: ``student alone`` with the student config,
   the others with the distillation config and the row's losses; seed k of every row shares the student's
   initialisation and data order;
4. every run's BatchNorm statistics are recomputed with its final weights over 200 training batches (``PreciseBN``)
   and it is scored with that last checkpoint (no selection on the validation data) by ``SemSegTester``:
   single-pass and Pointcept's fragment voting with the config's test-time views (TTA); mIoU over the 16 classes.

5. the premises are checked and printed under the table: the teacher leads the student alone by >= 5 points, the
   student alone has plateaued (row ``student alone 2x steps``: twice the steps gain < 1 point), and each row's
   gain against the issue's bar (>= 1 point with the 95 % interval above zero).

Prints one table (mean +- std per row, the paired difference to ``student alone`` with its 95 % t-interval, the
share of the teacher-student gap recovered, minutes per run) and writes ``<out>/kd_bench.json``:
``{"teacher": {"miou": [...]}, "rows": {"<row>": {"miou": [...], "miou_tta": [...], ...}}, "settings": ...}``.
Runs whose result file exists are not trained again, and a run killed before its result (a time limit) goes on
from its last checkpoint, so a table can be completed across several calls.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


@dataclass(frozen=True)
class Size:
    """One benchmark size: data, configs and the fixed schedule every run of it uses."""

    configs: str                 # folder of configs/ with the teacher, student and distillation configs
    teacher_config: str
    student_config: str
    distill_config: str
    paper_config: str            # the paper's weights, for the per-loss rows
    scale: float                 # simulator azimuth factor (points per scan)
    train_frames: int
    val_frames: int
    teacher_epochs: int
    student_epochs: int
    threads: int                 # torch threads per run
    jobs: int                    # runs at a time
    amp: bool = False
    extra: dict = field(default_factory=dict)            # config options of every run
    teacher_extra: dict = field(default_factory=dict)    # and of the teacher only (over ``extra``)
    # every run's BatchNorm statistics are recomputed over this many training batches with its final weights before
    # it is saved and scored (engine hook PreciseBN): the running averages kept during training had left one
    # distilled run 7 points below its pair (docs/kd_results.md)
    precise_bn_iters: int = 200
    # the teacher's schedule as this many trainer epochs, each ending with a checkpoint (None: one per data epoch):
    # with its optimizer state the 46M teacher's checkpoint is 0.55 GB, a second or two to write
    teacher_checkpoints: int | None = None
    # runs that do not need the teacher (the student alone) trained beside it, this many at a time; the rest of the
    # size's jobs' threads go to the teacher (a GPU size's teacher leaves most of the host free)
    beside_teacher: int = 0


SIZES = {
    # half the demo's points a scan (~1.8k) so that a 2,400-step teacher (58.9 % on the dev data against 53.4 % at
    # half the steps) and six 720-step students fit 60 minutes on 2 cores (docs/kd_results.md, dev round 5); 192
    # training scans (four times v2's, the same steps: fewer repeats, steadier students) and 128 validation scans
    # (32 held only 2-11 traffic-cone points: a rare class's IoU was a coin flip)
    "cpu": Size("demo", "semseg-pt-v3m1-teacher", "semseg-pt-v3m1-student", "distill-ptv3", "distill-ptv3-paper",
                scale=0.05, train_frames=192, val_frames=128, teacher_epochs=50, student_epochs=15,
                threads=1, jobs=2),
    # the mechanics in about a minute (tests): a few tiny scans, one epoch
    "smoke": Size("demo", "semseg-pt-v3m1-teacher", "semseg-pt-v3m1-student", "distill-ptv3", "distill-ptv3-paper",
                  scale=0.05, train_frames=4, val_frames=2, teacher_epochs=1, student_epochs=1, threads=1, jobs=2,
                  precise_bn_iters=2),
    # the paper's teacher (46M) and student (2.8M) on half-density scans. The student's short schedule trains its
    # blocks at the base learning rate; the teacher keeps Pointcept's 1/10 block rate (at the base rate it diverged
    # to NaN after 539 steps on the dev data) and trains 3,000 steps (900 reached 55.3 % against the student's 51.2)
    "gpu": Size("nuscenes", "semseg-pt-v3m1-0-base", "semseg-pt-v3m1-student", "distill-ptv3",
                "distill-ptv3-paper", scale=0.5, train_frames=120, val_frames=64, teacher_epochs=100,
                student_epochs=20, threads=2, jobs=6, amp=True, beside_teacher=3,
                extra={"batch_size": 4, "batch_size_val": 4, "num_worker": 2, "mix_prob": 0.0,
                       "param_dicts": [dict(keyword="block", lr=0.002)], "scheduler.max_lr": [0.002, 0.002]},
                teacher_extra={"param_dicts": [dict(keyword="block", lr=0.0002)],
                               "scheduler.max_lr": [0.002, 0.0002]}, teacher_checkpoints=10),
}

PLATEAU_ROW = "student alone 2x steps"


@dataclass(frozen=True)
class Row:
    """A benchmark row: which config trains the student and which distillation losses stay on."""

    config: str                  # "student", "distill" (the shipped recipe) or "paper" (the paper's weights)
    keep: tuple = ()             # losses of that config kept (the others off); () keeps the config's own set
    add: dict = field(default_factory=dict)   # losses added to the config's distill section
    schedule: int = 1            # the student schedule times this (the plateau check: 2)


ROWS = {
    "student alone": Row("student"),
    "logit KD": Row("paper", ("logit_kd",)),
    "gradient-guided": Row("paper", ("grad_kd",)),
    "topology": Row("paper", ("topo_kd",)),
    "paper (all three)": Row("paper"),
    "CWD": Row("paper", ("cwd_kd",), dict(cwd_kd=dict(type="ChannelWiseKD", temperature=4.0, loss_weight=3.0))),
    "DIST": Row("paper", ("dist_kd",), dict(dist_kd=dict(type="DISTKD", temperature=1.0, loss_weight=1.0))),
    "FitNets": Row("paper", ("feat_kd",), dict(feat_kd=dict(type="FeatureMimicKD", loss_weight=1.0))),
    "distill": Row("distill"),
    PLATEAU_ROW: Row("student", schedule=2),
}
BASELINE = "student alone"
TARGETS = dict(teacher_lead=0.05, gain=0.01, plateau=0.01)   # the issue's bars, as mIoU fractions
# Student's t 97.5 % quantiles by degrees of freedom (beyond 20: the Cornish-Fisher expansion, t_quantile)
T_975 = {1: 12.7062047, 2: 4.30265273, 3: 3.18244631, 4: 2.77644511, 5: 2.57058184, 6: 2.44691185,
         7: 2.36462425, 8: 2.30600414, 9: 2.26215716, 10: 2.22813885, 11: 2.20098516, 12: 2.17881283,
         13: 2.16036866, 14: 2.14478669, 15: 2.13144955, 16: 2.11990530, 17: 2.10981558, 18: 2.10092204,
         19: 2.09302405, 20: 2.08596345}


# ------------------------------------------------------------------------------------------------- data
def data_roots(out: str) -> dict[str, str]:
    return {"data": os.path.join(out, "data", "nuscenes"), "val2": os.path.join(out, "data", "nuscenes-val2")}


def generate_data(size: Size, data_seed: int, out: str) -> dict[str, str]:
    """The benchmark's scans from ``data_seed`` and a second validation set from another seed (once)."""
    from pointcept_distill.data.simulator import generate
    roots = data_roots(out)
    stamp = os.path.join(out, "data", "settings.json")
    wanted = dict(data_seed=data_seed, scale=size.scale, train=size.train_frames, val=size.val_frames)
    if os.path.isfile(stamp):
        with open(stamp, encoding="utf-8") as f:
            found = json.load(f)
        if found != wanted:
            raise SystemExit(f"kd_bench: {out} holds data made with {found}, not {wanted}; use another --out")
        return roots
    generate("nuscenes", roots["data"], train=size.train_frames, val=size.val_frames, seed=data_seed,
             scale=size.scale)
    generate("nuscenes", roots["val2"], train=0, val=size.val_frames, seed=data_seed + 100_003, scale=size.scale)
    with open(stamp, "w", encoding="utf-8") as f:
        json.dump(wanted, f)
    return roots


# ------------------------------------------------------------------------------------------- one run
@dataclass(frozen=True)
class Run:
    name: str                    # "teacher" or a row name
    seed: int
    folder: str
    config: str                  # config file
    epochs: int
    distill: dict | None         # the distillation section, None for plain training
    teacher_weight: str | None
    size: Size
    roots: dict
    threads: int                 # torch threads of this run
    checkpoints: int             # trainer epochs (``eval_epoch``), each ending with model_last.pth

    @property
    def options(self) -> dict:
        """The size's config options for this run (the teacher's own over every run's)."""
        return {**self.size.extra, **(self.size.teacher_extra if self.name == "teacher" else {})}


def config_path(size: Size, name: str) -> str:
    return os.path.join(REPO, "configs", size.configs, f"{name}.py")


def distill_section(size: Size, row: Row) -> dict | None:
    """The ``distill`` dict a row trains with (None: the student alone)."""
    if row.config == "student":
        return None
    from pointcept_distill.engine import default_config_parser
    name = size.distill_config if row.config == "distill" else size.paper_config
    section = copy.deepcopy(dict(default_config_parser(config_path(size, name), {}, dump=False).distill))
    section.update(copy.deepcopy(row.add))
    if row.keep:
        for key in section:
            if key.endswith("_kd") and key not in row.keep:   # every loss key of a distill section ends in _kd
                section[key] = None
    return section


def plan_runs(size: Size, rows: list[str], seeds: int, out: str, roots: dict,
              grad_norm_interval: int = 0) -> tuple[Run, list[Run]]:
    checkpoints = size.teacher_checkpoints or size.teacher_epochs
    if size.teacher_epochs % checkpoints:
        raise SystemExit(f"kd_bench: {size.teacher_epochs} teacher epochs do not split into {checkpoints} checkpoints")
    teacher = Run("teacher", 0, os.path.join(out, "teacher"), config_path(size, size.teacher_config),
                  size.teacher_epochs, None, None, size, roots,
                  size.threads * max(size.jobs - size.beside_teacher, 1), checkpoints)
    weight = os.path.join(teacher.folder, "model", "model_last.pth")
    runs = []
    for name in rows:
        row = ROWS[name]
        config = size.student_config if row.config == "student" else size.distill_config
        section = distill_section(size, row)
        if section is not None and grad_norm_interval:
            section["grad_norm_interval"] = grad_norm_interval
        for seed in range(seeds):
            folder = os.path.join(out, "runs", slug(name), f"seed{seed}")
            epochs = size.student_epochs * row.schedule
            runs.append(Run(name, seed, folder, config_path(size, config), epochs, section,
                            None if row.config == "student" else weight, size, roots, size.threads, epochs))
    return teacher, runs


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def build_config(run: Run):
    from pointcept_distill.engine import default_config_parser
    options = dict(save_path=run.folder, seed=run.seed, epoch=run.epochs, eval_epoch=run.checkpoints, evaluate=False,
                   enable_amp=run.size.amp, **run.options)
    options.setdefault("num_worker", 0)
    # eager steps, as every recorded result (docs/kd_results.md) was trained: the captured step (the runtime's
    # default on CUDA) pads batches and draws drop path per padded row, which would change the protocol
    options.setdefault("captured_step.enabled", False)
    last = os.path.join(run.folder, "model", "model_last.pth")
    if os.path.isfile(last):   # a run killed before its result (a time limit): go on from its last checkpoint
        options.update(resume=True, weight=last)
    cfg = default_config_parser(run.config, options, dump=False)
    for split in ("train", "val", "test"):
        cfg.data[split].data_root = run.roots["data"]
    cfg.hooks = [h for h in cfg.hooks if h.type not in ("PreciseEvaluator", "SemSegEvaluator")]
    saver = next(i for i, h in enumerate(cfg.hooks) if h.type == "CheckpointSaver")
    cfg.hooks.insert(saver, dict(type="PreciseBN", num_iter=run.size.precise_bn_iters))
    if run.distill is not None:
        cfg.distill = run.distill
        cfg.teacher_weight = run.teacher_weight
    return cfg


def evaluate(cfg, weight: str, roots: dict) -> dict:
    """mIoU of ``weight``: single-pass and TTA on the benchmark's validation set, single-pass on the second."""
    from pointcept_distill.engine.test import SemSegTester
    cfg.weight = weight
    single = SemSegTester(cfg, single_pass=True)
    summary = single.test()
    result = dict(miou=summary["mIoU"], iou_per_class=summary["iou_per_class"])
    result["miou_tta"] = SemSegTester(cfg, model=single.model).test()["mIoU"]
    cfg.data.val.data_root = roots["val2"]
    result["miou_val2"] = SemSegTester(cfg, model=single.model, single_pass=True).test()["mIoU"]
    cfg.data.val.data_root = roots["data"]
    return result


def mean_grad_ratios(folder: str) -> dict[str, float]:
    """Mean over the logged steps of each KD term's gradient norm into the student divided by the segmentation
    loss's (``distill.grad_norm_interval``, TensorBoard ``train_batch/grad_ratio/<term>``); {} when not logged."""
    import glob
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ratios: dict[str, list[float]] = {}
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        events = EventAccumulator(path, size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            if tag.startswith("train_batch/grad_ratio/"):
                ratios.setdefault(tag.rsplit("/", 1)[1], []).extend(e.value for e in events.Scalars(tag))
    return {term: sum(v) / len(v) for term, v in ratios.items()}


def result_file(run: Run) -> str:
    return os.path.join(run.folder, "kd_bench_result.json")


def exit_with_parent(parent: int, every: float = 2.0) -> None:
    """End this worker when the benchmark's process is gone (killed or interrupted), instead of training on."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def execute(run: Run, parent: int | None = None) -> dict:
    """Train and score one run (in a worker process; its console output goes to ``<folder>/run.log``)."""
    if parent is not None:
        exit_with_parent(parent)
    os.makedirs(run.folder, exist_ok=True)
    log = open(os.path.join(run.folder, "run.log"), "a", encoding="utf-8")  # noqa: SIM115 (the worker's stdout)
    sys.stdout = sys.stderr = log
    import torch
    torch.set_num_threads(run.threads)
    import pointcept_distill.data  # noqa: F401  (registers datasets and transforms)
    import pointcept_distill.distill  # noqa: F401  (registers the distillation trainer and losses)
    import pointcept_distill.models  # noqa: F401
    from pointcept_distill.engine import TRAINERS, default_setup
    from pointcept_distill.utils.misc import atomic_write
    start = time.perf_counter()
    cfg = default_setup(build_config(run))
    cfg.dump(os.path.join(run.folder, "config.py"))
    TRAINERS.build(dict(type=cfg.train.type, cfg=cfg)).train()
    minutes = (time.perf_counter() - start) / 60
    result = dict(evaluate(cfg, os.path.join(run.folder, "model", "model_last.pth"), run.roots),
                  train_minutes=minutes, resumed=bool(cfg.get("resume")), name=run.name, seed=run.seed,
                  signature=signature(run),
                  grad_ratio=mean_grad_ratios(run.folder))

    def write(path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)

    atomic_write(result_file(run), write)
    log.flush()
    return result


def signature(run: Run) -> dict:
    """What a run's result depends on: a stored result is reused only for the same signature."""
    data = {k: getattr(run.size, k) for k in ("scale", "train_frames", "val_frames", "amp")}
    return dict(config=os.path.relpath(run.config, REPO), epochs=run.epochs, seed=run.seed, distill=run.distill,
                teacher_weight=run.teacher_weight and os.path.relpath(run.teacher_weight, os.path.dirname(run.folder)),
                extra=run.options, precise_bn=run.size.precise_bn_iters, **data,
                # the data order depends on how epochs are grouped; absent when every epoch ends with a checkpoint
                # (results stored before this setting existed stay valid)
                **({} if run.checkpoints == run.epochs else {"checkpoints": run.checkpoints}))


def load_result(run: Run) -> dict | None:
    if not os.path.isfile(result_file(run)):
        return None
    with open(result_file(run), encoding="utf-8") as f:
        result = json.load(f)
    if result.get("signature") != json.loads(json.dumps(signature(run))):
        raise SystemExit(f"kd_bench: {result_file(run)} was made with other settings than this run's; "
                         "use another --out (or delete that folder)")
    return result


def run_all(runs: list[Run], jobs: int, started: float) -> list[dict]:  # started: the benchmark's start
    """The results of ``runs`` (in order): those missing are trained, ``jobs`` at a time in fresh processes,
    with their progress on the console."""
    results = [load_result(r) for r in runs]
    todo = [i for i, r in enumerate(results) if r is None]
    if not todo:
        return results
    done, began = 0, time.perf_counter()
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, max_tasks_per_child=1) as pool:
        futures = {pool.submit(execute, runs[i], os.getpid()): i for i in todo}
        print(f"[kd_bench] {len(todo)} run(s) to train, {jobs} at a time", flush=True)
        for future in as_completed(futures):
            i = futures[future]
            run = runs[i]
            try:
                results[i] = future.result()
            except Exception as err:  # the others go on; the failure is named with its log
                raise SystemExit(f"kd_bench: {run.name} seed {run.seed} failed: {err!r}; see "
                                 f"{os.path.join(run.folder, 'run.log')}") from err
            done += 1
            elapsed = time.perf_counter() - started
            left = (time.perf_counter() - began) / done * (len(todo) - done)
            print(f"[kd_bench] {done}/{len(todo)} {run.name} seed {run.seed}: mIoU {results[i]['miou']:.4f} "
                  f"(TTA {results[i]['miou_tta']:.4f}), {results[i]['train_minutes']:.1f} min; "
                  f"{elapsed / 60:.1f} min so far, about {left / 60:.0f} min left", flush=True)
    return results


# ------------------------------------------------------------------------------------------ statistics
def mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return mean, std


def t_quantile(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom."""
    if df in T_975:
        return T_975[df]
    z = 1.959963985
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


def paired_interval(values: list[float], baseline: list[float]) -> tuple[float, float, float]:
    """Mean paired difference and its 95 % t-interval (seed k against seed k)."""
    diffs = [v - b for v, b in zip(values, baseline)]
    mean, std = mean_std(diffs)
    if len(diffs) < 2:
        return mean, float("nan"), float("nan")
    half = t_quantile(len(diffs) - 1) * std / math.sqrt(len(diffs))
    return mean, mean - half, mean + half


def summarize(teacher: dict, rows: dict[str, list[dict]]) -> dict:
    """The JSON's ``rows`` section: per-seed values and the statistics the table prints."""
    base = [r["miou"] for r in rows.get(BASELINE, [])]
    gap = teacher["miou"] - (mean_std(base)[0] if base else float("nan"))
    summary = {}
    for name, results in rows.items():
        miou = [r["miou"] for r in results]
        entry = dict(miou=miou, miou_tta=[r["miou_tta"] for r in results],
                     miou_val2=[r["miou_val2"] for r in results], seeds=[r["seed"] for r in results],
                     train_minutes=[r["train_minutes"] for r in results],
                     resumed=[bool(r.get("resumed")) for r in results],
                     grad_ratio=mean_dicts([r.get("grad_ratio", {}) for r in results]))
        if base and name != BASELINE and len(base) == len(miou):
            diff, low, high = paired_interval(miou, base)
            entry.update(diff=diff, diff_ci95=[low, high], gap_recovered=diff / gap if gap > 0 else float("nan"))
        summary[name] = entry
    return summary


def mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for d in dicts for k in d})
    return {k: sum(d[k] for d in dicts if k in d) / sum(k in d for d in dicts) for k in keys}


def pct(value: float) -> str:
    return "-" if value != value else f"{100 * value:.1f}"


def run_minutes(minutes: list[float], resumed: list[bool]) -> str:
    """The mean training minutes of the runs trained in one go, with a * when resumed runs were left out (a
    resumed run's minutes are those of its last segment only); "-" when every run was resumed."""
    whole = [m for m, r in zip(minutes, resumed) if not r]
    if not whole:
        return "-"
    return f"{mean_std(whole)[0]:.1f}" + ("*" if len(whole) < len(minutes) else "")


def table(teacher: dict, summary: dict) -> str:
    lines = ["| row | seeds | mIoU single-pass | mIoU TTA | vs student alone (95% CI) | gap recovered | "
             "min/run | KD gradient / seg. gradient |", "|---|---|---|---|---|---|---|---|"]
    lines.append(f"| teacher | 1 | {pct(teacher['miou'])} | {pct(teacher['miou_tta'])} | | | "
                 f"{run_minutes([teacher['train_minutes']], [bool(teacher.get('resumed'))])} | |")
    for name, e in summary.items():
        m, s = mean_std(e["miou"])
        mt, st = mean_std(e["miou_tta"])
        diff = (f"{100 * e['diff']:+.2f} [{100 * e['diff_ci95'][0]:+.2f}, {100 * e['diff_ci95'][1]:+.2f}]"
                if "diff" in e else "")
        gap = f"{100 * e['gap_recovered']:.0f} %" if "gap_recovered" in e else ""
        ratios = ", ".join(f"{k.removeprefix('loss_kd_')} {v:.2f}" for k, v in e.get("grad_ratio", {}).items())
        lines.append(f"| {name} | {len(e['miou'])} | {pct(m)} ± {pct(s)} | {pct(mt)} ± {pct(st)} | {diff} | {gap} "
                     f"| {run_minutes(e['train_minutes'], e.get('resumed', [False] * len(e['train_minutes'])))} "
                 f"| {ratios} |")
    if any(r for e in summary.values() for r in e.get("resumed", [])) or teacher.get("resumed"):
        lines.append("\nmin/run: runs killed and resumed are left out (*), their minutes being the last segment's")
    return "\n".join(lines)


def premise_checks(teacher: dict, summary: dict) -> list[str]:
    """Whether the benchmark's premises and the issue's bars hold: the teacher leads the student alone, the student
    alone has plateaued (twice the steps gain less than a point), and each row's gain with its interval."""
    if BASELINE not in summary:
        return []
    base = mean_std(summary[BASELINE]["miou"])[0]
    lead = teacher["miou"] - base
    lines = [f"teacher leads the student alone by {100 * lead:+.2f} points "
             f"(needs >= {100 * TARGETS['teacher_lead']:.0f}): {verdict(lead >= TARGETS['teacher_lead'])}"]
    if PLATEAU_ROW in summary:
        more = mean_std(summary[PLATEAU_ROW]["miou"])[0] - base
        lines.append(f"student alone with twice the steps: {100 * more:+.2f} points (plateau: < "
                     f"{100 * TARGETS['plateau']:.0f}): {verdict(more < TARGETS['plateau'])}")
        if teacher["miou"] - base - more < TARGETS["teacher_lead"]:
            lines.append("the teacher's lead over the longer student alone is below the bar: nothing to distil at "
                         "a plateau (train the teacher longer, make the student smaller or the task harder)")
    for name, e in summary.items():
        if "diff" in e and name != PLATEAU_ROW:
            met = e["diff"] >= TARGETS["gain"] and e["diff_ci95"][0] > 0
            lines.append(f"{name}: {100 * e['diff']:+.2f} points, 95% interval from {100 * e['diff_ci95'][0]:+.2f} "
                         f"(gain needs >= {100 * TARGETS['gain']:.0f} with the interval above 0): {verdict(met)}")
    return lines


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def validation_spread(teacher: dict, summary: dict) -> str:
    """How far one model's mIoU moves between the two validation sets (mean |val - val2| over all runs)."""
    pairs = [(teacher["miou"], teacher["miou_val2"])]
    pairs += [(a, b) for e in summary.values() for a, b in zip(e["miou"], e["miou_val2"])]
    spread = [abs(a - b) for a, b in pairs]
    return (f"validation spread: one model's single-pass mIoU on two validation sets of different seeds differs "
            f"by {100 * sum(spread) / len(spread):.2f} points on average (max {100 * max(spread):.2f}, "
            f"{len(spread)} models)")


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), required=True)
    p.add_argument("--data-seed", type=int, default=0, help="seed of the simulated scans")
    p.add_argument("--seeds", type=int, default=5,
                   help="student seeds per row (0..K-1); the protocol's 5 (3, the least the statistics allow, leave "
                        "intervals about twice as wide)")
    p.add_argument("--rows", default=None, help=f"comma-separated rows (default: all of {list(ROWS)})")
    p.add_argument("--jobs", type=int, default=None, help="runs at a time (default: the size's)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per run (default: the size's)")
    p.add_argument("--student-epochs", type=int, default=None, help="override the size's student schedule")
    p.add_argument("--teacher-epochs", type=int, default=None, help="override the size's teacher schedule")
    p.add_argument("--train-frames", type=int, default=None, help="override the size's number of training scans")
    p.add_argument("--val-frames", type=int, default=None, help="override the size's number of validation scans")
    p.add_argument("--extra-rows", default=None, metavar="JSON",
                   help='more rows, e.g. \'{"logit T2": {"config": "paper", "keep": ["logit_kd"], "add": '
                        '{"logit_kd": {"type": "LogitKD", "temperature": 2.0, "loss_weight": 1.0}}}}\' or a file')
    p.add_argument("--grad-norm-interval", type=int, default=0, metavar="N",
                   help="log every N steps each KD term's gradient norm into the student against the segmentation "
                        "loss's (distill.grad_norm_interval); the table then shows their mean ratios")
    p.add_argument("--beside-teacher", type=int, default=None, metavar="N",
                   help="train N runs that do not need the teacher (student alone) beside it (default: the size's)")
    p.add_argument("--teacher-only", action="store_true", help="train and score the teacher, then stop")
    p.add_argument("--out", required=True, help="output folder (data, runs, kd_bench.json)")
    args = p.parse_args(argv)
    for name, spec in load_extra_rows(args.extra_rows).items():
        ROWS[name] = Row(spec["config"], tuple(spec.get("keep", ())), spec.get("add", {}), spec.get("schedule", 1))
    args.rows = [r.strip() for r in args.rows.split(",")] if args.rows else list(ROWS)
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        p.error(f"--rows {unknown} unknown; rows are {list(ROWS)}")
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    return args


def load_extra_rows(spec: str | None) -> dict:
    if not spec:
        return {}
    if os.path.isfile(spec):
        with open(spec, encoding="utf-8") as f:
            spec = f.read()
    rows = json.loads(spec)
    commas = [n for n in rows if "," in n]
    if commas:
        raise SystemExit(f"kd_bench: --extra-rows names {commas} contain a comma (--rows is comma-separated)")
    bad = {n: r for n, r in rows.items() if r.get("config") not in ("student", "distill", "paper")}
    if bad:
        raise SystemExit(f"kd_bench: --extra-rows {sorted(bad)} need config 'student', 'distill' or 'paper'")
    return rows


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    overrides = dict(jobs=args.jobs, threads=args.threads, student_epochs=args.student_epochs,
                     teacher_epochs=args.teacher_epochs, train_frames=args.train_frames,
                     val_frames=args.val_frames, beside_teacher=args.beside_teacher)
    size = replace(SIZES[args.size], **{k: v for k, v in overrides.items() if v is not None})
    started = time.perf_counter()
    roots = generate_data(size, args.data_seed, args.out)
    teacher, runs = plan_runs(size, args.rows, args.seeds, args.out, roots, args.grad_norm_interval)
    print(f"[kd_bench] size {args.size}, data seed {args.data_seed}: teacher ({size.teacher_epochs} epochs), then "
          f"{len(runs)} student runs ({size.student_epochs} epochs each)", flush=True)
    # runs that need no teacher train beside it when the size says so
    beside = [r for r in runs if r.teacher_weight is None] if size.beside_teacher and not args.teacher_only else []
    teacher_result = run_all([teacher, *beside], 1 + min(size.beside_teacher, len(beside)), started)[0]
    if args.teacher_only:
        return dict(teacher=teacher_result)
    results = run_all(runs, size.jobs, started)
    rows: dict[str, list[dict]] = {}
    for run, result in zip(runs, results):
        rows.setdefault(run.name, []).append(result)
    summary = summarize(teacher_result, rows)
    text = table(teacher_result, summary)
    spread = validation_spread(teacher_result, summary)
    checks = premise_checks(teacher_result, summary)
    print(f"\n{text}\n\n{spread}\n" + "\n".join(checks), flush=True)
    report = dict(teacher=dict(miou=[teacher_result["miou"]], miou_tta=[teacher_result["miou_tta"]],
                               miou_val2=[teacher_result["miou_val2"]],
                               train_minutes=teacher_result["train_minutes"]),
                  rows=summary, validation_spread=spread, checks=checks, table=text,
                  settings=dict(size=args.size, data_seed=args.data_seed, seeds=args.seeds, **asdict(size)),
                  minutes=(time.perf_counter() - started) / 60)
    with open(os.path.join(args.out, "kd_bench.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
