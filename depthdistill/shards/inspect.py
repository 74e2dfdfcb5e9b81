"""``inspect_store`` (counts, teachers, sizes, bytes per label pixel) and ``render_preview``
(a PNG: each row one sample — the view, then per teacher its global label and its patches
pasted on their footprints, each patch least-squares aligned to the global label so the
mosaic reads as one map)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import atomic
from .layout import BAD_INPUTS_FILE
from .store import open_store

logger = logging.getLogger(__name__)


@dataclass
class FolderSummary:
    name: str  # "views" or the teacher name
    folder: Path
    space: str | None
    done: int
    num_samples: int
    bytes: int
    label_pixels: int = 0
    qerr_max: float = 0.0

    @property
    def bytes_per_label_pixel(self) -> float | None:
        return self.bytes / self.label_pixels if self.label_pixels else None


@dataclass
class StoreSummary:
    path: Path
    format: str
    num_shards: int
    num_views: int
    num_bad_inputs: int
    codec: str | None
    folders: list[FolderSummary] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.folders)


def _folder_summary(name: str, folder: Path, space: str | None, num_shards: int) -> FolderSummary:
    out = FolderSummary(name, folder, space, 0, 0, 0)
    for i in range(num_shards):
        m = atomic.read_marker(folder, i)
        if m is None:
            continue
        out.done += 1
        out.num_samples += int(m.get("count", 0))
        out.bytes += int(m.get("bytes", 0))
        out.label_pixels += int(m.get("label_pixels", 0))
        out.qerr_max = max(out.qerr_max, *(float(v) for k, v in m.get("qerr", {}).items()
                                           if k.endswith("_max")), 0.0)
    return out


def inspect_store(path: str | Path) -> StoreSummary:
    store = open_store(path)
    bad = store.path / BAD_INPUTS_FILE
    num_bad = len(bad.read_text().splitlines()) if bad.is_file() else 0
    summary = StoreSummary(store.path, store.format, store.num_shards,
                           int(store.manifest.get("num_views", 0)), num_bad,
                           store.manifest.get("codec"))
    summary.folders.append(_folder_summary("views", store.views_folder, None, store.num_shards))
    for name, t in store.teachers.items():
        summary.folders.append(_folder_summary(name, t.folder, t.space, store.num_shards))
    return summary


# ----------------------------------------------------------------------------- preview


def paste_patches(patches: np.ndarray, footprints: list, view_size: int,
                  reference: np.ndarray | None = None) -> np.ndarray:
    """float32 [K, P, P] patches -> [V, V] mosaic on their footprints (NaN where none).

    Each patch is resized to its footprint with ``depthdistill.views.resize``; with a
    ``reference`` [V, V] map it is scale/shift aligned to it first; overlaps are averaged.
    """
    import torch

    from depthdistill.views import resize

    acc = np.zeros((view_size, view_size))  # [V, V]
    cnt = np.zeros((view_size, view_size))
    for patch, (x0, y0, x1, y1) in zip(patches, footprints):
        c0, r0 = max(0, int(round(x0))), max(0, int(round(y0)))
        c1, r1 = min(view_size, int(round(x1))), min(view_size, int(round(y1)))
        if c1 <= c0 or r1 <= r0:
            continue
        tile = resize(torch.from_numpy(np.ascontiguousarray(patch, np.float32)), (r1 - r0, c1 - c0)).numpy()
        if reference is not None:
            ref = reference[r0:r1, c0:c1].astype(np.float64).ravel()
            a = np.stack([tile.ravel().astype(np.float64), np.ones(tile.size)], 1)  # [n, 2]
            coef, *_ = np.linalg.lstsq(a, ref, rcond=None)
            tile = (a @ coef).reshape(tile.shape)
        acc[r0:r1, c0:c1] += tile
        cnt[r0:r1, c0:c1] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, acc / cnt, np.nan).astype(np.float32)


def _colour(m: np.ndarray, lo: float, hi: float) -> np.ndarray:
    from matplotlib import colormaps

    t = np.clip((m - lo) / max(hi - lo, 1e-12), 0, 1)
    rgb = (colormaps["Spectral_r"](np.nan_to_num(t))[..., :3] * 255).astype(np.uint8)
    rgb[np.isnan(m)] = 0
    return rgb  # [H, W, 3]


def render_preview(path: str | Path, out_png: str | Path, num_samples: int = 3,
                   shard: int | None = None) -> Path:
    """Write a PNG grid of ``num_samples`` samples of the first complete shard."""
    from PIL import Image

    store = open_store(path)
    complete = store.complete_shards()
    if not complete:
        raise ValueError(f"{store.path}: no shard is finished for views and all teachers; "
                         "nothing to preview (run `depthdistill shards validate`)")
    index = complete[0] if shard is None else shard
    rows = []
    for n, s in enumerate(store.iter_shard(index)):
        if n >= num_samples:
            break
        tiles = [s.view]
        for name in sorted(s.labels):
            lab = s.labels[name]
            lo, hi = np.percentile(lab.global_map, [2, 98])
            mosaic = paste_patches(lab.patches, s.meta.get("footprints", []), s.view.shape[0],
                                   reference=lab.global_map)
            tiles += [_colour(lab.global_map, lo, hi), _colour(mosaic, lo, hi)]
        rows.append(np.concatenate(tiles, axis=1))  # [V, V * (1 + 2T), 3]
    grid = np.concatenate(rows, axis=0)
    scale = max(1, 256 // grid.shape[0]) if grid.shape[0] < 256 else 1
    img = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    img.save(out_png)
    logger.info("wrote %s (%d samples of shard %d; columns: view, then per teacher %s: global, "
                "patches)", out_png, len(rows), index, ", ".join(sorted(store.teachers)))
    return out_png


def summary_dict(summary: StoreSummary) -> dict[str, Any]:
    return {"path": str(summary.path), "format": summary.format, "num_shards": summary.num_shards,
            "num_views": summary.num_views, "num_bad_inputs": summary.num_bad_inputs,
            "codec": summary.codec, "total_bytes": summary.total_bytes,
            "folders": [{"name": f.name, "space": f.space, "done": f.done, "samples": f.num_samples,
                         "bytes": f.bytes, "bytes_per_label_pixel": f.bytes_per_label_pixel,
                         "qerr_max": f.qerr_max} for f in summary.folders]}
