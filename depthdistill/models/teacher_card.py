"""Measure the embedded teachers on the world's `eval` split and write their model cards.

Every number on a card comes from `measure_teacher` on renders of the eval split (never seen in
training), scored by the evaluation runner (`score_sample`: the project's one protocol):
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

import torch

from depthdistill.config import WORLD_IMAGE_HW
from depthdistill.depth import EDGE_JUMP
from depthdistill.evaluation.datasets import EvalSample

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


def measure_teacher(predict: Predict, num_images: int = 64, image_hw: tuple[int, int] = WORLD_IMAGE_HW,
                    seed: int = 0) -> TeacherMetrics:
    """Score one teacher (a disparity predictor) on the first `num_images` eval renders, every
    map through the evaluation runner's `score_sample` (the protocol of `depthdistill eval`)."""
    from depthdistill.evaluation.rendered import RenderedWorldDataset
    from depthdistill.evaluation.runner import mean_and_se, score_sample

    height, width = image_hw
    top, left, ch, cw = height // 4, width // 4, height // 2, width // 2
    data = RenderedWorldDataset("eval", num_images, seed=seed, image_hw=image_hw)
    rows: dict[str, list[float]] = {}
    for s in data:
        rgb = torch.from_numpy(s.rgb).permute(2, 0, 1)[None].float() / 255.0  # [1, 3, H, W]
        whole = predict(rgb).cpu()[0].numpy()  # [H, W]: the teacher resizes to its input and back
        crop = EvalSample(key=s.key, rgb=s.rgb[top:top + ch, left:left + cw], depth=s.depth[top:top + ch, left:left + cw],
                          mask=s.mask[top:top + ch, left:left + cw], thin=s.thin[top:top + ch, left:left + cw])
        scores = {
            "": score_sample(whole, s, "disparity", data.depth_range),
            "local": score_sample(predict(rgb[:, :, top:top + ch, left:left + cw]).cpu()[0].numpy(), crop,
                                  "disparity", data.depth_range),  # the teacher fed the crop
            "global": score_sample(whole[top:top + ch, left:left + cw], crop, "disparity", data.depth_range),
        }
        for view, sc in scores.items():
            for metric, value in (sc or {}).items():
                rows.setdefault(_field(metric, view), []).append(value)
    stats = {k: mean_and_se(v) for k, v in rows.items()}
    fields = {k: stats[k][0] for k in TeacherMetrics.__dataclass_fields__ if k in stats}
    return TeacherMetrics(images=num_images, **fields, abs_rel_se=stats["abs_rel"][1], delta1_se=stats["delta1"][1])


def _field(metric: str, view: str) -> str:
    """score_sample's metric name + the view -> the TeacherMetrics field (crop_local_abs_rel, ...)."""
    if not view:
        return metric
    if metric == "edge_f1":
        return f"edge_f1_{view}"
    if metric == "thin_abs_rel":
        return f"thin_{view}_abs_rel"
    return f"crop_{view}_{metric}"


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
        "found within one pixel, on maps pooled to a ~96-px short side (`depth.edge_pool`).", "",
    ]
    (folder / "README.md").write_text("\n".join(lines))
