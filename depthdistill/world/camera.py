"""Pinhole camera of the synthetic world: pose (position, yaw, pitch), intrinsics, primary rays.

Conventions (used by every module of `depthdistill.world`):
- World frame: y is up; the floor / ground is the plane y = 0; lengths are metres.
- Camera frame (OpenCV): x right, y down, z forward along the optical axis.
- Pixel centres sit at integer coordinates: pixel (row i, column j) is (u, v) = (j, i), the
  principal point is the image centre ((W - 1) / 2, (H - 1) / 2), square pixels.
- A primary ray direction is R @ K^-1 [u, v, 1]: its camera-frame z component is exactly 1,
  so the ray parameter t of a hit *is* the z-depth (distance along the optical axis), not the
  Euclidean ray length. Every depth map of the world is z-depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WORLD_UP = np.array([0.0, 1.0, 0.0])


@dataclass(frozen=True)
class Camera:
    """A pinhole camera. `rotation` maps camera-frame vectors to world frame (columns are the
    camera's right, down and forward axes in world coordinates)."""

    height: int
    width: int
    intrinsics: np.ndarray  # float64 [3, 3]
    rotation: np.ndarray  # float64 [3, 3] world-from-camera
    position: np.ndarray  # float64 [3] optical centre in world coordinates

    @property
    def forward(self) -> np.ndarray:
        return self.rotation[:, 2]

    def to_dict(self) -> dict:
        return {"height": self.height, "width": self.width,
                "intrinsics": self.intrinsics.tolist(), "rotation": self.rotation.tolist(),
                "position": self.position.tolist()}


def intrinsics_for(height: int, width: int, hfov_deg: float) -> np.ndarray:
    """K for a horizontal field of view; principal point at the image centre."""
    if not 1.0 < hfov_deg < 179.0:
        raise ValueError(f"hfov_deg={hfov_deg}: the horizontal field of view must lie in (1, 179) degrees")
    focal = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([[focal, 0.0, (width - 1) / 2.0],
                     [0.0, focal, (height - 1) / 2.0],
                     [0.0, 0.0, 1.0]])


def look_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """World-from-camera rotation for a camera turned `yaw` about world up (0 looks along +z,
    90 along +x) and tilted `pitch` (positive looks up). No roll."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
    right = np.cross(forward, WORLD_UP)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)  # columns: camera x, y, z in world


def make_camera(height: int, width: int, *, hfov_deg: float, position, yaw_deg: float,
                pitch_deg: float) -> Camera:
    if not -89.0 < pitch_deg < 89.0:
        raise ValueError(f"pitch_deg={pitch_deg}: must lie in (-89, 89) degrees")
    return Camera(int(height), int(width), intrinsics_for(height, width, hfov_deg),
                  look_rotation(yaw_deg, pitch_deg), np.asarray(position, dtype=np.float64).reshape(3))


def camera_directions(camera: Camera) -> np.ndarray:
    """K^-1 [u, v, 1] per pixel in the camera frame: float64 [H, W, 3], z component 1."""
    k = camera.intrinsics
    u = (np.arange(camera.width) - k[0, 2]) / k[0, 0]  # [W]
    v = (np.arange(camera.height) - k[1, 2]) / k[1, 1]  # [H]
    dirs = np.empty((camera.height, camera.width, 3))
    dirs[..., 0] = u[None, :]
    dirs[..., 1] = v[:, None]
    dirs[..., 2] = 1.0
    return dirs


def primary_rays(camera: Camera) -> np.ndarray:
    """World-frame ray directions float32 [H, W, 3] with unit optical-axis component (t = z)."""
    return (camera_directions(camera) @ camera.rotation.T).astype(np.float32)


def project(camera: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points [N, 3] -> pixel coordinates [N, 2] (u, v) and z-depth [N]."""
    cam = (np.asarray(points, dtype=np.float64) - camera.position) @ camera.rotation  # [N, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam[:, :2] / z[:, None]) * np.diag(camera.intrinsics)[:2] + camera.intrinsics[:2, 2]
    return uv, z
