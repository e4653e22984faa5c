"""``generate``: simulate train/val frames of one profile and write them in its dataset's layout."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .lidar import Scan, draw_mount, scan_scene
from .profiles import get_profile
from .scene import make_scene
from .writers import WRITERS

__all__ = ["GenerateReport", "generate", "simulate_frame"]

_SPLIT_CODE = {"train": 0, "val": 1}


@dataclass
class GenerateReport:
    """What ``generate`` wrote: frame counts, points per frame and wall time."""

    profile: str
    root: str
    frames: dict[str, int]
    points: list[int]
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return sum(self.frames.values()) / max(self.seconds, 1e-9)


def simulate_frame(profile: str, seed: int, split: str = "train", index: int = 0,
                   scale: float = 1.0) -> Scan:
    """One sweep, a pure function of (profile, seed, split, index, scale)."""
    prof = get_profile(profile)
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], index, sorted(WRITERS).index(profile)])
    scene = make_scene(rng, prof.street_width, prof.vegetation, prof.traffic)
    return scan_scene(scene, prof, rng, scale, draw_mount(rng))


def generate(profile: str, out: str, train: int, val: int, seed: int = 0,
             scale: float = 1.0, on_frame: Callable[[str, int, int], None] | None = None) -> GenerateReport:
    """Write ``train`` + ``val`` simulated frames of ``profile`` under ``out`` (the dataset's data_root).

    Args:
        profile: "nuscenes", "semantic_kitti" or "waymo".
        out: the data root the profile's dataset class reads.
        train, val: number of frames per split.
        seed: the output is a deterministic function of the seed.
        scale: multiplies the azimuth columns (fewer rays, for fast tests); 1 = the real sensor.
        on_frame: called as ``on_frame(split, done, count)`` after each written frame (progress).
    """
    prof = get_profile(profile)
    if train < 0 or val < 0 or scale <= 0:
        raise ValueError(f"generate: need train, val >= 0 and scale > 0, got {train}, {val}, {scale}")
    start, points, frames = time.perf_counter(), [], {}
    for split, count in (("train", train), ("val", val)):
        writer = WRITERS[profile](prof, out, split,
                                  np.random.default_rng([seed, _SPLIT_CODE[split], 10 ** 6]))
        for index in range(count):
            scan = simulate_frame(profile, seed, split, index, scale)
            writer.write(scan)
            points.append(len(scan.points))
            if on_frame is not None:
                on_frame(split, index + 1, count)
        writer.close()
        frames[split] = count
    return GenerateReport(profile, out, frames, points, time.perf_counter() - start)
