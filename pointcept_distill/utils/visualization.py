"""Pictures without a plotting library: class colours, bird's-eye-view rasters, error codes, training scalars.

``tools/visualize.py`` lays these out with matplotlib (imported there, lazily); TensorBoard's
``EventAccumulator`` is imported inside ``read_scalars`` only.
"""
from __future__ import annotations

import glob
import os
import re

import numpy as np

__all__ = ["CORRECT", "WRONG", "DISAGREE", "IGNORED", "SHARED", "ERROR_COLORS", "ERROR_NAMES", "BACKGROUND",
           "class_palette", "colorize", "error_codes", "bev_extent", "bev_raster", "read_scalars",
           "parse_train_log"]

CORRECT, WRONG, DISAGREE, IGNORED, SHARED = 0, 1, 2, 3, 4
ERROR_COLORS = np.array([[150, 150, 150],   # student right, teacher agrees
                         [255, 0, 0],       # student wrong, teacher predicts another class
                         [255, 150, 0],     # student right (or unlabelled), teacher predicts another class
                         [225, 225, 225],   # unlabelled, student and teacher agree
                         [110, 0, 0]],      # student wrong with the teacher's label
                        dtype=np.uint8)
ERROR_NAMES = ("student correct", "student wrong, teacher differs", "student right, teacher differs",
               "unlabelled", "student wrong like teacher")
BACKGROUND = np.array([255, 255, 255], dtype=np.uint8)

# 20 distinct colours without pure red, orange or grey (kept for the error panel)
_PALETTE = np.array([[31, 119, 180], [44, 160, 44], [148, 103, 189], [140, 86, 75], [227, 119, 194],
                     [188, 189, 34], [23, 190, 207], [174, 199, 232], [152, 223, 138], [197, 176, 213],
                     [196, 156, 148], [247, 182, 210], [219, 219, 141], [158, 218, 229], [57, 59, 121],
                     [99, 121, 57], [140, 109, 49], [123, 65, 115], [0, 0, 0], [255, 221, 0]], dtype=np.uint8)


def class_palette(num_classes: int) -> np.ndarray:
    """(K, 3) uint8 class colours: a fixed list of 20, then evenly spaced hues."""
    if num_classes <= len(_PALETTE):
        return _PALETTE[:num_classes].copy()
    hue = np.linspace(0, 1, num_classes - len(_PALETTE), endpoint=False)
    extra = np.stack([np.abs(hue * 6 - 3) - 1, 2 - np.abs(hue * 6 - 2), 2 - np.abs(hue * 6 - 4)], 1)
    return np.concatenate([_PALETTE, (np.clip(extra, 0, 1) * 200 + 30).astype(np.uint8)])


def colorize(labels: np.ndarray, palette: np.ndarray, ignore_index: int = -1) -> np.ndarray:
    """(N, 3) uint8 colours of ``labels``; ``ignore_index`` (or any id outside the palette) is light grey."""
    labels = np.asarray(labels).reshape(-1)
    valid = (labels != ignore_index) & (labels >= 0) & (labels < len(palette))
    out = np.broadcast_to(ERROR_COLORS[IGNORED], (len(labels), 3)).copy()
    out[valid] = palette[labels[valid]]
    return out


def error_codes(gt: np.ndarray, teacher: np.ndarray, student: np.ndarray, ignore_index: int = -1) -> np.ndarray:
    """Per point: where the student misses a label, ``WRONG`` if the teacher predicts another class and
    ``SHARED`` if it predicts the same; elsewhere ``DISAGREE`` where the teacher predicts another class,
    else ``CORRECT`` (labelled) or ``IGNORED`` (unlabelled). Red and orange: student and teacher differ."""
    labelled, differ = gt != ignore_index, student != teacher
    wrong = labelled & (student != gt)
    codes = np.where(labelled, CORRECT, IGNORED)
    codes[differ] = DISAGREE
    codes[wrong & ~differ] = SHARED
    codes[wrong & differ] = WRONG
    return codes


def bev_extent(coord: np.ndarray, quantile: float = 0.98) -> float:
    """Half-width (m) of a square view centred on the sensor holding ``quantile`` of the points."""
    reach = np.abs(np.asarray(coord)[:, :2]).max(1)
    return float(max(np.quantile(reach, quantile), 1e-3))


def bev_raster(coord: np.ndarray, colors: np.ndarray, half_width: float, size: int = 400,
               radius: int = 1) -> np.ndarray:
    """(size, size, 3) uint8 top view of ``coord`` (x right, y up, sensor at the centre) over
    ``[-half_width, half_width]^2``; each point is a (2 radius + 1)^2 square and the highest point wins."""
    coord = np.asarray(coord, dtype=np.float64)
    scale = size / (2 * half_width)
    col = np.floor((coord[:, 0] + half_width) * scale).astype(np.int64)
    row = np.floor((half_width - coord[:, 1]) * scale).astype(np.int64)
    order = np.argsort(coord[:, 2], kind="stable")  # low to high: later writes (higher points) win
    image = np.broadcast_to(BACKGROUND, (size, size, 3)).copy()
    offsets = [(dr, dc) for dr in range(-radius, radius + 1) for dc in range(-radius, radius + 1)]
    offsets.sort(key=lambda o: -(abs(o[0]) + abs(o[1])))  # the centre pixel last
    for dr, dc in offsets:
        r, c = row[order] + dr, col[order] + dc
        inside = (r >= 0) & (r < size) & (c >= 0) & (c < size)
        flat = r[inside] * size + c[inside]
        _, last = np.unique(flat[::-1], return_index=True)  # last write per pixel = highest point
        keep = len(flat) - 1 - last
        image.reshape(-1, 3)[flat[keep]] = colors[order][inside][keep]
    return image


_TRAIN = re.compile(r"Train: \[(\d+)/(\d+)\]\[(\d+)/(\d+)\]")
_LOSS = re.compile(r"\b(loss\w*): (-?[\d.]+(?:e[-+]?\d+)?|nan|inf)")
_NUM = r"(\d+(?:\.\d+)?)"
_VAL = re.compile(rf"Val result: (?:mIoU/mAcc/allAcc {_NUM}/{_NUM}/{_NUM}|.*\bmIoU {_NUM})")


def parse_train_log(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``train_batch/<loss>`` per iteration and ``val/mIoU`` (``mAcc``, ``allAcc``) per epoch from a
    ``train.log``; the tags TensorBoard would hold."""
    series: dict[str, list[tuple[float, float]]] = {}
    epoch = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            train = _TRAIN.search(line)
            if train:
                epoch = int(train.group(1))
                step = (epoch - 1) * int(train.group(4)) + int(train.group(3))
                for key, value in _LOSS.findall(line[train.end():]):
                    series.setdefault(f"train_batch/{key}", []).append((step, float(value)))
                continue
            val = _VAL.search(line)
            if val:
                values = val.groups()[:3] if val.group(1) else (val.group(4),)
                for key, value in zip(("mIoU", "mAcc", "allAcc"), values):
                    series.setdefault(f"val/{key}", []).append((epoch, float(value)))
    return {tag: (np.array([s for s, _ in pts]), np.array([v for _, v in pts])) for tag, pts in series.items()}


def read_scalars(exp_dir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar tag of the experiment's TensorBoard events as ``(steps, values)``; without event files,
    what ``parse_train_log`` finds in ``train.log``."""
    if glob.glob(os.path.join(exp_dir, "events.out.tfevents*")):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        acc = EventAccumulator(exp_dir, size_guidance={"scalars": 0})
        acc.Reload()
        out = {}
        for tag in acc.Tags()["scalars"]:
            events = acc.Scalars(tag)
            out[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
        return out
    log = os.path.join(exp_dir, "train.log")
    if not os.path.isfile(log):
        raise FileNotFoundError(f"read_scalars: {exp_dir} has neither TensorBoard events nor train.log")
    return parse_train_log(log)
