"""``Segmenter``: per-point semantic labels and probabilities for a raw LiDAR scan.

Load a release (``Segmenter.from_release(dir)``, see ``tools/release.py``) or a config with a
checkpoint (``Segmenter.from_checkpoint(config, weight)``), then call it on an ``(N, 4)`` array of
x, y, z (metres, in the frame of the dataset's files) and the raw sensor intensity::

    seg = Segmenter.from_release("releases/nuscenes-student", device="cuda")
    result = seg(points)                 # result.labels (N,), result.probs (N, K), result.class_names

Intensity: the API takes the value as the dataset's files store it and applies the conversion the
dataset class applies when it reads them, so the model sees the feature it was trained on:

    ``nuscenes``        intensity / 255   (``.pcd.bin`` column 4, 0-255; ``NuScenesDataset``)
    ``semantic_kitti``  remission as is   (``.bin`` column 4, 0-1; ``SemanticKITTIDataset``)
    ``waymo``           tanh(intensity)   (Pointcept's Waymo preprocessing stores ``strength = tanh``)
    ``strength``        as is             (the value already is a dataset's ``strength``)

The convention follows from the type of ``cfg.data.val`` unless ``dataset=`` names one. The scan then
goes once through the config's validation pipeline (``cfg.data.val.transform``: clip, grid sample with
``inverse``, ``Collect`` with the feat keys), the model scores every voxel and each input point gets
the softmax probabilities of its voxel through ``inverse``. With ``tta=True`` it goes through the
test protocol of ``cfg.data.test`` instead (every test-time view and voxel part), and each point gets the
sum of the softmax probabilities of every fragment holding it, undivided: the testers' vote
(``engine.predictor.Predictor``, which scores for ``SemSegTester`` and ``CrossDatasetTester`` too), so the
labels are those of the "TTA" metrics of a release; a row then sums to the number of fragments holding the
point, not to 1 (``probs / probs.sum(1, keepdims=True)`` is their mean).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from .data import DATASETS, DefaultDataset
from .data.transforms import Compose
from .data.validate import check_grid_coord, check_points
from .engine.checkpoint import CheckpointError, load_checkpoint, remap_state_dict
from .engine.predictor import Predictor
from .models import build_model
from .utils.config import Config, apply_options
from .utils.misc import sha256_file

__all__ = ["Result", "Segmenter", "INTENSITY_CONVERSIONS", "load_model", "resolve_device", "sha256_file",
           "read_sha256sums", "verify_sha256sums"]

INPUT = "Segmenter input"  # how errors about the values of a scan given to Segmenter name it

INTENSITY_CONVERSIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "nuscenes": lambda x: x / np.float32(255),
    "semantic_kitti": lambda x: x,
    "waymo": np.tanh,
    "strength": lambda x: x,
}


class _Scan(DefaultDataset):
    """One in-memory scan run through the datasets' test protocol (``prepare_test_data``: TTA views x
    voxel parts), with a fixed generator."""

    def __init__(self, sample: dict, transform: list, test_cfg: dict) -> None:
        self.sample = sample
        super().__init__(split="scan", data_root="<memory>", transform=transform, test_mode=True,
                         test_cfg=test_cfg, seed=0)

    def get_data_list(self) -> list:
        return ["scan"]

    def get_data_path(self, idx: int) -> str:
        return INPUT

    def load_data(self, idx: int) -> dict[str, np.ndarray]:
        return dict(self.sample)

    def sample_rng(self, idx: int) -> np.random.Generator:
        return np.random.default_rng(0)


@dataclass
class Result:
    """Per-point output: ``labels`` (N,) int64 train ids (the argmax of ``probs``), ``probs`` (N, K) float32
    softmax probabilities (with ``tta``: summed over the fragments holding the point, see the module
    docstring), ``class_names`` (K)."""

    labels: np.ndarray
    probs: np.ndarray
    class_names: list[str]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``: CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _listed_name(sums: str, name: str) -> str:
    """A ``SHA256SUMS`` entry as a path relative to the release folder; absolute names and names that leave
    the folder are refused."""
    normal = os.path.normpath(name)
    if os.path.isabs(name) or normal == ".." or normal.startswith(".." + os.sep) or name in ("", "."):
        raise CheckpointError(f"{sums} lists '{name}', a path outside the release folder; refusing the release")
    return normal


def read_sha256sums(release_dir: str) -> dict[str, str]:
    """``{name: digest}`` of ``release_dir/SHA256SUMS`` (``sha256sum`` format); ``CheckpointError`` naming the
    file when it is missing or malformed or lists a name that is absolute or leaves the folder."""
    sums = os.path.join(release_dir, "SHA256SUMS")
    if not os.path.isfile(sums):
        raise CheckpointError(f"{sums} does not exist: a release must list the SHA-256 of each of its files "
                              f"(tools/release.py writes it); refusing {release_dir}")
    listed: dict[str, str] = {}
    with open(sums, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split(maxsplit=1)
            if len(parts) != 2 or len(parts[0]) != 64:
                raise CheckpointError(f"{sums}, line {number}: not '<sha256>  <name>': {line.strip()!r}")
            digest, name = parts
            name = name.strip()
            listed[_listed_name(sums, name[1:] if name.startswith("*") else name)] = digest.lower()
    return listed


def verify_sha256sums(release_dir: str) -> None:
    """Check a release folder against its ``SHA256SUMS`` (``sha256sum`` format); raise ``CheckpointError``
    naming the file when ``SHA256SUMS`` is missing or malformed, lists a name that is absolute or leaves the
    folder, does not list a file of the folder, or when a file is missing or its SHA-256 differs."""
    sums = os.path.join(release_dir, "SHA256SUMS")
    listed = read_sha256sums(release_dir)
    present = {os.path.relpath(os.path.join(root, name), release_dir)
               for root, _, names in os.walk(release_dir) for name in names}
    unlisted = sorted(present - set(listed) - {"SHA256SUMS"})
    if unlisted:
        raise CheckpointError(f"{sums} does not list {unlisted}: every file of a release must be listed; "
                              f"refusing {release_dir}")
    for name, digest in listed.items():
        path = os.path.join(release_dir, name)
        if not os.path.isfile(path):
            raise CheckpointError(f"{path}: listed in {sums} but missing")
        actual = sha256_file(path)
        if actual != digest:
            raise CheckpointError(f"{path}: SHA-256 {actual} differs from {digest} in {sums}")


def load_model(cfg: Config, weight: str, device: torch.device) -> nn.Module:
    """``build_model(cfg.model)`` with ``weight`` loaded strictly (float32, ``module.`` stripped), in eval mode."""
    state = remap_state_dict(load_checkpoint(weight)["state_dict"], False)
    model = build_model(cfg.model)
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"weight '{weight}' does not match the model of {cfg.filename}: {err}") from err
    return model.to(device).eval()


def _convention(cfg: Config, dataset: str | None) -> str:
    if dataset is None:
        type_ = cfg.data.val.get("type")
        try:
            dataset = getattr(DATASETS.get(type_), "dataset_name", None)
        except KeyError:
            dataset = None
        if dataset not in INTENSITY_CONVERSIONS:
            raise ValueError(f"Segmenter: cannot tell the intensity convention of data.val type {type_!r} in "
                             f"{cfg.filename}; pass dataset= one of {sorted(INTENSITY_CONVERSIONS)}")
    if dataset not in INTENSITY_CONVERSIONS:
        raise ValueError(f"Segmenter: unknown dataset {dataset!r} (known: {sorted(INTENSITY_CONVERSIONS)})")
    return dataset


class Segmenter:
    """A model with its config's validation pipeline and class names.

    Args:
        cfg: the model's config (``model``, ``data.val.transform``, ``data.names``/``names``).
        model: the loaded model.
        device: where ``model`` lives.
        capture: None runs the model eagerly; "graphs" runs it through ``CapturedSegmentor`` (fixed-capacity
            batches replayed from CUDA graphs; the fast path for a stream of scans on a GPU, see BENCHMARKS.md),
            "compiled" also compiles each capacity with inductor first (slow first scans, fastest after).
        dtype: autocast dtype of a captured model (e.g. torch.bfloat16), or None for float32.

    Scores come from ``self.predictor`` (``engine.predictor.Predictor``), the testers' predictor.
    """

    def __init__(self, cfg: Config, model: nn.Module, device: torch.device, capture: str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        self.cfg, self.model = cfg, model.eval()
        self.predictor = Predictor(self.model, device, capture, dtype)
        data = cfg.get("data") or {}
        names = data.get("names") or cfg.get("names")
        if not names:
            raise KeyError(f"Segmenter: {cfg.filename} has neither data.names nor names")
        self.class_names = [str(n) for n in names]
        transform = (data.get("val") or {}).get("transform")
        if transform is None:
            raise KeyError(f"Segmenter: {cfg.filename} has no data.val.transform (one dataset's validation "
                           f"pipeline; a ConcatDataset of several is not supported)")
        self.transform = Compose(transform)

    @classmethod
    def from_checkpoint(cls, config: str | Config, weight: str, device: str | torch.device | None = None,
                        options: dict | None = None, **kwargs) -> "Segmenter":
        """A config file (or loaded Config) and a Pointcept checkpoint; ``options`` as ``--options``;
        ``kwargs``: ``capture``, ``dtype``."""
        cfg = config if isinstance(config, Config) else Config.fromfile(config)
        if options:
            apply_options(cfg, options)
        dev = resolve_device(device)
        return cls(cfg, load_model(cfg, weight, dev), dev, **kwargs)

    @classmethod
    def from_release(cls, release_dir: str, device: str | torch.device | None = None, verify: bool = True,
                     options: dict | None = None, **kwargs) -> "Segmenter":
        """A release folder (``config.py``, ``model.pth``). ``verify`` (default) first checks ``SHA256SUMS``
        (``verify_sha256sums``: it must exist, list every file and only files inside the folder, and match);
        ``verify=False`` skips that check. Either way ``model.pth`` is read as data (no pickled code runs),
        while ``config.py`` is Python and runs as code, as every config does: use releases you trust."""
        if verify:
            verify_sha256sums(release_dir)
        return cls.from_checkpoint(os.path.join(release_dir, "config.py"),
                                   os.path.join(release_dir, "model.pth"), device, options, **kwargs)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        return self.predictor.device

    def _single_pass(self, sample: dict) -> torch.Tensor:
        data = self.transform(sample, np.random.default_rng(0))
        check_grid_coord(data, INPUT)
        if "inverse" not in data:
            raise KeyError(f"Segmenter: data.val.transform of {self.cfg.filename} yields no 'inverse' "
                           f"(use GridSample(return_inverse=True) and Collect it)")
        return self.predictor(data)

    def _voting(self, sample: dict) -> torch.Tensor:
        test = self.cfg.data.get("test") or {}
        if test.get("test_cfg") is None:
            raise KeyError(f"Segmenter: tta=True needs data.test.test_cfg in {self.cfg.filename}")
        return self.predictor(_Scan(sample, test.get("transform"), test["test_cfg"])[0], vote=True)

    def predict(self, coord: np.ndarray, strength: np.ndarray, tta: bool = False) -> Result:
        """Segment ``coord`` (N, 3) with ``strength`` (N,) or (N, 1) already in the dataset's convention.

        ``tta``: the test protocol of ``cfg.data.test`` instead of one pass (``SemSegTester``'s fragment
        voting: every test-time view, every voxel part; probabilities summed, not divided)."""
        coord = np.ascontiguousarray(coord, dtype=np.float32)
        n = len(coord)
        sample = {"coord": coord, "strength": np.asarray(strength, dtype=np.float32).reshape(n, 1),
                  "segment": np.full(n, -1, dtype=np.int64)}
        check_points(sample, INPUT)
        probs = (self._voting(sample) if tta else self._single_pass(sample)).cpu()  # (N, K)
        return Result(labels=probs.argmax(1).numpy().astype(np.int64), probs=probs.numpy(),
                      class_names=list(self.class_names))

    def __call__(self, points: np.ndarray, dataset: str | None = None, tta: bool = False) -> Result:
        """Segment ``points`` (N, 4): x, y, z, raw intensity (see the module docstring)."""
        points = np.asarray(points)
        if points.ndim != 2 or points.shape[1] < 4:
            raise ValueError(f"Segmenter: points must be (N, 4) x, y, z, intensity; got {points.shape}")
        # before the conversion, which can hide a bad value (tanh(inf) = 1)
        check_points({"coord": points[:, :3], "strength": points[:, 3]}, INPUT)
        convert = INTENSITY_CONVERSIONS[_convention(self.cfg, dataset)]
        return self.predict(points[:, :3], convert(points[:, 3].astype(np.float32)), tta)

    def __repr__(self) -> str:
        return f"Segmenter({self.cfg.filename}, {self.num_classes} classes, {self.device})"

    def to(self, device: str | torch.device) -> "Segmenter":
        self.predictor.device = torch.device(device)
        self.model.to(self.device)
        return self
