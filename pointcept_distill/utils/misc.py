"""Seeding, RNG-state capture, segmentation counts, atomic file writes, file digests and sync-free tensor checks."""
from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["check_tensor", "set_seed", "derive_seed", "get_rng_state", "set_rng_state", "fork_rng_seeded",
           "intersection_and_union", "intersection_and_union_torch", "semseg_metrics", "atomic_write",
           "remove_stale_temporaries", "display_path", "sha256_file"]


def display_path(path: str | os.PathLike | None, start: str | os.PathLike | None = None) -> str | None:
    """``path`` as written where others read it (model cards, picture titles): relative to ``start`` (default:
    the current directory) when it lies inside, else ``.../<parent>/<name>``; never absolute, so nothing of
    the machine's folders leaks. ``None`` and ``""`` are returned as they are."""
    if not path:
        return path  # type: ignore[return-value]
    full = os.path.abspath(os.path.expanduser(os.fspath(path)))
    rel = os.path.relpath(full, os.path.abspath(start or os.getcwd()))
    if rel != os.pardir and not rel.startswith(os.pardir + os.sep):
        return rel
    tail = [part for part in full.split(os.sep) if part][-2:]
    return "/".join(["...", *tail])


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) and make cuDNN deterministic, as Pointcept does."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def derive_seed(*parts: int) -> int:
    """A 32-bit seed that depends on every part (e.g. base seed, epoch, sample position)."""
    return int(np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(1)[0])


def _plain_numpy_state(state: tuple) -> dict[str, Any]:
    """``np.random.get_state()`` as tensors and plain types (a checkpoint of them loads with
    ``torch.load(weights_only=True)``, no numpy globals needed)."""
    name, key, pos, has_gauss, cached_gaussian = state
    return {"bit_generator": str(name), "key": torch.from_numpy(np.asarray(key, dtype=np.int64)),
            "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}


def _numpy_state(state: Any) -> Any:
    """What ``np.random.set_state`` takes, from ``_plain_numpy_state``'s dict or a legacy ``get_state()`` tuple."""
    if isinstance(state, dict) and "key" in state:
        key = state["key"]
        key = key.numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
        return (state["bit_generator"], key.astype(np.uint32), int(state["pos"]), int(state["has_gauss"]),
                float(state["cached_gaussian"]))
    return state


def get_rng_state() -> dict[str, Any]:
    """The global random states of python, numpy, torch and (if present) CUDA, as tensors and plain types."""
    state: dict[str, Any] = {"python": random.getstate(), "numpy": _plain_numpy_state(np.random.get_state()),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``get_rng_state`` captured (numpy's state also as ``np.random.get_state()``'s tuple, as
    older checkpoints hold it); missing entries are left alone."""
    if "python" in state:
        random.setstate(state["python"])
    if "numpy" in state:
        np.random.set_state(_numpy_state(state["numpy"]))
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def fork_rng_seeded(seed: int, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with python/numpy/torch seeded from ``seed``, then restore the caller's random states.

    Data augmentation seeded this way depends only on ``seed``: not on the worker that runs it, on the
    number of workers, or on where a resumed run restarted.
    """
    saved = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        return fn()
    finally:
        set_rng_state(saved)


def intersection_and_union(pred: np.ndarray, target: np.ndarray, num_classes: int,
                           ignore_index: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class intersection, union and target counts; points whose target is ``ignore_index`` are dropped."""
    pred, target = np.asarray(pred).reshape(-1), np.asarray(target).reshape(-1)
    if pred.shape != target.shape:
        raise ValueError(f"intersection_and_union: pred {pred.shape} and target {target.shape} differ")
    keep = target != ignore_index
    pred, target = pred[keep], target[keep]
    inter = np.bincount(target[pred == target], minlength=num_classes)[:num_classes]
    area_pred = np.bincount(pred[(pred >= 0) & (pred < num_classes)], minlength=num_classes)[:num_classes]
    area_target = np.bincount(target[(target >= 0) & (target < num_classes)], minlength=num_classes)[:num_classes]
    return inter, area_pred + area_target - inter, area_target


def intersection_and_union_torch(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                                 ignore_index: int = -1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tensor version of ``intersection_and_union`` (stays on the input device)."""
    pred, target = pred.reshape(-1), target.reshape(-1)
    if pred.shape != target.shape:
        raise ValueError(f"intersection_and_union: pred {tuple(pred.shape)} and target "
                         f"{tuple(target.shape)} differ")
    keep = (target != ignore_index) & (target >= 0) & (target < num_classes)
    pred, target = pred[keep], target[keep]
    inter = torch.bincount(target[pred == target], minlength=num_classes)[:num_classes]
    valid_pred = pred[(pred >= 0) & (pred < num_classes)]
    area_pred = torch.bincount(valid_pred, minlength=num_classes)[:num_classes]
    area_target = torch.bincount(target, minlength=num_classes)[:num_classes]
    return inter, area_pred + area_target - inter, area_target


def semseg_metrics(intersection: np.ndarray, union: np.ndarray, target: np.ndarray) -> dict:
    """Pointcept's formulas: means over all classes (a class never seen counts 0), eps 1e-10."""
    iou = intersection / (union + 1e-10)
    acc = intersection / (target + 1e-10)
    return dict(mIoU=float(np.mean(iou)), mAcc=float(np.mean(acc)),
                allAcc=float(np.sum(intersection) / (np.sum(target) + 1e-10)), iou_class=iou, acc_class=acc)


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, fsync it, then ``os.replace`` it onto ``path``.

    A crash at any point leaves either the old ``path`` or the new one, never a partial file. A failed write
    (e.g. a full disk) removes the temporary file and raises ``OSError`` naming ``path`` and the cause (same
    errno); a killed process's temporary file (``<path>.tmp.<pid>``) is left for
    ``remove_stale_temporaries``.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            if os.path.exists(tmp):
                os.remove(tmp)
        if isinstance(err, OSError):
            message = (f"could not write '{path}': {err.strerror or err}; "
                       f"{'the previous file is kept' if os.path.exists(path) else 'nothing was written'}")
            raise (OSError(err.errno, message) if err.errno is not None else OSError(message)) from err
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


_TEMPORARY = re.compile(r".+\.tmp\.(\d+)")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(directory: str) -> list[str]:
    """Remove the temporary files ``atomic_write`` left in ``directory`` when its process was killed
    (``<name>.tmp.<pid>`` whose process no longer runs); return their paths."""
    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in sorted(os.listdir(directory)):
        match = _TEMPORARY.fullmatch(name)
        path = os.path.join(directory, name)
        if match and os.path.isfile(path) and not _process_alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(path)
    return removed


def check_tensor(condition: torch.Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` unless the boolean tensor ``condition`` is true, without a host sync on
    accelerators: there the check is queued on the device (``torch._assert_async``) and fails the next
    synchronising call; on the CPU it is evaluated at once."""
    if condition.device.type == "cpu":
        if not bool(condition):
            raise ValueError(message)
    else:
        torch._assert_async(condition, message)


def sha256_file(path: str) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
