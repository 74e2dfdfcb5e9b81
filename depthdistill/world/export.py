"""Write a world split to disk in the layout the `world` benchmark loader reads.

    out/rgb/000000.png (or .jpg)       RGB
    out/depth/000000.png               uint16 z-depth in millimetres, 0 = invalid (NYUv2 style)
    out/mask/000000.png                uint8 0 / 255 valid mask
    out/thin/000000.png                uint8 0 / 255 thin-structure mask
    out/meta.json                      split, seed, size, per-image intrinsics and scene kind

Depth, mask and thin maps are written for `val` and `eval` (or with `with_depth=True`). Images render in
a process pool when there are many; every file depends only on (split, index, seed), so the
output is the same for any number of workers.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from depthdistill.world.render import check_args, render

logger = logging.getLogger(__name__)

FORMATS = ("png", "jpg")
POOL_MIN_IMAGES = 8  # fewer images render in-process: a pool's start-up would cost more


def depth_to_mm(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """float32 metres [H, W] -> uint16 millimetres, 0 where invalid (or too small to store)."""
    mm = np.rint(np.where(valid, depth, 0.0) * 1000.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def _write_one(job: tuple) -> dict:
    """Render image `index` and write its files; returns its meta.json row."""
    from PIL import Image

    split, index, seed, height, width, fmt, with_depth, out = job
    sample = render(split, index, seed=seed, height=height, width=width)
    name = f"{index:06d}"
    row = {"index": index, "rgb": f"rgb/{name}.{fmt}", "scene": sample.scene,
           "intrinsics": np.asarray(sample.intrinsics, dtype=np.float64).round(6).tolist()}
    rgb = Image.fromarray(sample.rgb)
    if fmt == "jpg":
        rgb.save(Path(out, row["rgb"]), format="JPEG", quality=95)
    else:
        rgb.save(Path(out, row["rgb"]), format="PNG", compress_level=6)
    if with_depth:
        Image.fromarray(depth_to_mm(sample.depth, sample.valid)).save(Path(out, "depth", f"{name}.png"))
        Image.fromarray(sample.valid.astype(np.uint8) * 255).save(Path(out, "mask", f"{name}.png"))
        Image.fromarray(sample.thin.astype(np.uint8) * 255).save(Path(out, "thin", f"{name}.png"))
        row.update(depth=f"depth/{name}.png", mask=f"mask/{name}.png", thin=f"thin/{name}.png",
                   valid_fraction=round(float(sample.valid.mean()), 6),
                   thin_fraction=round(float(sample.thin.mean()), 6))
    return row


def export_split(split: str, n: int, out, *, seed: int = 0, height: int = 384, width: int = 512,
                 fmt: str = "png", with_depth: bool | None = None, num_workers: int | None = None,
                 progress: bool = True) -> Path:
    """Render images 0..n-1 of `split` into `out` (see module doc); returns `out`.

    `with_depth` defaults to True for `eval` only; `num_workers` defaults to os.cpu_count()
    (a pool is used from POOL_MIN_IMAGES images on)."""
    from tqdm import tqdm

    check_args(split, 0, height, width)
    if int(n) <= 0:
        raise ValueError(f"--n {n}: the number of images to export must be > 0")
    if fmt not in FORMATS:
        raise ValueError(f"--fmt {fmt!r}: choose one of {FORMATS}")
    with_depth = split in ("val", "eval") if with_depth is None else bool(with_depth)
    out = Path(out)
    for sub in ("rgb",) + (("depth", "mask", "thin") if with_depth else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    jobs = [(split, i, int(seed), int(height), int(width), fmt, with_depth, str(out)) for i in range(int(n))]
    workers = max(1, min(num_workers or os.cpu_count() or 1, len(jobs)))
    bar = dict(total=len(jobs), desc=f"world {split}", unit="img", disable=not progress)
    if workers == 1 or len(jobs) < POOL_MIN_IMAGES:
        rows = [_write_one(job) for job in tqdm(jobs, **bar)]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = list(tqdm(pool.map(_write_one, jobs, chunksize=2), **bar))
    meta = {"split": split, "seed": int(seed), "n": int(n), "height": int(height), "width": int(width),
            "fmt": fmt, "depth": "z-depth along the optical axis, uint16 millimetres, 0 = invalid" if with_depth else None,
            "scenes": {kind: sum(r["scene"] == kind for r in rows) for kind in ("indoor", "outdoor")},
            "images": rows}
    tmp = out / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(out / "meta.json")  # meta.json last: its presence means the export finished
    logger.info("wrote %d %s images to %s (%s)", len(rows), split, out, meta["scenes"])
    return out
