"""Make a model-zoo release of an experiment, or verify one.

    python tools/release.py exp/nuscenes/student releases/nuscenes-student --half --evaluate
    python tools/release.py --verify releases/nuscenes-student

A release folder holds ``model.pth`` (``{"state_dict": ...}`` in float32: no optimizer, no teacher, no
``module.`` prefix; the keys are PT-v3m1's, so Pointcept loads it), optionally ``model_fp16.pth``, the
experiment's full ``config.py``, ``metrics.json`` (per-class IoU single-pass and with test-time
augmentation, parameters, latency and its device), a model card ``README.md`` and ``SHA256SUMS``.

Metrics come from the tester summaries of the experiment (``result/**/summary*.json``, written by
``SemSegTester``) and ``--metrics-from`` files, or, with ``--evaluate``, from running ``SemSegTester``
(single-pass and fragment voting) on the released weights. ``--verify`` checks the SHA-256 sums, loads the
weights strictly into a model built from the release's config and re-runs the recorded evaluations.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from typing import Any, Iterable

import numpy as np
import torch

import pointcept_distill
import pointcept_distill.data  # noqa: F401  (registers datasets and transforms)
import pointcept_distill.models  # noqa: F401  (registers models and losses)
from pointcept_distill.data import DATASETS, build_dataset, collate_fn
from pointcept_distill.engine import SemSegTester
from pointcept_distill.engine.checkpoint import CheckpointError, load_checkpoint, remap_state_dict
from pointcept_distill.inference import (load_model, read_sha256sums, resolve_device, sha256_file,
                                         verify_sha256sums)
from pointcept_distill.models import build_model
from pointcept_distill.utils.config import Config, apply_options, parse_options
from pointcept_distill.utils.logger import LOGGER_NAME
from pointcept_distill.utils.misc import display_path
from pointcept_distill.utils.progress import StageProgress

__all__ = ["make_release", "verify_release", "update_model_zoo", "export_state_dict", "collect_summaries",
           "evaluate", "measure_latency", "ReleaseMismatch"]

MODES = {"single_pass": "single_pass", "fragment_voting": "tta"}
ZOO_END = "<!-- end of releases -->"
ZOO_HEADER = ("| Name | Dataset | Params | mIoU single | mIoU TTA | Latency (device) | SHA-256 | Path |\n"
              "|---|---|---|---|---|---|---|---|\n")


class ReleaseMismatch(RuntimeError):
    """A release's recorded metrics were not reproduced."""


# ------------------------------------------------------------------------------------------- weights
def export_state_dict(ckpt_path: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The checkpoint's weights in float32 without ``module.`` prefixes or ``teacher.`` keys, and its
    metadata (epoch, best metric)."""
    ckpt = load_checkpoint(ckpt_path)
    state = remap_state_dict(ckpt["state_dict"], False)
    state = {k: v.detach().float().clone() if v.is_floating_point() else v.detach().clone()
             for k, v in state.items() if not k.startswith("teacher.")}
    meta = {k: ckpt.get(k) for k in ("epoch", "iter", "best_metric_value") if ckpt.get(k) is not None}
    return state, meta


def _strict_check(cfg: Config, state: dict[str, torch.Tensor], source: str) -> int:
    model = build_model(cfg.model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{source}: weights do not load strictly into cfg.model of {cfg.filename}: "
                              f"{err}") from err
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------- metrics
def _tidy(summary: dict, source: str, cfg: Config) -> dict:
    keep = ("mode", "weight", "mIoU", "mAcc", "allAcc", "iou_per_class", "acc_per_class", "num_scans",
            "seconds_per_scan")
    out = {k: summary[k] for k in keep if k in summary}
    if out.get("weight"):
        out["weight"] = display_path(out["weight"])
    out["source"] = source
    if summary.get("mode") == "fragment_voting":
        out["views"] = len(cfg.data.test.get("test_cfg", {}).get("aug_transform") or [[]])
    return out


def collect_summaries(exp_dir: str, metrics_from: Iterable[str], cfg: Config,
                      weight: str | None = None) -> dict[str, dict]:
    """``{"single_pass": ..., "tta": ...}`` from ``exp_dir/result/**/summary*.json`` then ``metrics_from``
    (later files win); a summary of another checkpoint file than ``weight`` is logged as a warning."""
    paths = sorted(glob.glob(os.path.join(exp_dir, "result", "**", "summary*.json"), recursive=True))
    found: dict[str, dict] = {}
    for path in [*paths, *metrics_from]:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
        mode = summary.get("mode")
        if mode not in MODES:
            raise ValueError(f"{path}: 'mode' is {mode!r}, not one of {sorted(MODES)} (a SemSegTester summary?)")
        tested = summary.get("weight")
        if weight and tested and os.path.basename(str(tested)) != os.path.basename(weight):
            logging.getLogger(LOGGER_NAME).warning(f"{path} scores {tested}, not the released {weight}")
        found[MODES[mode]] = _tidy(summary, display_path(path), cfg)
    return found


def _close_file_handlers(folder: str) -> None:
    logger = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
        if handler.baseFilename.startswith(os.path.abspath(folder)):
            logger.removeHandler(handler)
            handler.close()


def evaluate(cfg: Config, weight: str, modes: Iterable[str] = ("single_pass", "tta"),
             progress: StageProgress | None = None) -> dict[str, dict]:
    """Run ``SemSegTester`` on ``weight`` per mode (``single_pass`` over ``cfg.data.val``, ``tta`` fragment
    voting over ``cfg.data.test``) in a scratch folder; return the tidied summaries. ``progress`` gets a stage
    per mode."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="release-eval-") as scratch:
        for mode in modes:
            if progress is not None:
                what = "data.val, one pass" if mode == "single_pass" else "data.test, test-time augmentation"
                progress.start(f"evaluate {mode} ({what})")
            run = Config(cfg.to_dict(), filename=cfg.filename)
            run.weight, run.save_path = weight, os.path.join(scratch, mode)
            run.seed = int(cfg.get("seed") or 0)
            run.num_worker_per_gpu = 0
            os.makedirs(run.save_path)
            tester = SemSegTester(run, single_pass=mode == "single_pass")
            summary = tester.test()
            tester_mode = "single_pass" if mode == "single_pass" else "fragment_voting"
            out[mode] = _tidy(summary, f"SemSegTester ({tester_mode}) on the released model.pth", cfg)
        _close_file_handlers(scratch)
    return out


def device_name(device: torch.device) -> str:
    """A readable name of ``device`` (GPU model, or CPU model and torch threads)."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    cpu = platform.processor() or platform.machine()
    if os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"CPU {cpu}, {torch.get_num_threads()} thread(s)"


@torch.no_grad()
def measure_latency(cfg: Config, weight: str, device: str | torch.device | None = None, runs: int = 5,
                    index: int = 0) -> dict:
    """Median forward time of scan ``index`` of ``cfg.data.val`` (after one warm-up pass)."""
    dev = resolve_device(device)
    model = load_model(cfg, weight, dev)
    sample = build_dataset(cfg.data.val)[index]
    batch = collate_fn([sample])
    for key in ("segment", "origin_segment", "inverse"):
        batch.pop(key, None)
    batch = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    times = []
    for i in range(runs + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        model(batch)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i:
            times.append(time.perf_counter() - start)
    return dict(ms_median=1000 * float(np.median(times)), ms_mean=1000 * float(np.mean(times)), runs=runs,
                points=int(len(sample["origin_segment"]) if "origin_segment" in sample else len(sample["coord"])),
                voxels=int(len(sample["coord"])), device=device_name(dev), torch=torch.__version__)


# ------------------------------------------------------------------------------------------- files
def write_sha256sums(out_dir: str) -> dict[str, str]:
    """``SHA256SUMS`` (``sha256sum`` format) over every other file of ``out_dir``; returns name -> digest."""
    sums = {name: sha256_file(os.path.join(out_dir, name)) for name in sorted(os.listdir(out_dir))
            if name != "SHA256SUMS" and os.path.isfile(os.path.join(out_dir, name))}
    with open(os.path.join(out_dir, "SHA256SUMS"), "w", encoding="utf-8") as f:
        f.writelines(f"{digest}  {name}\n" for name, digest in sums.items())
    return sums


def _dataset_name(cfg: Config, exp_dir: str) -> str:
    """The val dataset class's ``dataset_name`` (e.g. ``nuscenes``), else the experiment's dataset folder."""
    try:
        return DATASETS.get(cfg.data.val.get("type")).dataset_name
    except (KeyError, AttributeError):
        return os.path.basename(os.path.dirname(exp_dir))


def _fmt(value: Any, pct: bool = True) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}" if pct else str(value)


def _recipe_lines(cfg: Config) -> list[str]:
    backbone = cfg.model.get("backbone", {})
    opt, sched = cfg.get("optimizer") or {}, cfg.get("scheduler") or {}
    lines = [f"- trainer: `{(cfg.get('train') or {}).get('type', 'DefaultTrainer')}`, {cfg.get('epoch')} epochs "
             f"(eval every {cfg.get('eval_epoch')}), batch size {cfg.get('batch_size')}, seed {cfg.get('seed')}, "
             f"AMP {cfg.get('enable_amp')}",
             f"- optimizer: `{opt.get('type')}` lr {opt.get('lr')}, weight decay {opt.get('weight_decay')}; "
             f"scheduler `{sched.get('type')}`",
             f"- model: `{cfg.model.get('type')}` / `{backbone.get('type')}`, enc_channels "
             f"{backbone.get('enc_channels')}, enc_depths {backbone.get('enc_depths')}, dec_channels "
             f"{backbone.get('dec_channels')}"]
    if cfg.get("teacher") is not None:
        distill = cfg.get("distill") or {}
        losses = ", ".join(f"{k} (weight {v.get('loss_weight')})" for k, v in distill.items()
                           if isinstance(v, dict) and v.get("type"))
        lines.append(f"- distilled from teacher `{display_path(cfg.get('teacher_weight'))}` on stages "
                     f"{distill.get('stages')}: {losses or 'no distillation loss'}")
    return lines


def write_model_card(out_dir: str, info: dict, cfg: Config) -> None:
    """``README.md``: data, recipe, metrics, files, and how to load the release here and in Pointcept."""
    single, tta, lat = info["metrics"].get("single_pass"), info["metrics"].get("tta"), info.get("latency")
    train = cfg.data.get("train", {})
    rows = "\n".join(f"| {name} | {_fmt((single or {}).get('iou_per_class', {}).get(name))} | "
                     f"{_fmt((tta or {}).get('iou_per_class', {}).get(name))} |" for name in info["class_names"])
    latency = (f"{lat['ms_median']:.1f} ms median over {lat['runs']} runs on {lat['device']} "
               f"({lat['points']} points, {lat['voxels']} voxels)" if lat else "not measured")
    tta_views = f" ({tta['views']} views)" if tta and "views" in tta else ""
    text = f"""# {info['name']}

Semantic segmentation of LiDAR scans with Point Transformer V3 (PT-v3m1), {info['dataset']} classes.
Made by `tools/release.py` from `{display_path(info['source']['exp_dir'])}` (`{info['source']['weight']}`, epoch
{info['source'].get('epoch')}) on {info['created']} with pointcept-distill {info['pointcept_distill']}.

## Data
- dataset: `{train.get('type')}` at `{display_path(train.get('data_root'))}`, train split `{train.get('split')}`, evaluated on
  `{cfg.data.val.get('split')}` ({(single or tta or {}).get('num_scans', '-')} scans)
- {info['num_classes']} classes: {', '.join(info['class_names'])}

## Recipe
{chr(10).join(_recipe_lines(cfg))}
- the full config is `config.py`

## Metrics
| | single pass | test-time augmentation{tta_views} |
|---|---|---|
| mIoU | {_fmt((single or {}).get('mIoU'))} | {_fmt((tta or {}).get('mIoU'))} |
| mAcc | {_fmt((single or {}).get('mAcc'))} | {_fmt((tta or {}).get('mAcc'))} |
| allAcc | {_fmt((single or {}).get('allAcc'))} | {_fmt((tta or {}).get('allAcc'))} |

| class IoU (%) | single pass | TTA |
|---|---|---|
{rows}

Parameters: {info['params']:,}. Latency: {latency}.

## Files
- `model.pth`: `{{"state_dict": ...}}`, float32, SHA-256 `{info['sha256']['model.pth']}`
{"- `model_fp16.pth`: the same weights in float16" + chr(10) if 'model_fp16.pth' in info['sha256'] else ""}\
- `config.py`: the experiment's full config; `metrics.json`: the numbers above; `SHA256SUMS`: `sha256sum -c SHA256SUMS`

## Use it
pointcept-distill (CPU or GPU; points are x, y, z and the raw intensity as the dataset's files store it):
```python
from pointcept_distill.inference import Segmenter
seg = Segmenter.from_release("{os.path.basename(os.path.normpath(out_dir))}", device="cpu")
result = seg(points)          # result.labels (N,), result.probs (N, K), result.class_names
result = seg(points, tta=True)  # the test-time augmentation of the TTA column
```
Evaluate here: `python tools/test.py --config-file config.py --options save_path=eval weight=model.pth`
(add `test.single_pass=true` for single-pass), or `python tools/release.py --verify <this folder>`.

Pointcept: the state-dict keys are PT-v3m1's (`DefaultSegmentorV2` with `backbone.*`, `seg_head.*`), so
`python tools/test.py --config-file config.py --options save_path=eval weight=model.pth` runs it there too
(set `data.*.data_root` to your copy of the data).
"""
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write(text)


# ------------------------------------------------------------------------------------------- release
def _prepare_out_dir(out_dir: str) -> None:
    """Make ``out_dir`` ready for a release. Only a new or empty folder, or an unchanged release made here
    (its ``SHA256SUMS`` lists exactly the folder's files and they match), is written into; the files of such a
    release are removed one by one (no other file is ever deleted). Anything else is refused untouched."""
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
        return
    if not os.listdir(out_dir):
        return
    try:
        verify_sha256sums(out_dir)
    except CheckpointError as err:
        raise FileExistsError(f"make_release: {out_dir} is not empty and is not a release made by tools/release.py "
                              f"and unchanged since ({err}); not writing into it: choose a new or empty "
                              f"folder") from None
    for name in [*read_sha256sums(out_dir), "SHA256SUMS"]:
        os.remove(os.path.join(out_dir, name))


def make_release(exp_dir: str, out_dir: str, weight: str = "model_best", half: bool = False,
                 metrics_from: Iterable[str] = (), evaluate_now: bool = False, options: dict | None = None,
                 latency_runs: int = 5, device: str | None = None, name: str | None = None,
                 zoo: str | None = None) -> dict:
    """Write a release of ``exp_dir/model/<weight>.pth`` to ``out_dir`` and return its ``metrics.json``.

    Args:
        exp_dir: ``exp/<dataset>/<name>`` with ``config.py`` and ``model/``.
        out_dir: the release folder: new, empty, or an unchanged earlier release made here (replaced);
            any other folder is refused and left untouched.
        weight: checkpoint name in ``exp_dir/model`` or a path to a ``.pth``.
        half: also write ``model_fp16.pth``.
        metrics_from: tester ``summary.json`` files beside those found under ``exp_dir/result``.
        evaluate_now: run ``SemSegTester`` single-pass and TTA on the released weights instead.
        options: config overrides for evaluation and latency only (e.g. ``data.val.data_root``).
        latency_runs: timed forward passes on the first validation scan (0: no latency).
        device: latency device (default: CUDA when available).
        name: release name (default: the experiment folder's name).
        zoo: a ``MODEL_ZOO.md`` to list the release in.
    """
    exp_dir = os.path.abspath(exp_dir)
    config_path = os.path.join(exp_dir, "config.py")
    ckpt_path = weight if weight.endswith(".pth") else os.path.join(exp_dir, "model", f"{weight}.pth")
    for path in (config_path, ckpt_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"make_release: {path} does not exist")
    progress = StageProgress("release", 3 + 2 * bool(evaluate_now) + (latency_runs > 0) + bool(zoo))
    progress.start(f"read and check {display_path(ckpt_path)}")
    cfg = Config.fromfile(config_path)
    state, meta = export_state_dict(ckpt_path)
    params = _strict_check(cfg, state, ckpt_path)
    eval_cfg = Config.fromfile(config_path)
    if options:
        apply_options(eval_cfg, options)

    _prepare_out_dir(out_dir)
    progress.start(f"write weights and config to {display_path(out_dir)}")
    model_path = os.path.join(out_dir, "model.pth")
    torch.save({"state_dict": state}, model_path)
    if half:
        torch.save({"state_dict": {k: v.half() if v.is_floating_point() else v for k, v in state.items()}},
                   os.path.join(out_dir, "model_fp16.pth"))
    shutil.copyfile(config_path, os.path.join(out_dir, "config.py"))

    metrics = (evaluate(eval_cfg, model_path, progress=progress) if evaluate_now
               else collect_summaries(exp_dir, metrics_from, cfg, ckpt_path))
    if latency_runs > 0:
        progress.start(f"latency: {latency_runs} timed forward passes")
    names = list(cfg.data.get("names") or cfg.get("names") or [])
    info = dict(name=name or os.path.basename(exp_dir), dataset=_dataset_name(cfg, exp_dir),
                created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                pointcept_distill=pointcept_distill.__version__,
                source=dict(exp_dir=display_path(exp_dir), weight=display_path(ckpt_path, exp_dir), **meta),
                num_classes=int(cfg.data.num_classes), class_names=names, params=params,
                metrics=metrics, evaluated_with_options=options or {},
                latency=measure_latency(eval_cfg, model_path, device, latency_runs) if latency_runs > 0 else None)
    info["sha256"] = {"model.pth": sha256_file(model_path)}
    if half:
        info["sha256"]["model_fp16.pth"] = sha256_file(os.path.join(out_dir, "model_fp16.pth"))
    progress.start("metrics.json, model card, SHA256SUMS")
    with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    write_model_card(out_dir, info, cfg)
    write_sha256sums(out_dir)
    if zoo:
        progress.start(f"list in {display_path(zoo)}")
        update_model_zoo(zoo, out_dir)
    progress.done(f"released {info['name']}")
    return info


def verify_release(release_dir: str, options: dict | None = None, tol: float = 1e-6) -> dict[str, dict]:
    """Check ``SHA256SUMS``, load ``model.pth`` strictly into the release's ``cfg.model``, re-run each
    recorded evaluation and compare mIoU and per-class IoU; raise ``ReleaseMismatch`` on a difference."""
    progress = StageProgress("release --verify", 1)  # + one per recorded evaluation, once metrics.json is trusted
    progress.start("SHA256SUMS and a strict load of model.pth")
    verify_sha256sums(release_dir)
    cfg = Config.fromfile(os.path.join(release_dir, "config.py"))
    if options:
        apply_options(cfg, options)
    model_path = os.path.join(release_dir, "model.pth")
    _strict_check(cfg, load_checkpoint(model_path)["state_dict"], model_path)
    with open(os.path.join(release_dir, "metrics.json"), encoding="utf-8") as f:
        recorded = json.load(f)["metrics"]
    progress.add(len(recorded))
    reproduced = evaluate(cfg, model_path, modes=list(recorded), progress=progress)
    for mode, old in recorded.items():
        new = reproduced[mode]
        pairs = [("mIoU", old["mIoU"], new["mIoU"])]
        pairs += [(f"IoU {c}", v, new["iou_per_class"][c]) for c, v in old["iou_per_class"].items()]
        bad = [f"{k}: recorded {a:.6f}, reproduced {b:.6f}" for k, a, b in pairs if abs(a - b) > tol]
        if bad:
            raise ReleaseMismatch(f"{release_dir} ({mode}): " + "; ".join(bad))
    progress.done("verified")
    return reproduced


def update_model_zoo(zoo_path: str, release_dir: str) -> None:
    """Add the release's row to the table of ``zoo_path`` (replacing a row of the same name)."""
    with open(os.path.join(release_dir, "metrics.json"), encoding="utf-8") as f:
        info = json.load(f)
    single, tta, lat = (info["metrics"].get("single_pass") or {}), (info["metrics"].get("tta") or {}), info["latency"]
    rel = os.path.relpath(os.path.abspath(release_dir), os.path.dirname(os.path.abspath(zoo_path)))
    latency = f"{lat['ms_median']:.1f} ms ({lat['device']})" if lat else "-"
    row = (f"| {info['name']} | {info['dataset']} | {info['params']:,} | {_fmt(single.get('mIoU'))} | "
           f"{_fmt(tta.get('mIoU'))} | {latency} | `{info['sha256']['model.pth'][:12]}` | `{rel}` |\n")
    text = open(zoo_path, encoding="utf-8").read() if os.path.isfile(zoo_path) else ""
    if ZOO_END not in text:
        text += "\n" + ZOO_HEADER + ZOO_END + "\n"
    lines = [line for line in text.splitlines(keepends=True) if not line.startswith(f"| {info['name']} |")]
    text = "".join(lines).replace(ZOO_END, row + ZOO_END, 1)
    with open(zoo_path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exp_dir", help="experiment folder (with --verify: a release folder)")
    parser.add_argument("out_dir", nargs="?", help="release folder to write")
    parser.add_argument("--weight", default="model_best", help="checkpoint name in EXP_DIR/model or a .pth")
    parser.add_argument("--half", action="store_true", help="also write model_fp16.pth")
    parser.add_argument("--metrics-from", nargs="+", default=[], metavar="JSON", help="tester summary files")
    parser.add_argument("--evaluate", action="store_true", help="run SemSegTester single-pass and TTA")
    parser.add_argument("--options", nargs="+", default=[], help="KEY=VALUE overrides for evaluation")
    parser.add_argument("--latency-runs", type=int, default=5)
    parser.add_argument("--device", default=None, help="latency device (default: cuda if available)")
    parser.add_argument("--name", default=None)
    parser.add_argument("--zoo", default=None, help="MODEL_ZOO.md to list the release in")
    parser.add_argument("--verify", action="store_true", help="verify the release folder EXP_DIR")
    args = parser.parse_args(argv)
    options = parse_options(args.options)
    if args.verify:
        for mode, summary in verify_release(args.exp_dir, options).items():
            print(f"{mode}: mIoU {summary['mIoU']:.4f} reproduced")
        return 0
    if not args.out_dir:
        parser.error("OUT_DIR is required unless --verify")
    info = make_release(args.exp_dir, args.out_dir, args.weight, args.half, args.metrics_from, args.evaluate,
                        options, args.latency_runs, args.device, args.name, args.zoo)
    found = ", ".join(f"{k} mIoU {v['mIoU']:.4f}" for k, v in info["metrics"].items()) or "no metrics"
    print(f"released {info['name']} to {args.out_dir}: {info['params']:,} params, {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
