"""Analytic primitives (yaw-oriented boxes, vertical cylinders, ellipsoids) and vectorised ray hits.

Each ``hit`` takes a ray origin ``o`` (3,) and unit directions ``d`` (M, 3) and returns the distance
to the first entering hit (``inf`` for a miss), the SimClass hit per ray and the cosine of incidence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Box", "Cylinder", "Ellipsoid", "Primitive"]

_EPS = 1e-9


@dataclass
class Box:
    """A box of ``size`` (length, width, height) centred at ``center``, turned by ``yaw`` about z;
    its top/bottom faces are class ``top``, its sides class ``side``; ``porosity`` is the chance a ray
    passes through (a car's windows)."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw: float
    top: int
    side: int
    instance: int = 0
    moving: bool = False
    porosity: float = 0.0

    def bounds(self) -> tuple[np.ndarray, float]:
        return np.asarray(self.center, float), 0.5 * float(np.linalg.norm(self.size))

    def hit(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # world -> box
        p = rot @ (o - np.asarray(self.center, float))              # (3,)
        q = d @ rot.T                                                 # (M, 3)
        half = 0.5 * np.asarray(self.size, float)
        q = np.where(np.abs(q) < _EPS, _EPS, q)
        t1 = (-half - p) / q
        t2 = (half - p) / q
        near = np.minimum(t1, t2)                                     # (M, 3)
        t_in = near.max(1)
        t_out = np.maximum(t1, t2).min(1)
        ok = (t_in <= t_out) & (t_in > 0)
        axis = near.argmax(1)
        t = np.where(ok, t_in, np.inf)
        cls = np.where(axis == 2, self.top, self.side)
        cos = np.abs(q[np.arange(len(q)), axis])
        return t, cls, cos


@dataclass
class Cylinder:
    """A vertical cylinder (pole, trunk, cone) of ``radius`` from ``z0`` to ``z1`` at ``xy``."""

    xy: tuple[float, float]
    radius: float
    z0: float
    z1: float
    cls: int
    instance: int = 0
    moving: bool = False

    def bounds(self) -> tuple[np.ndarray, float]:
        half = 0.5 * (self.z1 - self.z0)
        return (np.array([self.xy[0], self.xy[1], self.z0 + half]),
                float(np.hypot(half, self.radius)))

    def hit(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        px, py = o[0] - self.xy[0], o[1] - self.xy[1]
        a = np.maximum(d[:, 0] ** 2 + d[:, 1] ** 2, _EPS)
        b = 2 * (px * d[:, 0] + py * d[:, 1])
        cc = px ** 2 + py ** 2 - self.radius ** 2
        disc = b ** 2 - 4 * a * cc
        root = np.sqrt(np.maximum(disc, 0))
        t_side = (-b - root) / (2 * a)
        z = o[2] + t_side * d[:, 2]
        side_ok = (disc > 0) & (t_side > 0) & (z >= self.z0) & (z <= self.z1)
        dz = np.where(np.abs(d[:, 2]) < _EPS, _EPS, d[:, 2])
        t_top = (self.z1 - o[2]) / dz
        tx, ty = px + t_top * d[:, 0], py + t_top * d[:, 1]
        top_ok = (t_top > 0) & (tx ** 2 + ty ** 2 <= self.radius ** 2) & (o[2] > self.z1)
        t = np.where(side_ok, t_side, np.where(top_ok, t_top, np.inf))
        nx, ny = px + t_side * d[:, 0], py + t_side * d[:, 1]
        cos_side = np.abs(nx * d[:, 0] + ny * d[:, 1]) / self.radius
        cos = np.where(side_ok, cos_side, np.abs(d[:, 2]))
        return t, np.full(len(d), self.cls), np.clip(cos, 0, 1)


@dataclass
class Ellipsoid:
    """An axis-aligned ellipsoid; ``porosity`` is the chance a ray passes through (foliage)."""

    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    cls: int
    instance: int = 0
    moving: bool = False
    porosity: float = 0.0

    def bounds(self) -> tuple[np.ndarray, float]:
        return np.asarray(self.center, float), float(max(self.radii))

    def hit(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = np.asarray(self.radii, float)
        p = (o - np.asarray(self.center, float)) / r
        q = d / r
        a = np.sum(q * q, 1)
        b = 2 * q @ p
        cc = p @ p - 1
        disc = b ** 2 - 4 * a * cc
        t = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
        ok = (disc > 0) & (t > 0)
        normal = (p + t[:, None] * q) / r
        normal /= np.linalg.norm(normal, axis=1, keepdims=True) + _EPS
        cos = np.abs(np.sum(normal * d, 1))
        return np.where(ok, t, np.inf), np.full(len(d), self.cls), cos


Primitive = Box | Cylinder | Ellipsoid
