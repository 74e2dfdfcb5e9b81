"""Benchmark loaders in the layout their users already have: the Marigold / GenPercept one.

Get the data with Marigold's command (it writes one folder per set, each holding a tar):
    wget -r -np -nH --cut-dirs=4 -R "index.html*" -P DATA \
        https://share.phys.ethz.ch/~pf/bingkedata/marigold/evaluation_dataset/
`--root` is then either that tar (e.g. DATA/nyuv2/nyu_labeled_extracted.tar) or the folder
it was extracted into. A Marigold filename list (`data_split/...` in the Marigold repo, e.g.
`filename_list_test.txt`) placed inside the root folder fixes the image list exactly; without
one the loader finds the pairs by the layout below (same files, sorted order).

Per set (METHOD.md's table): depth decoding, depth range, crop and evaluation mask.
- nyuv2  test/<scene>/rgb_XXXX.png + depth_XXXX.png (uint16 mm); 480x640; Eigen crop
         [45:471, 41:601]; valid 1e-3 < d < 10.
- kitti  <date>/<drive>/image_02/data/N.png + <drive>/proj_depth/groundtruth/image_02/N.png
         (uint16 /256); KB crop 352x1216 (bottom, centred); Eigen mask; valid 1e-5 < d < 80.
- eth3d  rgb/<scene>/images/dslr_images/X.JPG + depth/<scene>_dslr_depth/<scene>/
         ground_truth_depth/dslr_images/X.JPG (raw float32 at the RGB size, inf = invalid).
- scannet <scene>/color/N.jpg + <scene>/depth/N.png (uint16 mm); valid 1e-3 < d < 10.
- diode  <indoors|outdoors>/scene_*/scan_*/X.png + X_depth.npy + X_depth_mask.npy; the mask
         file alone is the valid mask; range 0.6-350 for clipping.
- world  `depthdistill world export` layout: rgb/N.png, depth/N.png (uint16 mm, 0 = invalid),
         mask/N.png (0/255), thin/N.png (0/255 thin-structure pixels, optional), meta.json.
- middlebury  one real Middlebury 2014 frame bundled with scikit-image (no root needed): see
         `MiddleburyDataset` below.
"""

from __future__ import annotations

import io
import logging
import math
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

MARIGOLD_URL = "https://share.phys.ethz.ch/~pf/bingkedata/marigold/evaluation_dataset/"


class DatasetLayoutError(ValueError):
    """The root is missing or holds nothing in the expected layout."""


@dataclass(frozen=True)
class EvalSample:
    key: str  # relative RGB path inside the root
    rgb: np.ndarray  # uint8 [H, W, 3]
    depth: np.ndarray  # float32 [H, W] metres (0 where unknown)
    mask: np.ndarray  # bool [H, W] evaluation mask (range, crop and set mask applied)
    thin: np.ndarray | None = None  # bool [H, W] thin-structure pixels, where the set marks them


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    depth_range: tuple[float, float]
    list_file: str  # Marigold's list file name, looked for inside the root folder
    layout: str  # one line for error messages
    source: str  # where to get it


SPECS: dict[str, BenchmarkSpec] = {
    "nyuv2": BenchmarkSpec("nyuv2", (1e-3, 10.0), "filename_list_test.txt",
                           "test/<scene>/rgb_XXXX.png + depth_XXXX.png (uint16 mm)",
                           MARIGOLD_URL + "nyuv2/nyu_labeled_extracted.tar"),
    "kitti": BenchmarkSpec("kitti", (1e-5, 80.0), "eigen_test_files_with_gt.txt",
                           "<date>/<drive>/image_02/data/N.png + <drive>/proj_depth/groundtruth/image_02/N.png",
                           MARIGOLD_URL + "kitti/kitti_eigen_split_test.tar"),
    "eth3d": BenchmarkSpec("eth3d", (1e-5, math.inf), "eth3d_filename_list.txt",
                           "rgb/<scene>/images/dslr_images/X.JPG + depth/<scene>_dslr_depth/<scene>/"
                           "ground_truth_depth/dslr_images/X.JPG (float32 raw)",
                           MARIGOLD_URL + "eth3d/eth3d.tar"),
    "scannet": BenchmarkSpec("scannet", (1e-3, 10.0), "scannet_val_sampled_list_800_1.txt",
                             "<scene>/color/N.jpg + <scene>/depth/N.png (uint16 mm)",
                             MARIGOLD_URL + "scannet/scannet_val_sampled_800_1.tar"),
    "diode": BenchmarkSpec("diode", (0.6, 350.0), "diode_val_all_filename_list.txt",
                           "<indoors|outdoors>/scene_*/scan_*/X.png + X_depth.npy + X_depth_mask.npy",
                           MARIGOLD_URL + "diode/diode_val.tar"),
    "world": BenchmarkSpec("world", (1e-3, 65.536), "",
                           "rgb/N.png + depth/N.png (uint16 mm) + mask/N.png + meta.json",
                           "`depthdistill world export --split eval` (or leave the root empty)"),
    "middlebury": BenchmarkSpec("middlebury", (1e-3, 10.0), "",
                                "no files: skimage.data.stereo_motorcycle() (left image + disparity)",
                                "`pip install scikit-image` (the frame ships inside it)"),
}

NYU_HW, NYU_EIGEN_CROP = (480, 640), (45, 471, 41, 601)  # y0, y1, x0, x1
KB_CROP_HW = (352, 1216)
KITTI_EIGEN_MASK = (0.3324324, 0.91351351, 0.0359477, 0.96405229)  # fractions y0, y1, x0, x1


class _Files:
    """Read-only access to a folder or a tar by relative path (tar members without './')."""

    def __init__(self, root: Path):
        self.root = root
        self.tar = tarfile.open(root) if root.is_file() else None
        if self.tar is not None:
            self.members = {m.name.removeprefix("./"): m for m in self.tar.getmembers() if m.isfile()}
        else:
            self.members = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}

    def exists(self, rel: str) -> bool:
        return rel in self.members

    def read(self, rel: str) -> bytes:
        if self.tar is not None:
            return self.tar.extractfile(self.members[rel]).read()
        return self.members[rel].read_bytes()

    def names(self) -> list[str]:
        return sorted(self.members)


def _read_image(files: _Files, rel: str) -> np.ndarray:
    with Image.open(io.BytesIO(files.read(rel))) as im:
        return np.array(im)


def _rgb(files: _Files, rel: str) -> np.ndarray:
    with Image.open(io.BytesIO(files.read(rel))) as im:
        return np.array(im.convert("RGB"))  # uint8 [H, W, 3]


def _discover(name: str, files: _Files) -> list[tuple[str, ...]]:
    """(rgb, depth[, mask]) rows found by the layout when no list file is given."""
    rows = []
    for rel in files.names():
        parts = rel.split("/")
        base = parts[-1]
        if name == "nyuv2" and base.startswith("rgb_") and base.endswith(".png") and not rel.startswith("train/"):
            rows.append((rel, rel[: -len(base)] + base.replace("rgb_", "depth_", 1)))
        elif name == "kitti" and len(parts) == 5 and parts[2] == "image_02" and parts[3] == "data":
            rows.append((rel, f"{parts[1]}/proj_depth/groundtruth/image_02/{base}"))
        elif name == "eth3d" and len(parts) == 5 and parts[0] == "rgb" and parts[3] == "dslr_images":
            scene = parts[1]
            rows.append((rel, f"depth/{scene}_dslr_depth/{scene}/ground_truth_depth/dslr_images/{base}"))
        elif name == "scannet" and len(parts) >= 3 and parts[-2] == "color" and base.endswith(".jpg"):
            rows.append((rel, "/".join(parts[:-2] + ["depth", base[:-4] + ".png"])))
        elif name == "diode" and base.endswith(".png") and parts[0] in ("indoors", "outdoors"):
            stem = rel[:-4]
            rows.append((rel, stem + "_depth.npy", stem + "_depth_mask.npy"))
        elif name == "world" and len(parts) == 2 and parts[0] == "rgb" and base.endswith(".png"):
            rows.append((rel, f"depth/{base}", f"mask/{base}"))
    return rows


def _read_list(files: _Files, spec: BenchmarkSpec) -> list[tuple[str, ...]] | None:
    if not spec.list_file or not files.exists(spec.list_file):
        return None
    rows = [tuple(line.split()) for line in files.read(spec.list_file).decode().splitlines() if line.strip()]
    if spec.name == "kitti":  # "rgb depth focal"; depth "None" = no ground truth (Marigold drops these)
        rows = [r[:2] for r in rows if len(r) >= 2 and r[1] != "None"]
    elif spec.name == "nyuv2":
        rows = [r[:2] for r in rows]  # rgb, raw depth (the filled depth is not evaluated)
    return rows


def _eigen_nyu(depth: np.ndarray) -> np.ndarray:
    if depth.shape != NYU_HW:
        raise ValueError(f"NYUv2 depth is {depth.shape}, expected {NYU_HW} for the Eigen crop")
    crop = np.zeros(depth.shape, dtype=bool)
    y0, y1, x0, x1 = NYU_EIGEN_CROP
    crop[y0:y1, x0:x1] = True
    return crop


def kb_crop(x: np.ndarray) -> np.ndarray:
    """KITTI benchmark crop: the bottom 352 rows, the centred 1216 columns."""
    h, w = x.shape[:2]
    if h < KB_CROP_HW[0] or w < KB_CROP_HW[1]:
        raise ValueError(f"KITTI frame is {h}x{w}, smaller than the KB crop {KB_CROP_HW}")
    top, left = h - KB_CROP_HW[0], (w - KB_CROP_HW[1]) // 2
    return x[top: top + KB_CROP_HW[0], left: left + KB_CROP_HW[1]]


def kitti_eigen_mask(hw: tuple[int, int]) -> np.ndarray:
    h, w = hw
    fy0, fy1, fx0, fx1 = KITTI_EIGEN_MASK
    mask = np.zeros(hw, dtype=bool)
    mask[int(fy0 * h): int(fy1 * h), int(fx0 * w): int(fx1 * w)] = True
    return mask


def _load(spec: BenchmarkSpec, files: _Files, row: tuple[str, ...]) -> EvalSample:
    rgb = _rgb(files, row[0])
    lo, hi = spec.depth_range
    if spec.name == "eth3d":
        raw = np.frombuffer(files.read(row[1]), dtype=np.float32).copy()
        if raw.size != rgb.shape[0] * rgb.shape[1]:
            raise ValueError(f"{row[1]}: {raw.size} floats, expected {rgb.shape[0]}x{rgb.shape[1]}")
        raw[~np.isfinite(raw)] = 0.0
        depth = raw.reshape(rgb.shape[:2])
    elif spec.name == "diode":
        depth = np.load(io.BytesIO(files.read(row[1]))).squeeze().astype(np.float32)
        set_mask = np.load(io.BytesIO(files.read(row[2]))).squeeze().astype(bool)
    else:
        scale = 256.0 if spec.name == "kitti" else 1000.0
        depth = _read_image(files, row[1]).astype(np.float32) / scale
    if spec.name == "kitti":
        rgb, depth = kb_crop(rgb), kb_crop(depth)
    if spec.name == "diode":
        mask = set_mask  # DIODE: its own mask file only
    else:
        mask = (depth > lo) & (depth < hi)
    if spec.name == "nyuv2":
        mask &= _eigen_nyu(depth)
    elif spec.name == "kitti":
        mask &= kitti_eigen_mask(depth.shape)
    thin = None
    if spec.name == "world":
        mask &= _read_image(files, row[2]) > 127
        thin_rel = row[2].replace("mask/", "thin/", 1)
        thin = _read_image(files, thin_rel) > 127 if files.exists(thin_rel) else None
    if mask.shape != depth.shape:
        raise ValueError(f"{row[-1]}: mask {mask.shape} does not match depth {depth.shape}")
    return EvalSample(key=row[0], rgb=np.ascontiguousarray(rgb), depth=np.ascontiguousarray(depth), mask=mask,
                      thin=thin)


def layout_message(name: str, what: str) -> str:
    """`what` went wrong, plus the layout the set needs and where to get it."""
    spec = SPECS[name]
    listed = f"; optional list file {spec.list_file} inside the root" if spec.list_file else ""
    return (f"{what}. Data set '{name}' expects the Marigold evaluation layout: {spec.layout}"
            f"{listed}. Pass --root with the tar or the folder it was extracted to. Get it from {spec.source}")


class BenchmarkDataset:
    """The image/GT pairs of one benchmark that exist under `root`; iterate for samples.

    Rows whose files are missing are dropped at open (counted in `skipped`); rows that fail to
    decode are skipped while iterating, each with its reason.
    """

    def __init__(self, name: str, root: str | Path):
        if name not in SPECS:
            raise DatasetLayoutError(f"unknown data set {name!r}; choose one of {sorted(SPECS)}")
        self.spec = SPECS[name]
        self.root = Path(root)
        if not self.root.exists():
            raise DatasetLayoutError(layout_message(name, f"{self.root} does not exist"))
        self.files = _Files(self.root)
        rows = _read_list(self.files, self.spec)
        self.list_file = self.spec.list_file if rows is not None else None
        rows = rows if rows is not None else _discover(name, self.files)
        self.rows = [r for r in rows if all(self.files.exists(p) for p in r)]
        self.skipped: list[tuple[str, str]] = [
            (r[0], "missing " + ", ".join(p for p in r if not self.files.exists(p)))
            for r in rows if r not in self.rows]
        if not self.rows:
            raise DatasetLayoutError(layout_message(name, f"no {name} image/ground-truth pairs under {self.root}"))
        if self.skipped:
            logger.warning("%s: %d of %d listed images have missing files and are skipped",
                           name, len(self.skipped), len(rows))

    @property
    def depth_range(self) -> tuple[float, float]:
        return self.spec.depth_range

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[EvalSample]:
        for row in self.rows:
            try:
                yield _load(self.spec, self.files, row)
            except (OSError, ValueError, KeyError) as exc:
                logger.warning("%s: skipping %s: %s", self.spec.name, row[0], exc)
                self.skipped.append((row[0], str(exc)))


# ----------------------------------------------------------------------------- middlebury
# One real photograph with metric ground truth, no download: scikit-image ships one frame of the
# Middlebury 2014 stereo benchmark ("Motorcycle", left view, down-sampled 4x to 500 x 741) with
# its ground-truth disparity (`skimage.data.stereo_motorcycle`). Depth follows from the
# calibration its docstring gives for the down-sampled frame:
#     Z [mm] = baseline * focal / (disparity + doffs), focal 994.978 px, baseline 193.001 mm,
#                                                      doffs 31.086 px (principal point x offset)
# Pixels without ground truth (NaN / inf disparity) are outside the mask. One image: no standard
# error over images; it tells whether a model knows anything about a real photo, next to the
# trivial baselines (`baseline://constant`, `baseline://ramp`).

FOCAL_PX = 994.978
BASELINE_MM = 193.001
DOFFS_PX = 31.086
MIDDLEBURY_KEY = "skimage.data.stereo_motorcycle/left"


def disparity_to_depth(disparity: np.ndarray) -> np.ndarray:
    """Middlebury disparity (px, NaN/inf unknown) -> z-depth in metres (0 where unknown)."""
    d = np.asarray(disparity, dtype=np.float64)
    known = np.isfinite(d) & (d + DOFFS_PX > 0)
    z_mm = np.where(known, BASELINE_MM * FOCAL_PX / np.where(known, d + DOFFS_PX, 1.0), 0.0)
    return (z_mm / 1000.0).astype(np.float32)


def load_frame() -> EvalSample:
    """The left image and its metric depth, masked by the set's range."""
    try:
        from skimage import data
    except ImportError as exc:
        raise DatasetLayoutError("--dataset middlebury needs scikit-image (it ships the frame): "
                                 "`pip install scikit-image`") from exc
    left, _right, disparity = data.stereo_motorcycle()
    depth = disparity_to_depth(disparity)
    lo, hi = SPECS["middlebury"].depth_range
    mask = (depth > lo) & (depth < hi)
    return EvalSample(key=MIDDLEBURY_KEY, rgb=np.ascontiguousarray(left[..., :3]), depth=depth, mask=mask)


class MiddleburyDataset:
    """The same interface as `BenchmarkDataset`, over the one bundled frame."""

    def __init__(self, root: str | Path = ""):
        if root:
            logger.warning("--dataset middlebury: ignoring root %s (the frame ships with scikit-image)", root)
        self.spec = SPECS["middlebury"]
        self.root = Path("skimage.data")
        self.list_file = None
        self.rows = [(MIDDLEBURY_KEY,)]
        self.skipped: list[tuple[str, str]] = []

    @property
    def depth_range(self) -> tuple[float, float]:
        return self.spec.depth_range

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        yield load_frame()


def open_benchmark(name: str, root: str | Path) -> BenchmarkDataset:
    """Open a benchmark root (folder or tar); raises DatasetLayoutError naming the layout.
    `middlebury` needs no root (its one frame ships with scikit-image)."""
    if name == "middlebury":
        return MiddleburyDataset(root)
    return BenchmarkDataset(name, root)
