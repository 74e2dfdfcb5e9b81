"""View planning: the global view (crop -> view_size) and its k x k grid of native patches.

METHOD.md "Views" (paper §4.1). For an image (H, W), a view index and a seed:

- **Crop**: a square of side ``s ~ U{crop_min, ..., min(H, W)}`` (integers, both ends
  included; the whole short side when ``min(H, W) < crop_min``), placed uniformly
  (``x0 ~ U{0..W-s}``, ``y0 ~ U{0..H-s}``) and resized to ``view_size`` x ``view_size``.
- **Patches**: a k x k grid of native-resolution squares of side ``patch_side`` covering the
  whole crop. k is the smallest value <= ``max_grid`` whose evenly spaced grid overlaps
  neighbours by >= ``min_overlap * patch_side``; if ``max_grid`` cannot, ``patch_side`` grows
  to the smallest integer that can and the teacher sees it downscaled to
  ``patch_input_size`` (= ``patch_size``). ``k = 1`` when ``s <= patch_size``: the single patch
  is the crop itself (resized to ``patch_input_size``).
- Positions are integers: offset ``i`` of the grid is ``round_half_up(i * (s - p) / (k - 1))``
  relative to the crop, so the first patch starts at the crop's top-left and the last ends
  exactly at its bottom-right. Patches are listed row-major (y outer, x inner) and stored in
  **image** coordinates.
- **Footprint** of a patch: its box relative to the crop times ``view_size / s``, as floats
  ``(x0, y0, x1, y1)`` in view pixels (continuous coordinates: pixel ``j`` spans ``[j, j+1)``).
- Determinism: the RNG is seeded from ``sha256(image_id, view_index, seed)``, so a plan is the
  same in every process and on every machine (Python's ``hash()`` is never used).

``resize`` is THE resize routine of the project (antialiased bilinear, ``align_corners=False``);
``crop_footprint`` cuts a footprint out of a view-resolution map (bilinear ``grid_sample``).
torch is imported inside the functions that need it: planning is numpy-only.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

_PLAN_KEYS = ("image_id", "view_index", "image_hw", "crop", "view_size", "grid",
              "patch_side", "patch_input_size", "patches", "footprints")


class ImageTooSmallError(ValueError):
    """The image's short side is below ``view_size``: a view would have to upsample it."""


class SquareBox(NamedTuple):
    """A square in native image pixels: columns ``[x0, x0+side)``, rows ``[y0, y0+side)``."""

    x0: int
    y0: int
    side: int

    @property
    def x1(self) -> int:
        return self.x0 + self.side

    @property
    def y1(self) -> int:
        return self.y0 + self.side


PatchBox = SquareBox
Footprint = tuple[float, float, float, float]  # (x0, y0, x1, y1) in view pixels


@dataclass(frozen=True)
class ViewPlan:
    """Everything needed to cut one view and its patches from an image, and to relate them.

    ``crop`` and ``patches`` are in native image pixels; ``footprints[n]`` is ``patches[n]``
    in view pixels. ``patch_side`` is the native patch side, ``patch_input_size`` the side
    the teacher sees (they differ only in the grow case or when the crop is smaller than a
    patch).
    """

    image_id: str
    view_index: int
    image_hw: tuple[int, int]
    crop: SquareBox
    view_size: int
    grid: int
    patch_side: int
    patch_input_size: int
    patches: tuple[SquareBox, ...]
    footprints: tuple[Footprint, ...]

    @property
    def scale(self) -> float:
        """View pixels per native pixel (``view_size / crop.side``, <= 1)."""
        return self.view_size / self.crop.side

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: boxes as ``[x0, y0, side]``, footprints as ``[x0, y0, x1, y1]``."""
        return {
            "image_id": self.image_id,
            "view_index": self.view_index,
            "image_hw": list(self.image_hw),
            "crop": list(self.crop),
            "view_size": self.view_size,
            "grid": self.grid,
            "patch_side": self.patch_side,
            "patch_input_size": self.patch_input_size,
            "patches": [list(p) for p in self.patches],
            "footprints": [list(f) for f in self.footprints],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ViewPlan:
        """Inverse of ``to_dict`` (e.g. a ``plan.jsonl`` line or a shard's ``meta.json``)."""
        missing = [k for k in _PLAN_KEYS if k not in d]
        if missing:
            raise ValueError(f"view plan dict lacks keys {missing}; it must come from "
                             "ViewPlan.to_dict() (re-run the planning stage)")
        return cls(
            image_id=str(d["image_id"]),
            view_index=int(d["view_index"]),
            image_hw=(int(d["image_hw"][0]), int(d["image_hw"][1])),
            crop=SquareBox(*(int(v) for v in d["crop"])),
            view_size=int(d["view_size"]),
            grid=int(d["grid"]),
            patch_side=int(d["patch_side"]),
            patch_input_size=int(d["patch_input_size"]),
            patches=tuple(SquareBox(*(int(v) for v in p)) for p in d["patches"]),
            footprints=tuple(tuple(float(v) for v in f) for f in d["footprints"]),  # type: ignore[misc]
        )


# ----------------------------------------------------------------------------- planning


def view_rng(image_id: str, view_index: int, seed: int) -> np.random.Generator:
    """A numpy Generator that depends only on (image id, view index, seed)."""
    key = f"depthdistill.views\x1f{image_id}\x1f{int(view_index)}\x1f{int(seed)}".encode()
    digest = hashlib.sha256(key).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def grid_offsets(span: int, k: int) -> tuple[int, ...]:
    """Integer offsets ``round_half_up(i * span / (k - 1))``, i = 0..k-1 (first 0, last span)."""
    if k == 1:
        return (0,)
    return tuple((2 * i * span + (k - 1)) // (2 * (k - 1)) for i in range(k))


def _grid_overlaps(crop_side: int, patch_side: int, k: int, min_overlap: float) -> bool:
    """Does the k-grid of ``patch_side`` squares cover the crop with the required overlap?"""
    if patch_side >= crop_side:
        return True
    if k == 1:
        return False
    offsets = grid_offsets(crop_side - patch_side, k)
    max_gap = max(b - a for a, b in zip(offsets, offsets[1:]))
    return patch_side - max_gap >= min_overlap * patch_side - 1e-9


@functools.lru_cache(maxsize=65536)
def choose_grid(crop_side: int, patch_size: int, max_grid: int, min_overlap: float) -> tuple[int, int]:
    """``(k, patch_side)`` for a crop: smallest k <= max_grid, else the smallest grown side.

    ``k = 1, patch_side = crop_side`` when the crop fits in one patch (or when growing would
    reach the crop's side anyway).
    """
    if crop_side <= patch_size:
        return 1, crop_side
    for k in range(2, max_grid + 1):
        if _grid_overlaps(crop_side, patch_size, k, min_overlap):
            return k, patch_size
    k = max_grid
    if k == 1:
        return 1, crop_side
    # Necessary condition (average gap <= (1 - m) p): p >= s / (1 + (k-1)(1-m)); every
    # smaller side fails, so scanning up from just below it finds the smallest side.
    side = max(patch_size + 1, math.floor(crop_side / (1 + (k - 1) * (1 - min_overlap))))
    while side < crop_side and not _grid_overlaps(crop_side, side, k, min_overlap):
        side += 1
    if side >= crop_side:
        return 1, crop_side
    return k, side


def _check_params(view_size: int, crop_min: int, patch_size: int, max_grid: int, min_overlap: float) -> None:
    checks = [
        (view_size >= 1, "views.view_size", view_size, "use a positive integer"),
        (crop_min >= view_size, "views.crop_min", crop_min, f"use >= views.view_size ({view_size})"),
        (patch_size >= 1, "views.patch_size", patch_size, "use a positive integer"),
        (max_grid >= 1, "views.max_grid", max_grid, "use 1 or more"),
        (0.0 <= min_overlap < 1.0, "views.min_overlap", min_overlap, "use a fraction in [0, 1)"),
    ]
    for ok, key, value, fix in checks:
        if not ok:
            raise ValueError(f"{key}: got {value!r}; {fix}")


def plan_view(image_id: str, image_hw: tuple[int, int], view_index: int, seed: int, *,
              view_size: int = 112, crop_min: int = 129, patch_size: int = 112,
              max_grid: int = 3, min_overlap: float = 0.25) -> ViewPlan:
    """Plan view ``view_index`` of image ``image_id`` (size ``image_hw`` = (H, W)).

    Raises ``ImageTooSmallError`` when ``min(H, W) < view_size``.
    """
    _check_params(view_size, crop_min, patch_size, max_grid, min_overlap)
    height, width = int(image_hw[0]), int(image_hw[1])
    short = min(height, width)
    if short < view_size:
        raise ImageTooSmallError(
            f"image {image_id!r} is {height}x{width} (HxW); its short side {short} is below "
            f"views.view_size={view_size}: drop the image or lower views.view_size")
    rng = view_rng(str(image_id), view_index, seed)
    side = short if short < crop_min else int(rng.integers(crop_min, short + 1))
    cx0 = int(rng.integers(0, width - side + 1))
    cy0 = int(rng.integers(0, height - side + 1))
    k, p = choose_grid(side, patch_size, max_grid, float(min_overlap))
    offsets = grid_offsets(side - p, k)
    r = view_size / side
    patches = tuple(SquareBox(cx0 + ox, cy0 + oy, p) for oy in offsets for ox in offsets)
    footprints = tuple((ox * r, oy * r, (ox + p) * r, (oy + p) * r) for oy in offsets for ox in offsets)
    return ViewPlan(image_id=str(image_id), view_index=int(view_index), image_hw=(height, width),
                    crop=SquareBox(cx0, cy0, side), view_size=view_size, grid=k, patch_side=p,
                    patch_input_size=patch_size, patches=patches, footprints=footprints)


# ----------------------------------------------------------------------------- pixels


def resize(x: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray | torch.Tensor:
    """THE resize of the project: antialiased bilinear, ``align_corners=False``.

    - numpy ``uint8 [H, W, C]`` or ``[H, W]`` image -> numpy uint8 ``[h, w(, C)]`` (rounded);
    - torch floating tensor ``[..., H, W]`` -> same dtype and device ``[..., h, w]``
      (differentiable). The same size returns a copy.
    """
    import torch
    import torch.nn.functional as F

    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"resize: target size must be positive, got {size!r}")
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8 or x.ndim not in (2, 3):
            raise ValueError(f"resize: numpy input must be a uint8 [H, W(, C)] image, got "
                             f"{x.dtype} {x.shape}; pass float maps as torch tensors")
        if x.shape[:2] == (h, w):
            return x.copy()
        t = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32)
        t = t.permute(2, 0, 1) if x.ndim == 3 else t[None]  # [C, H, W]
        out = F.interpolate(t[None], size=(h, w), mode="bilinear", align_corners=False,
                            antialias=True)[0]  # [C, h, w]
        out = out.round_().clamp_(0, 255).to(torch.uint8)
        return (out.permute(1, 2, 0) if x.ndim == 3 else out[0]).numpy()
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
        raise ValueError(f"resize: expected a numpy uint8 image or a floating torch tensor "
                         f"[..., H, W], got {type(x).__name__} {getattr(x, 'shape', '')}")
    *lead, src_h, src_w = x.shape
    if (src_h, src_w) == (h, w):
        return x.clone()
    work = x.reshape(-1, 1, src_h, src_w)  # [N, 1, H, W]
    compute = work if work.dtype in (torch.float32, torch.float64) else work.float()
    out = F.interpolate(compute, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return out.to(x.dtype).reshape(*lead, h, w)  # [..., h, w]


def cut_view(image: np.ndarray, plan: ViewPlan) -> tuple[np.ndarray, np.ndarray]:
    """Cut the view and the patches of ``plan`` from an RGB image.

    image uint8 [H, W, 3] -> (view uint8 [V, V, 3], patches uint8 [k*k, P, P, 3]) with
    V = ``plan.view_size`` and P = ``plan.patch_input_size``.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"cut_view: expected a uint8 [H, W, 3] image, got "
                         f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}")
    if tuple(image.shape[:2]) != tuple(plan.image_hw):
        raise ValueError(f"cut_view: image {plan.image_id!r} is {image.shape[0]}x{image.shape[1]} "
                         f"but its plan was made for {plan.image_hw[0]}x{plan.image_hw[1]}; "
                         "re-plan (the image changed since planning)")
    c = plan.crop
    view = resize(image[c.y0:c.y1, c.x0:c.x1], (plan.view_size, plan.view_size))  # [V, V, 3]
    size = plan.patch_input_size
    patches = np.stack([resize(image[p.y0:p.y1, p.x0:p.x1], (size, size))
                        for p in plan.patches])  # [k*k, P, P, 3]
    return view, patches


def footprint_hw(footprint: Sequence[float]) -> tuple[int, int]:
    """Integer (h, w) of a footprint (rounded, at least 1): the size to compare a patch at."""
    x0, y0, x1, y1 = (float(v) for v in footprint)
    return max(1, round(y1 - y0)), max(1, round(x1 - x0))


def crop_footprint(view_map: torch.Tensor, footprint: Sequence[float] | torch.Tensor,
                   out_hw: tuple[int, int]) -> torch.Tensor:
    """Resample a footprint region of a view-resolution map to ``out_hw`` (differentiable).

    ``view_map [..., Hv, Wv]`` float; ``footprint`` either one ``(x0, y0, x1, y1)`` in view
    pixels (applied to every leading slice) -> ``[..., h, w]``, or a tensor ``[N, 4]`` with one
    footprint per first-dim entry of ``view_map [N, ..., Hv, Wv]`` -> ``[N, ..., h, w]``.
    Output pixel (i, j) is the bilinear value (``grid_sample``, ``align_corners=False``,
    border padding) at its centre ``(x0 + (j + .5)(x1 - x0)/w, y0 + (i + .5)(y1 - y0)/h)``;
    when the footprint is larger than ``out_hw`` each output pixel averages f x f sub-samples
    (f = ceil(footprint / out)) so that shrinking does not alias.
    """
    import torch

    h, w = int(out_hw[0]), int(out_hw[1])
    if view_map.ndim < 2 or not view_map.is_floating_point():
        raise ValueError(f"crop_footprint: view_map must be a float tensor [..., H, W], got "
                         f"{view_map.dtype} {tuple(view_map.shape)}")
    *lead, src_h, src_w = view_map.shape
    fp = torch.as_tensor(footprint, dtype=torch.float64).cpu()
    per_sample = fp.ndim == 2
    if per_sample:
        if fp.shape[1] != 4 or not lead or lead[0] != fp.shape[0]:
            raise ValueError(f"crop_footprint: footprints {tuple(fp.shape)} must be [N, 4] "
                             f"with N = view_map.shape[0] ({tuple(view_map.shape)})")
        x = view_map.reshape(fp.shape[0], -1, src_h, src_w)  # [N, C, Hv, Wv]
    else:
        if fp.shape != (4,):
            raise ValueError(f"crop_footprint: footprint must be (x0, y0, x1, y1), got {footprint!r}")
        fp = fp[None]  # [1, 4]
        x = view_map.reshape(1, -1, src_h, src_w)  # [1, C, Hv, Wv]
    compute = x if x.dtype in (torch.float32, torch.float64) else x.float()
    # Supersampling factors per footprint; samples sharing factors run in one grid_sample.
    fh = torch.clamp(torch.ceil((fp[:, 3] - fp[:, 1]) / h - 1e-6), min=1).long()  # [N]
    fw = torch.clamp(torch.ceil((fp[:, 2] - fp[:, 0]) / w - 1e-6), min=1).long()  # [N]
    factors = torch.stack([fh, fw], dim=1)  # [N, 2]
    groups = torch.unique(factors, dim=0).tolist()
    if len(groups) == 1:
        out = _sample_footprints(compute, fp, h, w, *groups[0])  # [N, C, h, w]
        return out.to(view_map.dtype).reshape(*lead, h, w)
    out = compute.new_empty(compute.shape[0], compute.shape[1], h, w)  # [N, C, h, w]
    for fy, fx in groups:
        sel = ((factors[:, 0] == fy) & (factors[:, 1] == fx)).nonzero()[:, 0]  # [n]
        out[sel.to(x.device)] = _sample_footprints(compute[sel.to(x.device)], fp[sel], h, w, fy, fx)
    return out.to(view_map.dtype).reshape(*lead, h, w)


def _sample_footprints(x: torch.Tensor, fp: torch.Tensor, h: int, w: int, fy: int, fx: int) -> torch.Tensor:
    """Bilinear samples of footprints ``fp [n, 4]`` from ``x [n, C, Hv, Wv]`` -> ``[n, C, h, w]``,
    each output pixel the mean of ``fy x fx`` sub-samples."""
    import torch
    import torch.nn.functional as F

    src_h, src_w = x.shape[-2:]
    ty = (torch.arange(h * fy, dtype=torch.float64) + 0.5) / (h * fy)  # [h*fy] in (0, 1)
    tx = (torch.arange(w * fx, dtype=torch.float64) + 0.5) / (w * fx)  # [w*fx]
    gy = fp[:, 1:2] + ty[None] * (fp[:, 3:4] - fp[:, 1:2])  # [n, h*fy] view px
    gx = fp[:, 0:1] + tx[None] * (fp[:, 2:3] - fp[:, 0:1])  # [n, w*fx] view px
    gy, gx = 2 * gy / src_h - 1, 2 * gx / src_w - 1  # normalised, align_corners=False
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)  # [n, h*fy, w*fx, 2]
    grid = grid.to(device=x.device, dtype=x.dtype)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if fy > 1 or fx > 1:
        out = F.avg_pool2d(out, kernel_size=(fy, fx))  # [n, C, h, w]
    return out
