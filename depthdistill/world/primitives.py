"""Scene primitives of the synthetic world and their vectorised ray intersections.

Every primitive answers, for arrays of rays, the nearest hit parameter `t` (inf on a miss):
`intersect(origins [..., 3] or [3], dirs [..., 3]) -> t [...]` with hits closer than `T_MIN`
ignored, plus `normal(points [M, 3]) -> [M, 3]` (unit, outward) and `uv(points) -> [M, 2]`
(surface coordinates in metres, for textures). Directions need not be unit length: the
returned t is in units of the direction, so primary rays with camera-frame z = 1 get z-depth.
Boxes turn about the vertical axis (`yaw_deg`); cylinders stand vertically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

T_MIN = 1e-4  # hits closer than this (in ray units) are ignored: no self-intersection


@dataclass(frozen=True)
class Material:
    """A procedural surface: `pattern` mixes colour_a and colour_b over the surface (uv in
    metres, period `scale`, direction `angle_deg`); `grain` multiplies in fine value noise."""

    pattern: str = "solid"  # solid | checker | stripes | noise | gradient
    color_a: tuple[float, float, float] = (0.6, 0.6, 0.6)  # linear RGB albedo in [0, 1]
    color_b: tuple[float, float, float] = (0.3, 0.3, 0.3)
    scale: float = 0.5
    angle_deg: float = 0.0
    grain: float = 0.1
    seed: int = 0


def _safe(x: np.ndarray) -> np.ndarray:
    """Replace exact zeros so that divisions stay finite (slab and plane tests)."""
    return np.where(np.abs(x) < 1e-12, np.float32(1e-12), x)


def _tangents(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.array([0.0, 0.0, 1.0]) if abs(normal[1]) > 0.9 else np.array([0.0, 1.0, 0.0])
    t1 = np.cross(helper, normal)
    t1 /= np.linalg.norm(t1)
    return t1, np.cross(normal, t1)


@dataclass(frozen=True)
class Plane:
    """The infinite plane {x : normal . x = offset}."""

    normal: tuple[float, float, float]
    offset: float
    material: Material = field(default_factory=Material)
    thin: bool = False
    casts_shadow = False  # a plane bounds the scene; it never sits between a point and the light

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        n = np.asarray(self.normal, dtype=np.float32)
        t = (np.float32(self.offset) - origins @ n) / _safe(dirs @ n)  # [...]
        return np.where(t > T_MIN, t, np.float32(np.inf))

    def normal_at(self, points: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.normal, dtype=np.float32), points.shape).copy()

    def uv(self, points: np.ndarray) -> np.ndarray:
        t1, t2 = _tangents(np.asarray(self.normal, dtype=np.float64))
        return np.stack([points @ t1.astype(np.float32), points @ t2.astype(np.float32)], axis=-1)

    def bounds(self):
        return None  # unbounded: tested against every pixel


@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float
    material: Material = field(default_factory=Material)
    thin: bool = False
    casts_shadow = True

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        oc = origins - np.asarray(self.center, dtype=np.float32)  # [..., 3]
        a = np.einsum("...k,...k->...", dirs, dirs)
        b = np.einsum("...k,...k->...", dirs, oc) if oc.ndim > 1 else dirs @ oc
        c = (np.einsum("...k,...k->...", oc, oc) if oc.ndim > 1 else oc @ oc) - np.float32(self.radius) ** 2
        disc = b * b - a * c
        root = np.sqrt(np.maximum(disc, 0))
        near, far = (-b - root) / a, (-b + root) / a
        t = np.where(near > T_MIN, near, far)
        return np.where((disc >= 0) & (t > T_MIN), t, np.float32(np.inf))

    def normal_at(self, points: np.ndarray) -> np.ndarray:
        return (points - np.asarray(self.center, dtype=np.float32)) / np.float32(self.radius)

    def uv(self, points: np.ndarray) -> np.ndarray:
        rel = points - np.asarray(self.center, dtype=np.float32)
        return np.stack([np.arctan2(rel[:, 2], rel[:, 0]) * np.float32(self.radius), rel[:, 1]], axis=-1)

    def bounds(self):
        c, r = np.asarray(self.center), self.radius
        return c - r, c + r

    def bounding_sphere(self):
        return np.asarray(self.center, dtype=np.float32), float(self.radius)


@dataclass(frozen=True)
class Box:
    """An oriented box: centre, half extents (x, y, z before turning), turned `yaw_deg` about y."""

    center: tuple[float, float, float]
    half: tuple[float, float, float]
    yaw_deg: float = 0.0
    material: Material = field(default_factory=Material)
    thin: bool = False
    casts_shadow = True

    def _axes(self) -> np.ndarray:
        """Local-to-world rotation [3, 3] (columns are the box axes in world coordinates)."""
        c, s = math.cos(math.radians(self.yaw_deg)), math.sin(math.radians(self.yaw_deg))
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=np.float32)

    def _local(self, points: np.ndarray) -> np.ndarray:
        return (points - np.asarray(self.center, dtype=np.float32)) @ self._axes()

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        axes = self._axes()
        o = (origins - np.asarray(self.center, dtype=np.float32)) @ axes  # [..., 3] or [3]
        d = dirs @ axes  # [..., 3]
        near = far = None
        for k in range(3):  # slab test, one axis at a time (reductions over a size-3 axis are slow)
            inv = 1.0 / _safe(d[..., k])
            t1 = (np.float32(-self.half[k]) - o[..., k]) * inv
            t2 = (np.float32(self.half[k]) - o[..., k]) * inv
            lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
            near = lo if near is None else np.maximum(near, lo)
            far = hi if far is None else np.minimum(far, hi)
        t = np.where(near > T_MIN, near, far)
        return np.where((near <= far) & (t > T_MIN), t, np.float32(np.inf))

    def _face(self, local: np.ndarray) -> np.ndarray:
        """Index of the face a surface point lies on: the axis with the smallest gap."""
        return np.argmin(np.asarray(self.half, dtype=np.float32) - np.abs(local), axis=-1)  # [M]

    def normal_at(self, points: np.ndarray) -> np.ndarray:
        local = self._local(points)
        axis = self._face(local)
        n_local = np.zeros_like(local)
        rows = np.arange(len(local))
        n_local[rows, axis] = np.sign(local[rows, axis])
        return n_local @ self._axes().T

    def uv(self, points: np.ndarray) -> np.ndarray:
        local = self._local(points)
        axis = self._face(local)[:, None]  # [M, 1]
        u = np.where(axis == 0, local[:, 2:3], local[:, 0:1])
        v = np.where(axis == 1, local[:, 2:3], local[:, 1:2])
        return np.concatenate([u, v], axis=-1)

    def corners(self) -> np.ndarray:
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        return (signs * np.asarray(self.half)) @ self._axes().T.astype(np.float64) + np.asarray(self.center)

    def bounds(self):
        corners = self.corners()
        return corners.min(axis=0), corners.max(axis=0)

    def bounding_sphere(self):
        return np.asarray(self.center, dtype=np.float32), float(np.linalg.norm(self.half))


@dataclass(frozen=True)
class Cylinder:
    """A closed vertical cylinder: base centre (x, y, z), radius, height (extends up from y)."""

    base: tuple[float, float, float]
    radius: float
    height: float
    material: Material = field(default_factory=Material)
    thin: bool = False
    casts_shadow = True

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        bx, by, bz = (np.float32(v) for v in self.base)
        r, h = np.float32(self.radius), np.float32(self.height)
        ox, oy, oz = origins[..., 0] - bx, origins[..., 1] - by, origins[..., 2] - bz
        dx, dy, dz = dirs[..., 0], dirs[..., 1], dirs[..., 2]
        a = _safe(dx * dx + dz * dz)
        b = ox * dx + oz * dz
        disc = b * b - a * (ox * ox + oz * oz - r * r)
        root = np.sqrt(np.maximum(disc, 0))
        best = np.full(np.broadcast_shapes(np.shape(ox), np.shape(dx)), np.inf, dtype=np.float32)
        for t in ((-b - root) / a, (-b + root) / a):  # side wall, near and far root
            y = oy + t * dy
            ok = (disc >= 0) & (t > T_MIN) & (y >= 0) & (y <= h)
            best = np.where(ok & (t < best), t, best)
        inv_dy = 1.0 / _safe(dy)
        for cap in (np.float32(0.0), h):  # bottom and top discs
            t = (cap - oy) * inv_dy
            x, z = ox + t * dx, oz + t * dz
            ok = (t > T_MIN) & (x * x + z * z <= r * r)
            best = np.where(ok & (t < best), t, best)
        return best

    def _split(self, points: np.ndarray):
        rel = points - np.asarray(self.base, dtype=np.float32)
        radial = np.sqrt(rel[:, 0] ** 2 + rel[:, 2] ** 2)
        half = np.float32(self.height / 2)
        cap_gap = half - np.abs(rel[:, 1] - half)
        on_cap = cap_gap < (np.float32(self.radius) - radial)
        return rel, radial, on_cap

    def normal_at(self, points: np.ndarray) -> np.ndarray:
        rel, radial, on_cap = self._split(points)
        side = np.stack([rel[:, 0], np.zeros_like(radial), rel[:, 2]], axis=-1) / np.maximum(radial, 1e-9)[:, None]
        up = np.where(rel[:, 1:2] > self.height / 2, np.float32(1), np.float32(-1))
        cap = np.concatenate([np.zeros_like(up), up, np.zeros_like(up)], axis=-1)
        return np.where(on_cap[:, None], cap, side)

    def uv(self, points: np.ndarray) -> np.ndarray:
        rel, _, on_cap = self._split(points)
        around = np.arctan2(rel[:, 2], rel[:, 0]) * np.float32(self.radius)
        u = np.where(on_cap, rel[:, 0], around)
        v = np.where(on_cap, rel[:, 2], rel[:, 1])
        return np.stack([u, v], axis=-1)

    def bounds(self):
        b, r = np.asarray(self.base), self.radius
        return b - np.array([r, 0.0, r]), b + np.array([r, self.height, r])

    def bounding_sphere(self):
        b = np.asarray(self.base, dtype=np.float32)
        return b + np.float32([0, self.height / 2, 0]), float(math.hypot(self.radius, self.height / 2))


Primitive = Plane | Sphere | Box | Cylinder
