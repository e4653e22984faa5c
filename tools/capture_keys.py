"""How many CUDA-graph keys a training run meets: the capacity keys of augmented training batches.

A captured forward (``CapturedForward``: ``CapturedSegmentor``, ``distill.teacher_capture="graphs"``) captures
one graph per key (stage capacities, samples, serialization depth); a batch with a new key pays a capture. This
draws ``--steps`` random training batches of simulated sweeps through the dataset's training pipeline
(augmentations included), plans each on the host as the loader's workers do, and prints, per bucket
granularity (``--steps-per-octave``), how many distinct keys appeared, how many steps brought a new one in each
quarter of the run, and the mean padding. CPU only, no model is run.

    python tools/capture_keys.py --profile nuscenes --frames 64 --batch-size 2 --steps 1000 --steps-per-octave 8,4,2
    python tools/capture_keys.py --profile nuscenes --data-root data/nuscenes --batch-size 2   # a real dataset
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from pointcept_distill.data import build_dataset, point_collate_fn  # noqa: E402
from pointcept_distill.data.pipelines import data_config  # noqa: E402
from pointcept_distill.data.simulator import generate  # noqa: E402
from pointcept_distill.models.plan import BatchPlan, plan_batch  # noqa: E402


def batch_plans(profile: str, frames: int, batch_size: int, steps: int, strides: list[int], scale: float,
                seed: int, data_root: str | None = None) -> list[BatchPlan]:
    """The host plans (``plan.BatchPlan``: depth, samples, stage sizes) of ``steps`` random training batches of
    the dataset at ``data_root``, or of ``frames`` simulated sweeps."""
    if data_root is not None:
        return _plans(build_dataset(data_config(profile, data_root)["train"]), batch_size, steps, strides, seed)
    with tempfile.TemporaryDirectory(prefix="capture-keys-") as root:
        generate(profile, root, train=frames, val=0, seed=seed, scale=scale)
        return _plans(build_dataset(data_config(profile, root)["train"]), batch_size, steps, strides, seed)


def _plans(dataset, batch_size: int, steps: int, strides: list[int], seed: int) -> list[BatchPlan]:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)                                     # the pipeline's augmentations
    plans = []
    for _ in range(steps):
        picks = torch.randint(len(dataset), (batch_size,), generator=generator).tolist()
        plans.append(plan_batch(point_collate_fn([dataset[i] for i in picks]), strides))
    return plans


def key_statistics(plans: list[BatchPlan], steps_per_octave: int) -> dict:
    """Distinct keys, new keys per quarter of the steps, and the mean padding of the first stage."""
    seen: set = set()
    new_per_quarter = [0, 0, 0, 0]
    padding = []
    for step, plan in enumerate(plans):
        key = plan.bucketed(steps_per_octave)             # a captured forward's graph key
        if key not in seen:
            seen.add(key)
            new_per_quarter[4 * step // len(plans)] += 1
        padding.append(key.sizes[0] / plan.sizes[0] - 1)
    return {"steps_per_octave": steps_per_octave, "steps": len(plans), "keys": len(seen),
            "new_keys_per_quarter": new_per_quarter, "mean_padding": sum(padding) / len(padding)}


def table(rows: list[dict]) -> str:
    lines = ["| steps per octave | steps | distinct keys | new keys per quarter of the run | mean padding |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['steps_per_octave']} | {r['steps']} | {r['keys']} | "
              f"{' / '.join(str(n) for n in r['new_keys_per_quarter'])} | {100 * r['mean_padding']:.1f} % |"
              for r in rows]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="nuscenes", help="simulator profile (nuscenes, semantic_kitti, waymo)")
    parser.add_argument("--data-root", default=None, help="a dataset in --profile's on-disk layout (default: simulate)")
    parser.add_argument("--frames", type=int, default=64, help="simulated training sweeps to draw batches from")
    parser.add_argument("--batch-size", type=int, default=2, help="sweeps per batch (per GPU)")
    parser.add_argument("--steps", type=int, default=400, help="training batches drawn")
    parser.add_argument("--steps-per-octave", default="8,4", help="bucket granularities to compare")
    parser.add_argument("--stride", default="2,2,2,2", help="the model's pooling strides")
    parser.add_argument("--scale", type=float, default=1.0, help="simulator azimuth scale (1 = the real sensor)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.frames, args.batch_size, args.steps) < 1:
        parser.error("--frames, --batch-size and --steps must be positive")
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    strides = [int(s) for s in args.stride.split(",")]
    plans = batch_plans(args.profile, args.frames, args.batch_size, args.steps, strides, args.scale, args.seed,
                        args.data_root)
    rows = [key_statistics(plans, int(s)) for s in args.steps_per_octave.split(",")]
    source = args.data_root or f"{args.frames} simulated sweeps"
    print(f"{args.profile}, {source}, {args.batch_size} per batch, training pipeline:")
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
