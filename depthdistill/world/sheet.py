"""Contact sheet of world renders: RGB next to turbo-coloured depth (invalid black)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from depthdistill.world.render import check_args, render

logger = logging.getLogger(__name__)


def turbo_lut() -> np.ndarray:
    """The turbo colour map as uint8 [256, 3] (matplotlib's)."""
    from matplotlib import colormaps

    return (colormaps["turbo"](np.linspace(0.0, 1.0, 256))[:, :3] * 255 + 0.5).astype(np.uint8)


def colorize_depth(depth: np.ndarray, valid: np.ndarray, lut: np.ndarray | None = None) -> np.ndarray:
    """Depth [H, W] -> uint8 [H, W, 3]: inverse depth spread over the valid range (near is red),
    invalid pixels black."""
    lut = turbo_lut() if lut is None else lut
    rgb = np.zeros(depth.shape + (3,), dtype=np.uint8)
    if not valid.any():
        return rgb
    inv = 1.0 / np.maximum(depth[valid], 1e-6)
    lo, hi = np.percentile(inv, 1), np.percentile(inv, 99)
    level = np.clip((inv - lo) / max(hi - lo, 1e-9), 0, 1)
    rgb[valid] = lut[(level * 255).astype(np.int64)]
    return rgb


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.fromarray(tile)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 7 * len(text) + 6, 14), fill=(0, 0, 0))
    draw.text((3, 1), text, fill=(255, 255, 255))
    return np.asarray(img)


def contact_sheet(split: str, n: int, out, *, seed: int = 0, height: int = 384, width: int = 512,
                  columns: int = 3, tile_width: int = 256) -> Path:
    """Render images 0..n-1 of `split` and save a grid of (RGB | depth) pairs as a PNG."""
    from PIL import Image

    check_args(split, 0, height, width)
    if int(n) <= 0 or int(columns) <= 0:
        raise ValueError(f"--n {n} / columns {columns}: both must be > 0")
    tile_h = max(1, round(tile_width * height / width))
    lut = turbo_lut()
    pairs = []
    for index in range(int(n)):
        s = render(split, index, seed=seed, height=height, width=width)
        depth_rgb = colorize_depth(s.depth, s.valid, lut)
        halves = [np.asarray(Image.fromarray(a).resize((tile_width, tile_h), Image.Resampling.BILINEAR
                                                         if a is depth_rgb else Image.Resampling.LANCZOS))
                  for a in (s.rgb, depth_rgb)]
        near, far = (float(s.depth[s.valid].min()), float(s.depth[s.valid].max())) if s.valid.any() else (0, 0)
        halves[0] = _label(halves[0], f"{split} {index} {s.scene}")
        halves[1] = _label(halves[1], f"{near:.1f}-{far:.1f} m")
        pairs.append(np.concatenate([halves[0], np.full((tile_h, 2, 3), 255, np.uint8), halves[1]], axis=1))
    rows = []
    blank = np.zeros_like(pairs[0])
    gap_v = np.full((tile_h, 8, 3), 255, np.uint8)
    for r in range(0, len(pairs), columns):
        row = pairs[r:r + columns] + [blank] * (columns - len(pairs[r:r + columns]))
        rows.append(np.concatenate([x for p in row for x in (p, gap_v)][:-1], axis=1))
        rows.append(np.full((8, rows[-1].shape[1], 3), 255, np.uint8))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows[:-1], axis=0)).save(out, optimize=True)
    logger.info("wrote contact sheet of %d %s images to %s", n, split, out)
    return out
