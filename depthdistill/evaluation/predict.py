"""The predict writer: images or folders -> per image a 16-bit PNG, a .npy, a colour PNG.

For `<out>/<name>` (the path relative to the input folder, without its extension):
- `<name>.depth16.png`  uint16 PNG of the raw output normalised to the full range 0..65535;
- `<name>.depth16.json` its min / max (raw = min + png / 65535 * (max - min)), space, model;
- `<name>.npy`          float32 [H, W] raw model output (disparity or depth, as the model gives);
- `<name>.color.png`    inferno colour map, near = bright (2nd-98th percentile stretch);
all at the input image's resolution. `sheet.png` (optional) shows RGB | colour side by side.
Unreadable images are skipped with a reason; they never stop the run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from depthdistill.evaluation.predictor import DepthPredictor

logger = logging.getLogger(__name__)

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}
# Polynomial fit of matplotlib's inferno (degree 6, max error ~0.034 per channel): rows c0..c6.
_INFERNO = np.array([
    [0.0002189403691192265, 0.001651004631001012, -0.01948089843709184],
    [0.1065134194856116, 0.5639564367884091, 3.932712388889277],
    [11.60249308247187, -3.972853965665698, -15.9423941062914],
    [-41.70399613139459, 17.43639888205313, 44.35414519872813],
    [77.162935699427, -33.40235894210092, -81.80730925738993],
    [-71.31942824499214, 32.62606426397723, 73.20951985803202],
    [25.13112622477341, -12.24266895238567, -23.07032500287172],
])


@dataclass
class PredictSummary:
    out: Path
    written: list[Path] = field(default_factory=list)  # one stem per image
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    sheet: Path | None = None


def inferno(x: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB [..., 3] (dark purple -> bright yellow)."""
    x = np.clip(x, 0.0, 1.0)[..., None]  # [..., 1]
    rgb = sum(_INFERNO[k] * x ** k for k in range(_INFERNO.shape[0]))  # [..., 3]
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def colorize(pred: np.ndarray, space: str) -> np.ndarray:
    """float [H, W] -> uint8 [H, W, 3]; near = bright for disparity and depth outputs alike."""
    finite = pred[np.isfinite(pred)]
    lo, hi = (np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0))
    n = (pred - lo) / max(hi - lo, 1e-12)  # [H, W]
    if space == "depth":
        n = 1.0 - n  # larger depth = farther = darker
    return inferno(np.nan_to_num(n, nan=0.0))


def encode_uint16(pred: np.ndarray) -> tuple[np.ndarray, float, float]:
    """float [H, W] -> (uint16 [H, W] spanning 0..65535, min, max)."""
    lo, hi = float(np.min(pred)), float(np.max(pred))
    if hi <= lo:
        return np.zeros(pred.shape, dtype=np.uint16), lo, hi
    q = np.round((pred.astype(np.float64) - lo) / (hi - lo) * 65535.0)
    return q.astype(np.uint16), lo, hi


def decode_uint16(q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (lo + q.astype(np.float64) / 65535.0 * (hi - lo)).astype(np.float32)


def collect_images(inputs: Sequence[str | Path]) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Files and folders (recursively) -> [(path, output name)], [(path, reason)] for missing ones."""
    found: list[tuple[Path, str]] = []
    bad: list[tuple[str, str]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            for p in sorted(item.rglob("*")):
                if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
                    found.append((p, p.relative_to(item).with_suffix("").as_posix()))
        elif item.is_file():
            found.append((item, item.stem))
        else:
            bad.append((str(item), "no such file or folder"))
    seen: dict[str, int] = {}
    unique = []
    for path, name in found:  # two inputs with the same name get _1, _2, ...
        k = seen.get(name, 0)
        seen[name] = k + 1
        unique.append((path, name if k == 0 else f"{name}_{k}"))
    return unique, bad


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        if im.width < 2 or im.height < 2:
            raise ValueError(f"image is {im.width}x{im.height}; need at least 2x2")
        return np.array(im.convert("RGB"))  # uint8 [H, W, 3]


def write_prediction(pred: np.ndarray, stem: Path, *, space: str, model: str) -> None:
    """Write the four files of one prediction next to `stem` (no extension)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    np.save(stem.with_name(stem.name + ".npy"), pred.astype(np.float32))
    q, lo, hi = encode_uint16(pred)
    Image.fromarray(q).save(stem.with_name(stem.name + ".depth16.png"))
    meta = {"min": lo, "max": hi, "space": space, "model": model, "shape": list(pred.shape),
            "decode": "raw = min + png / 65535 * (max - min)"}
    stem.with_name(stem.name + ".depth16.json").write_text(json.dumps(meta, indent=2))
    Image.fromarray(colorize(pred, space)).save(stem.with_name(stem.name + ".color.png"))


def make_sheet(pairs: Sequence[tuple[np.ndarray, np.ndarray]], row_height: int = 192) -> np.ndarray:
    """[(rgb, colour)] -> uint8 sheet, one row per image: RGB | depth colour map."""
    rows = []
    for rgb, color in pairs:
        w = max(1, round(rgb.shape[1] * row_height / rgb.shape[0]))
        a = np.asarray(Image.fromarray(rgb).resize((w, row_height), Image.BILINEAR))
        b = np.asarray(Image.fromarray(color).resize((w, row_height), Image.BILINEAR))
        rows.append(np.concatenate([a, np.full((row_height, 4, 3), 255, np.uint8), b], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, axis=0)


def predict_images(inputs: Sequence[str | Path], predictor: "DepthPredictor", out: str | Path, *,
                   sheet: bool = False, batch_size: int = 8, sheet_rows: int = 8,
                   progress: bool = True) -> PredictSummary:
    from tqdm.auto import tqdm

    out = Path(out)
    items, bad = collect_images(inputs)
    summary = PredictSummary(out=out, bad=bad)
    sheet_pairs: list[tuple[np.ndarray, np.ndarray]] = []
    bar = tqdm(total=len(items), desc=f"predict {predictor.spec}", disable=not progress, leave=False)
    for start in range(0, len(items), batch_size):
        loaded = []
        for path, name in items[start: start + batch_size]:
            try:
                loaded.append((name, read_rgb(path)))
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                logger.warning("skipping %s: %s", path, exc)
                summary.bad.append((str(path), f"{type(exc).__name__}: {exc}"))
        preds = predictor.predict([rgb for _, rgb in loaded]) if loaded else []
        for (name, rgb), pred in zip(loaded, preds):
            stem = out / name
            write_prediction(pred, stem, space=predictor.space, model=predictor.spec)
            summary.written.append(stem)
            if sheet and len(sheet_pairs) < sheet_rows:
                sheet_pairs.append((rgb, colorize(pred, predictor.space)))
        bar.update(len(items[start: start + batch_size]))
    bar.close()
    if sheet and sheet_pairs:
        summary.sheet = out / "sheet.png"
        Image.fromarray(make_sheet(sheet_pairs)).save(summary.sheet, optimize=True)
    return summary
