"""`--dataset middlebury`: one real photograph with metric ground truth, no download.

scikit-image ships one frame of the Middlebury 2014 stereo benchmark ("Motorcycle", left view,
down-sampled 4x to 500 x 741) with its ground-truth disparity (`skimage.data.stereo_motorcycle`).
Depth follows from the calibration its docstring gives for the down-sampled frame:

    Z [mm] = baseline * focal / (disparity + doffs),  focal 994.978 px, baseline 193.001 mm,
                                                      doffs 31.086 px (principal point x offset)

Pixels without ground truth (NaN / inf disparity) are outside the mask. One image: the
result has no standard error over images; it tells whether a model knows anything about a
real photo, next to the trivial baselines (`baseline://constant`, `baseline://ramp`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from depthdistill.evaluation.datasets import SPECS, DatasetLayoutError, EvalSample

logger = logging.getLogger(__name__)

FOCAL_PX = 994.978
BASELINE_MM = 193.001
DOFFS_PX = 31.086
KEY = "skimage.data.stereo_motorcycle/left"


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
    return EvalSample(key=KEY, rgb=np.ascontiguousarray(left[..., :3]), depth=depth, mask=mask)


class MiddleburyDataset:
    """The same interface as `BenchmarkDataset`, over the one bundled frame."""

    def __init__(self, root: str | Path = ""):
        if root:
            logger.warning("--dataset middlebury: ignoring root %s (the frame ships with scikit-image)", root)
        self.spec = SPECS["middlebury"]
        self.root = Path("skimage.data")
        self.list_file = None
        self.rows = [(KEY,)]
        self.skipped: list[tuple[str, str]] = []

    @property
    def depth_range(self) -> tuple[float, float]:
        return self.spec.depth_range

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        yield load_frame()
