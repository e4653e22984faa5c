"""Write simulated LiDAR frames in a dataset's on-disk layout.

    python tools/make_synthetic.py --profile nuscenes --out data/nuscenes --train 100 --val 20 --seed 0

The output directory is the ``data_root`` of that profile's dataset class (NuScenesDataset,
SemanticKITTIDataset or WaymoDataset). The frames are a deterministic function of the seed.
"""
from __future__ import annotations

import argparse
import sys
import time

from pointcept_distill.data.simulator import PROFILES, generate
from pointcept_distill.utils.progress import format_seconds


class FrameProgress:
    """``[make_synthetic] <split> i/N frames (all: k/K), about T left`` at most every ``every`` s and at the end
    of each split."""

    def __init__(self, total: int, every: float = 5.0) -> None:
        self.total, self.every, self.done = total, every, 0
        self.started = self.shown = time.perf_counter()

    def __call__(self, split: str, index: int, count: int) -> None:
        self.done += 1
        now = time.perf_counter()
        if index == count or now - self.shown >= self.every:
            self.shown = now
            left = (now - self.started) / self.done * (self.total - self.done)
            print(f"[make_synthetic] {split} {index}/{count} frames (all: {self.done}/{self.total}), "
                  f"about {format_seconds(left)} left", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True, choices=sorted(PROFILES))
    parser.add_argument("--out", required=True, help="data root to write")
    parser.add_argument("--train", type=int, default=100, help="number of train frames")
    parser.add_argument("--val", type=int, default=20, help="number of val frames")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies the azimuth resolution (below 1: fewer points, faster)")
    args = parser.parse_args(argv)
    report = generate(args.profile, args.out, args.train, args.val, args.seed, args.scale,
                      on_frame=FrameProgress(args.train + args.val))
    mean = sum(report.points) / max(len(report.points), 1)
    print(f"{args.profile}: wrote {report.frames} frames to {args.out} in {report.seconds:.1f} s "
          f"({report.frames_per_second:.2f} frames/s, {mean:.0f} points/frame)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
