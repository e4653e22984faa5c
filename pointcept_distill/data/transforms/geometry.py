"""Coordinate transforms: PointClip, CenterShift, RandomRotate, RandomRotateTargetAngle, RandomScale,
RandomFlip, RandomJitter (Pointcept's semantics, numpy generators instead of the global state)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..builder import TRANSFORMS
from .base import Transform

__all__ = ["PointClip", "CenterShift", "RandomRotate", "RandomRotateTargetAngle", "RandomScale",
           "RandomFlip", "RandomJitter", "rotation_matrix"]


def rotation_matrix(angle: float, axis: str) -> np.ndarray:
    """Right-handed rotation by ``angle`` radians about ``axis`` in {x, y, z}."""
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    raise ValueError(f"rotation_matrix: axis must be x, y or z, got {axis!r}")


@TRANSFORMS.register_module()
class PointClip(Transform):
    """Clamp ``coord`` into ``(xmin, ymin, zmin, xmax, ymax, zmax)``; no point is dropped."""

    def __init__(self, point_cloud_range: Sequence[float] = (-80, -80, -3, 80, 80, 1)) -> None:
        if len(point_cloud_range) != 6:
            raise ValueError(f"PointClip: point_cloud_range needs 6 values, got {point_cloud_range}")
        self.point_cloud_range = tuple(float(v) for v in point_cloud_range)

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict:
        self.require(data, "coord")
        lo, hi = self.point_cloud_range[:3], self.point_cloud_range[3:]
        return {**data, "coord": np.clip(data["coord"], lo, hi).astype(data["coord"].dtype)}


@TRANSFORMS.register_module()
class CenterShift(Transform):
    """Move the bounding-box centre of x, y to 0, and the minimum z to 0 when ``apply_z``."""

    def __init__(self, apply_z: bool = True) -> None:
        self.apply_z = apply_z

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict:
        self.require(data, "coord")
        coord = data["coord"]
        lo, hi = coord.min(0), coord.max(0)
        shift = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2] if self.apply_z else 0])
        return {**data, "coord": (coord - shift).astype(coord.dtype)}


class _Rotate(Transform):
    """Shared rotation of ``coord`` (about ``center``, default the bounding-box centre) and ``normal``."""

    def __init__(self, center: Sequence[float] | None, axis: str, always_apply: bool, p: float) -> None:
        rotation_matrix(0.0, axis)
        self.center, self.axis, self.always_apply, self.p = center, axis, always_apply, p

    def draw_angle(self, rng: np.random.Generator) -> float:
        raise NotImplementedError

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict:
        self.require(data, "coord")
        rng = self.need_rng(rng)
        if not self.always_apply and rng.random() > self.p:
            return dict(data)
        rot = rotation_matrix(self.draw_angle(rng), self.axis)
        coord = data["coord"]
        if self.center is None:
            center = (coord.min(0) + coord.max(0)) / 2
        else:
            center = np.asarray(self.center, dtype=np.float64)
        out = {**data, "coord": ((coord - center) @ rot.T + center).astype(coord.dtype)}
        if "normal" in data:
            out["normal"] = (data["normal"] @ rot.T).astype(data["normal"].dtype)
        return out


@TRANSFORMS.register_module()
class RandomRotate(_Rotate):
    """With probability ``p``, rotate by ``U(angle[0], angle[1]) * pi`` about ``axis``."""

    def __init__(self, angle: Sequence[float] | None = None, center: Sequence[float] | None = None,
                 axis: str = "z", always_apply: bool = False, p: float = 0.5) -> None:
        super().__init__(center, axis, always_apply, p)
        self.angle = tuple(angle) if angle is not None else (-1.0, 1.0)

    def draw_angle(self, rng: np.random.Generator) -> float:
        return rng.uniform(self.angle[0], self.angle[1]) * np.pi


@TRANSFORMS.register_module()
class RandomRotateTargetAngle(_Rotate):
    """With probability ``p``, rotate by one of ``angle`` (times pi) about ``axis``."""

    def __init__(self, angle: Sequence[float] = (1 / 2, 1, 3 / 2), center: Sequence[float] | None = None,
                 axis: str = "z", always_apply: bool = False, p: float = 0.75) -> None:
        super().__init__(center, axis, always_apply, p)
        if len(angle) == 0:
            raise ValueError("RandomRotateTargetAngle: angle must list at least one value")
        self.angle = tuple(angle)

    def draw_angle(self, rng: np.random.Generator) -> float:
        return float(rng.choice(self.angle)) * np.pi


@TRANSFORMS.register_module()
class RandomScale(Transform):
    """Multiply ``coord`` by ``U(scale[0], scale[1])``, one factor or one per axis (``anisotropic``)."""

    def __init__(self, scale: Sequence[float] | None = None, anisotropic: bool = False) -> None:
        self.scale = tuple(scale) if scale is not None else (0.95, 1.05)
        self.anisotropic = anisotropic

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict:
        self.require(data, "coord")
        rng = self.need_rng(rng)
        factor = rng.uniform(self.scale[0], self.scale[1], 3 if self.anisotropic else 1)
        return {**data, "coord": (data["coord"] * factor).astype(data["coord"].dtype)}


@TRANSFORMS.register_module()
class RandomFlip(Transform):
    """Negate x with probability ``p``, then, independently, y with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict:
        self.require(data, "coord")
        rng = self.need_rng(rng)
        sign = np.ones(3)
        for axis in (0, 1):
            if rng.random() < self.p:
                sign[axis] = -1
        out = {**data, "coord": (data["coord"] * sign).astype(data["coord"].dtype)}
        if "normal" in data:
            out["normal"] = (data["normal"] * sign).astype(data["normal"].dtype)
        return out


@TRANSFORMS.register_module()
class RandomJitter(Transform):
    """Add ``clip(sigma * N(0, 1), -clip, clip)`` to every coordinate."""

    def __init__(self, sigma: float = 0.01, clip: float = 0.05) -> None:
        if clip <= 0:
            raise ValueError(f"RandomJitter: clip must be > 0, got {clip}")
        self.sigma, self.clip = sigma, clip

    def __call__(self, data: dict, rng: np.random.Generator | None = None) -> dict:
        self.require(data, "coord")
        rng = self.need_rng(rng)
        coord = data["coord"]
        jitter = np.clip(self.sigma * rng.standard_normal(coord.shape), -self.clip, self.clip)
        return {**data, "coord": (coord + jitter).astype(coord.dtype)}
