"""Vectorised ray casting and shading of a scene description (numpy, CPU, no GL).

`raycast(scene, camera)` finds, per pixel, the nearest primitive and its z-depth (every
primitive is tested against every ray of its screen-space bounding rectangle at once);
`render_scene` shades the hits (procedural albedo, Lambertian light with cast shadows from
shadow rays, hemispheric ambient) and returns a `WorldSample`. Depth is z-depth along the
optical axis (see camera.py), 0 where invalid; sky and anything beyond `max_depth` is invalid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from depthdistill.world.camera import Camera, primary_rays, project
from depthdistill.world.primitives import Primitive
from depthdistill.world.textures import albedo

SHADOW_BIAS = 2e-3  # metres: shadow rays start this far off the surface along its normal
GAMMA_LUT = (np.linspace(0, 1, 4096) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8)  # linear -> display


@dataclass(frozen=True)
class Light:
    """One light: a `point` at `vector` (indoor lamp) or the `sun` shining from direction
    `vector` (pointing towards the sun); plus hemispheric ambient light."""

    kind: str  # point | sun
    vector: tuple[float, float, float]
    intensity: float = 1.0
    ambient: float = 0.3
    falloff: float = 0.0  # point light: intensity / (1 + falloff * distance^2)


@dataclass(frozen=True)
class Scene:
    kind: str  # indoor | outdoor
    primitives: tuple[Primitive, ...]
    light: Light
    max_depth: float = 60.0  # metres; farther hits are invalid (the uint16 mm PNG holds 65.5 m)
    sky_horizon: tuple[float, float, float] = (0.80, 0.85, 0.90)
    sky_zenith: tuple[float, float, float] = (0.25, 0.45, 0.80)
    params: dict = field(default_factory=dict, compare=False)  # generator parameters (provenance)


@dataclass(frozen=True)
class WorldSample:
    rgb: np.ndarray  # uint8 [H, W, 3]
    depth: np.ndarray  # float32 [H, W] z-depth in metres, 0 where invalid
    valid: np.ndarray  # bool [H, W]
    intrinsics: np.ndarray  # float32 [3, 3]
    scene: str  # indoor | outdoor
    thin: np.ndarray  # bool [H, W] valid pixels that belong to thin structures
    split: str = ""
    index: int = -1
    seed: int = 0


@dataclass(frozen=True)
class RayHits:
    depth: np.ndarray  # float32 [H, W] z-depth of the nearest hit, inf on a miss
    prim: np.ndarray  # int16 [H, W] index of the hit primitive, -1 on a miss
    dirs: np.ndarray  # float32 [H, W, 3] primary ray directions (camera-frame z = 1)


def screen_rect(prim: Primitive, camera: Camera) -> tuple[int, int, int, int] | None:
    """Pixel rectangle (y0, y1, x0, x1) that holds the primitive's image; None if it is
    certainly outside the view. Whole image for unbounded primitives or ones crossing z = 0."""
    full = (0, camera.height, 0, camera.width)
    bounds = prim.bounds()
    if bounds is None:
        return full
    lo, hi = bounds
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    uv, z = project(camera, corners)
    if np.all(z <= 0):
        return None
    if np.any(z < 1e-3):
        return full
    x0, y0 = np.floor(uv.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(uv.max(axis=0)).astype(int) + 2
    x0, x1 = max(x0, 0), min(x1, camera.width)
    y0, y1 = max(y0, 0), min(y1, camera.height)
    if x0 >= x1 or y0 >= y1:
        return None
    return int(y0), int(y1), int(x0), int(x1)


def raycast(scene: Scene, camera: Camera) -> RayHits:
    """Nearest hit per pixel over all primitives: z-depth [H, W] and primitive index [H, W]."""
    dirs = primary_rays(camera)  # [H, W, 3]
    origin = camera.position.astype(np.float32)  # [3]
    depth = np.full((camera.height, camera.width), np.inf, dtype=np.float32)
    prim_id = np.full((camera.height, camera.width), -1, dtype=np.int16)
    for k, prim in enumerate(scene.primitives):
        rect = screen_rect(prim, camera)
        if rect is None:
            continue
        y0, y1, x0, x1 = rect
        t = prim.intersect(origin, dirs[y0:y1, x0:x1])  # [h, w]
        closer = t < depth[y0:y1, x0:x1]
        np.copyto(depth[y0:y1, x0:x1], t, where=closer)
        np.copyto(prim_id[y0:y1, x0:x1], np.int16(k), where=closer)
    return RayHits(depth, prim_id, dirs)


def _surface(scene: Scene, camera: Camera, hits: RayHits, flat: np.ndarray):
    """Points, normals (facing the camera) and albedo at the hit pixels `flat` [M]."""
    depth = hits.depth.reshape(-1)[flat]  # [M]
    dirs = hits.dirs.reshape(-1, 3)[flat]  # [M, 3]
    points = camera.position.astype(np.float32) + depth[:, None] * dirs  # [M, 3]
    ids = hits.prim.reshape(-1)[flat]
    normals = np.empty_like(points)
    colors = np.empty_like(points)
    footprint = depth / np.float32(camera.intrinsics[0, 0])  # [M] metres per pixel (fronto-parallel)
    order = np.argsort(ids, kind="stable")
    starts = np.searchsorted(ids[order], np.arange(len(scene.primitives) + 1))
    for k, prim in enumerate(scene.primitives):
        sel = order[starts[k]:starts[k + 1]]
        if len(sel) == 0:
            continue
        normals[sel] = prim.normal_at(points[sel])
        colors[sel] = albedo(prim.material, prim.uv(points[sel]), footprint[sel])
    facing = np.einsum("mk,mk->m", normals, dirs) > 0
    normals[facing] *= -1
    return points, normals, colors


def _shadow_coords(light: Light, origins: np.ndarray, t_max: np.ndarray):
    """Sort key [M] and coordinates [M, 3] of shadow rays. Sun: (e1, e2, L) components of the
    origin, key e1 (constant along a ray); point light: the unit direction w from the light to
    the origin, key its azimuth about the vertical (also constant along a ray)."""
    vec = np.asarray(light.vector, dtype=np.float64)
    if light.kind == "sun":
        along = vec / np.linalg.norm(vec)
        helper = np.array([0.0, 0.0, 1.0]) if abs(along[1]) > 0.9 else np.array([0.0, 1.0, 0.0])
        e1 = np.cross(helper, along)  # horizontal: vertical poles project to thin key intervals
        e1 /= np.linalg.norm(e1)
        frame = np.stack([e1, np.cross(along, e1), along], axis=1).astype(np.float32)  # [3, 3]
        coords = origins @ frame
        return coords[:, 0], coords, frame
    w = (origins - vec.astype(np.float32)) / np.maximum(t_max, 1e-6)[:, None]  # [M, 3]
    return np.arctan2(w[:, 0], w[:, 2]), w, None


def _corners(prim) -> np.ndarray:
    lo, hi = prim.bounds()
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def _occluder(light: Light, prim, frame):
    """Conditions every shadow ray that meets `prim` satisfies: an interval of the sort key, a
    ball (centre, radius) in shadow coordinates and a limit along the ray; None = no bound."""
    center, radius = prim.bounding_sphere()
    corners = _corners(prim)  # [8, 3]
    if frame is not None:  # sun: shadow cylinder along L; the origin lies below the top corner
        key = corners @ frame[:, 0].astype(np.float64)
        return (key.min() - 1e-3, key.max() + 1e-3), center @ frame, radius, ("below", float(
            (corners @ frame[:, 2].astype(np.float64)).max()) + 1e-3)
    pos = np.asarray(light.vector, dtype=np.float64)
    rel = center - pos.astype(np.float32)
    dist = float(np.linalg.norm(rel))
    if dist <= radius:
        return None
    interval = (-np.inf, np.inf)
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    if not (lo[0] <= pos[0] <= hi[0] and lo[2] <= pos[2] <= hi[2]):  # light outside the footprint:
        mid = math.atan2(rel[0], rel[2])  # the azimuth span is the corners' span
        spread = (np.arctan2(corners[:, 0] - pos[0], corners[:, 2] - pos[2]) - mid + math.pi) % (2 * math.pi) - math.pi
        if -math.pi < mid + spread.min() - 1e-4 and mid + spread.max() + 1e-4 < math.pi:
            interval = (mid + spread.min() - 1e-4, mid + spread.max() + 1e-4)
    chord = 2 * math.sin(math.asin(radius / dist) / 2) + 1e-4  # cone half-angle -> chord on the unit sphere
    return interval, rel / dist, chord, ("beyond", dist - radius)


def _shadowed(scene: Scene, origins: np.ndarray, to_light: np.ndarray, t_max: np.ndarray) -> np.ndarray:
    """Shadow rays [M]: True where a primitive lies between a point and the light. Rays are
    sorted by a key that is constant along each ray, so each primitive only looks at the slice
    of rays whose key falls in its interval, culls by its bounding ball, then intersects exactly."""
    light = scene.light
    blocked = np.zeros(len(origins), dtype=bool)
    key, coords, frame = _shadow_coords(light, origins, t_max)  # [M], [M, 3]
    order = np.argsort(key, kind="stable")
    keys = key[order]
    for prim in scene.primitives:
        if not prim.casts_shadow:
            continue
        bound = _occluder(light, prim, frame)
        if bound is None:
            idx = np.flatnonzero(~blocked)
        else:
            (k0, k1), c, rad, (test, limit) = bound
            lo, hi = np.searchsorted(keys, [k0, k1])
            idx = order[lo:hi]
            sub = coords[idx]  # [S, 3]
            if test == "below":
                keep = ((sub[:, 0] - c[0]) ** 2 + (sub[:, 1] - c[1]) ** 2 < rad * rad) & (sub[:, 2] < limit)
            else:
                keep = (((sub - c) ** 2).sum(axis=1) < rad * rad) & (t_max[idx] > limit)
            idx = idx[keep & ~blocked[idx]]
        if len(idx) == 0:
            continue
        t = prim.intersect(origins[idx], to_light[idx])  # [C]
        blocked[idx[t < t_max[idx]]] = True
    return blocked


def _lighting(scene: Scene, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Irradiance factor [M]: ambient (hemispheric) + Lambert * visibility * falloff."""
    light = scene.light
    vec = np.asarray(light.vector, dtype=np.float32)
    if light.kind == "point":
        to_light = vec - points  # [M, 3]
        dist = np.linalg.norm(to_light, axis=1)  # [M]
        to_light /= np.maximum(dist, 1e-6)[:, None]
        strength = np.float32(light.intensity) / (1 + np.float32(light.falloff) * dist * dist)
        t_max = dist
    elif light.kind == "sun":
        to_light = np.broadcast_to(vec / np.linalg.norm(vec), points.shape)
        strength = np.full(len(points), light.intensity, dtype=np.float32)
        t_max = np.full(len(points), np.inf, dtype=np.float32)
    else:
        raise ValueError(f"light kind {light.kind!r} is unknown; use 'point' or 'sun'")
    lambert = np.einsum("mk,mk->m", normals, to_light)  # [M]
    lit = np.flatnonzero(lambert > 0)
    visible = np.zeros(len(points), dtype=np.float32)
    origins = points[lit] + np.float32(SHADOW_BIAS) * normals[lit]
    visible[lit] = ~_shadowed(scene, origins, np.ascontiguousarray(to_light[lit]), t_max[lit])
    ambient = np.float32(light.ambient) * (np.float32(0.75) + np.float32(0.25) * normals[:, 1])
    return ambient + strength * np.maximum(lambert, 0) * visible


def _sky(scene: Scene, dirs: np.ndarray) -> np.ndarray:
    """Sky colour [M, 3] by elevation of the ray direction [M, 3]."""
    elevation = dirs[:, 1] / np.linalg.norm(dirs, axis=1)
    mix = np.clip(elevation * 2.5, 0, 1)[:, None] ** np.float32(0.7)
    horizon = np.asarray(scene.sky_horizon, dtype=np.float32)
    return horizon + (np.asarray(scene.sky_zenith, dtype=np.float32) - horizon) * mix


def render_scene(scene: Scene, camera: Camera) -> WorldSample:
    """Ray-cast and shade one view of `scene`: RGB, exact z-depth, valid and thin masks."""
    hits = raycast(scene, camera)
    flat_depth = hits.depth.reshape(-1)
    hit = np.isfinite(flat_depth)
    flat = np.flatnonzero(hit)
    linear = np.zeros((flat_depth.size, 3), dtype=np.float32)  # [H*W, 3]
    points, normals, colors = _surface(scene, camera, hits, flat)
    linear[flat] = colors * _lighting(scene, points, normals)[:, None]
    miss = np.flatnonzero(~hit)
    if scene.kind == "outdoor" and len(miss):
        linear[miss] = _sky(scene, hits.dirs.reshape(-1, 3)[miss])
    rgb = GAMMA_LUT[(np.clip(linear, 0, 1) * (GAMMA_LUT.size - 1) + 0.5).astype(np.int32)]  # [H*W, 3] sRGB-ish
    valid = np.isfinite(hits.depth) & (hits.depth <= scene.max_depth)  # [H, W]
    thin_ids = np.array([k for k, p in enumerate(scene.primitives) if p.thin], dtype=np.int16)
    thin = valid & np.isin(hits.prim, thin_ids)
    return WorldSample(rgb=rgb.reshape(camera.height, camera.width, 3),
                       depth=np.where(valid, hits.depth, 0).astype(np.float32), valid=valid,
                       intrinsics=camera.intrinsics.astype(np.float32), scene=scene.kind, thin=thin)

