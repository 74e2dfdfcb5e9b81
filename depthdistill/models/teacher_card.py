"""Measure the embedded teachers on the world's `eval` split and write their model cards.

Every number on a card comes from `measure_teacher` on renders of the eval split (never seen in
training), affine-aligned with the project's one protocol (`depthdistill.depth`):
- whole image: AbsRel / delta1 with the teacher fed the whole image;
- the paper's Fig. 2 in miniature, on the central (H/2, W/2) crop: the teacher fed the crop
  (local view) vs the teacher fed the whole image, its map cropped (global view), each aligned
  on the crop; plus where the local view should help — AbsRel on thin-structure pixels and the
  F-score of depth discontinuities, both inside the crop.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

EDGE_JUMP = 0.05  # a depth discontinuity: |log d - log d_neighbour| above this
EVAL_RANGE = (1e-3, 80.0)  # the world's depth range in metres (sky is invalid, not far)

Predict = Callable[[torch.Tensor], torch.Tensor]  # rgb01 [1, 3, h, w] -> disparity [1, h, w] (Teacher.predict)


@dataclass
class TeacherMetrics:
    images: int
    abs_rel: float
    delta1: float
    crop_local_abs_rel: float
    crop_global_abs_rel: float
    crop_local_delta1: float
    crop_global_delta1: float
    thin_local_abs_rel: float
    thin_global_abs_rel: float
    edge_f1_local: float
    edge_f1_global: float
    abs_rel_se: float = float("nan")  # standard error of the mean over the images (std / sqrt(n))
    delta1_se: float = float("nan")


def _aligned_depth(pred_disp: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Align disparity to 1/GT on `valid` (least squares), clip, invert, clip to the range."""
    from depthdistill.depth import align_scale_shift

    gt_disp = torch.where(valid, 1.0 / gt.clamp_min(1e-6), torch.zeros_like(gt))
    aligned, _, _ = align_scale_shift(pred_disp, gt_disp, valid & (pred_disp > 0))
    return (1.0 / aligned.clamp_min(1e-3)).clamp(*EVAL_RANGE)


def _edges(depth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Pixels next to a depth discontinuity (both neighbours valid). [1, h, w] bool."""
    log_d = torch.log(depth.clamp_min(1e-6))
    edges = torch.zeros_like(valid)
    dx = ((log_d[..., :, 1:] - log_d[..., :, :-1]).abs() > EDGE_JUMP) & valid[..., :, 1:] & valid[..., :, :-1]
    dy = ((log_d[..., 1:, :] - log_d[..., :-1, :]).abs() > EDGE_JUMP) & valid[..., 1:, :] & valid[..., :-1, :]
    edges[..., :, 1:] |= dx
    edges[..., 1:, :] |= dy
    return edges


def _edge_f1(pred_depth: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> float:
    """F-score of predicted vs true depth edges with a one-pixel tolerance."""
    import torch.nn.functional as F

    true, found = _edges(gt, valid), _edges(pred_depth, valid)
    near_true = F.max_pool2d(true.float()[:, None], 3, 1, 1)[:, 0] > 0
    near_found = F.max_pool2d(found.float()[:, None], 3, 1, 1)[:, 0] > 0
    precision = (found & near_true).sum() / found.sum().clamp_min(1)
    recall = (true & near_found).sum() / true.sum().clamp_min(1)
    return float(2 * precision * recall / (precision + recall).clamp_min(1e-9))


def _abs_rel_on(depth: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> float:
    if not bool(mask.any()):
        return float("nan")
    return float(((depth - gt).abs() / gt)[mask].mean())


def measure_teacher(predict: Predict, num_images: int = 64, image_hw: tuple[int, int] = (384, 512),
                    seed: int = 0) -> TeacherMetrics:
    """Score one teacher (a disparity predictor) on the first `num_images` eval renders."""
    from depthdistill.depth import evaluate_depth
    from depthdistill.world import render

    height, width = image_hw
    rows: dict[str, list[float]] = {k: [] for k in TeacherMetrics.__dataclass_fields__
                                    if k != "images" and not k.endswith("_se")}
    top, left, ch, cw = height // 4, width // 4, height // 2, width // 2
    for index in range(num_images):
        s = render("eval", index, seed=seed, height=height, width=width)
        rgb = torch.from_numpy(s.rgb).permute(2, 0, 1)[None].float() / 255.0  # [1, 3, H, W]
        gt = torch.from_numpy(s.depth)[None]
        valid = torch.from_numpy(s.valid)[None] & (gt > EVAL_RANGE[0]) & (gt < EVAL_RANGE[1])
        thin = torch.from_numpy(s.thin)[None] & valid
        whole = predict(rgb).cpu()  # [1, H, W]: the teacher resizes to its input and back
        scores = evaluate_depth(whole, gt, valid, space="disparity", depth_range=EVAL_RANGE)
        rows["abs_rel"].append(float(scores["abs_rel"][0]))
        rows["delta1"].append(float(scores["delta1"][0]))
        crop = (slice(None), slice(top, top + ch), slice(left, left + cw))
        gt_c, valid_c, thin_c = gt[crop], valid[crop], thin[crop]
        views = {
            "local": predict(rgb[:, :, top:top + ch, left:left + cw]).cpu(),  # [1, H/2, W/2]
            "global": whole[crop],
        }
        for name, disp in views.items():
            scores = evaluate_depth(disp, gt_c, valid_c, space="disparity", depth_range=EVAL_RANGE)
            rows[f"crop_{name}_abs_rel"].append(float(scores["abs_rel"][0]))
            rows[f"crop_{name}_delta1"].append(float(scores["delta1"][0]))
            depth = _aligned_depth(disp, gt_c, valid_c)
            rows[f"thin_{name}_abs_rel"].append(_abs_rel_on(depth, gt_c, thin_c))
            rows[f"edge_f1_{name}"].append(_edge_f1(depth, gt_c, valid_c))
    means = {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in rows.items()}
    spread = {f"{k}_se": float(np.std(rows[k], ddof=1) / np.sqrt(len(rows[k]))) if len(rows[k]) > 1
              else float("nan") for k in ("abs_rel", "delta1")}
    return TeacherMetrics(images=num_images, **means, **spread)


def _plain(value) -> str:
    """A card value as text: dicts as `key value, ...` (training time), the rest as str()."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def write_card(folder: Path, name: str, description: str, metrics: dict[str, TeacherMetrics],
               schedule: dict, command: str, extra: dict) -> None:
    """README.md (the model card) + metrics.json in the teacher's folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps({k: asdict(v) for k, v in metrics.items()}, indent=2))
    m = metrics[name]
    lines = [
        f"# {name} (embedded teacher of depthdistill)", "", description, "",
        "## Training", "", f"- command: `{command}`",
        "- data: the synthetic world's `teacher-train` split only (never `unlabeled` or `eval`)",
        f"- schedule: `{json.dumps(schedule)}`",
        *[f"- {k}: {_plain(v)}" for k, v in extra.items()], "",
        f"## Measured on the world `eval` split ({m.images} renders, 384x512, affine-aligned disparity, "
        "Marigold protocol; measured by `depthdistill teachers card` / `make teachers`, nothing typed in)", "",
        "AbsRel and delta1 on whole images are means over the renders ± their standard error "
        "(per-image standard deviation / sqrt(renders)).", "",
        "| teacher | AbsRel | delta1 | crop AbsRel local / global | crop delta1 local / global "
        "| thin AbsRel local / global | edge F1 local / global |",
        "|---|---|---|---|---|---|---|",
    ]
    for teacher, t in metrics.items():
        lines.append(
            f"| {teacher} | {t.abs_rel:.3f} ± {t.abs_rel_se:.3f} | {t.delta1:.3f} ± {t.delta1_se:.3f} "
            f"| {t.crop_local_abs_rel:.3f} / {t.crop_global_abs_rel:.3f} "
            f"| {t.crop_local_delta1:.3f} / {t.crop_global_delta1:.3f} "
            f"| {t.thin_local_abs_rel:.3f} / {t.thin_global_abs_rel:.3f} | {t.edge_f1_local:.3f} / {t.edge_f1_global:.3f} |")
    lines += [
        "", "Crop columns: the central (H/2, W/2) region. *local*: the teacher fed the crop; *global*: the "
        "teacher fed the whole image, its map cropped; each aligned on the crop (the paper's Fig. 2). "
        f"Thin: pixels of poles, rails and legs. Edge F1: depth discontinuities (|log-depth jump| > {EDGE_JUMP}) "
        "found within one pixel.", "",
    ]
    (folder / "README.md").write_text("\n".join(lines))
