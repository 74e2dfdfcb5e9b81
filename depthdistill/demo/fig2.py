"""The paper's Fig. 2 per teacher: least-squares alignment on the whole image vs on the crop.

On the central (H/2, W/2) crop of world eval renders, one prediction of the whole image is
(a) aligned to ground-truth disparity over the whole image, then cropped (global LS), or
(b) aligned over the crop only (local LS); metrics on the crop. The teacher cards'
`measure_teacher` (teacher fed the crop vs the whole image) is measured beside it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from depthdistill.config import WORLD_IMAGE_HW

logger = logging.getLogger(__name__)


def ls_crop_alignment(predict, num_images: int, seed: int = 0, image_hw: tuple[int, int] = WORLD_IMAGE_HW) -> dict:
    """Mean AbsRel / delta1 on the central crop under global vs local least-squares alignment."""
    import torch

    from depthdistill.depth import abs_rel, aligned_depth, delta1
    from depthdistill.evaluation.rendered import RenderedWorldDataset

    h, w = image_hw
    top, left = h // 4, w // 4
    crop = (slice(None), slice(top, top + h // 2), slice(left, left + w // 2))
    sums = {f"{k}_{m}": 0.0 for k in ("global_ls", "local_ls") for m in ("abs_rel", "delta1")}
    data = RenderedWorldDataset("eval", num_images, seed=seed, image_hw=image_hw)
    for s in data:
        rgb = torch.from_numpy(s.rgb).permute(2, 0, 1)[None].float() / 255.0  # [1, 3, H, W]
        gt, mask = torch.from_numpy(s.depth)[None], torch.from_numpy(s.mask)[None]  # [1, H, W]
        with torch.inference_mode():
            disp = predict(rgb).float()  # [1, H, W]
        whole, *_ = aligned_depth(disp, gt, mask, "disparity", data.depth_range)  # fitted on the whole image
        local, *_ = aligned_depth(disp[crop], gt[crop], mask[crop], "disparity", data.depth_range)  # on the crop
        for name, depth in (("global_ls", whole[crop]), ("local_ls", local)):  # each [1, h, w]
            sums[f"{name}_abs_rel"] += float(abs_rel(depth, gt[crop].double(), mask[crop])[0]) / num_images
            sums[f"{name}_delta1"] += float(delta1(depth, gt[crop].double(), mask[crop])[0]) / num_images
    return sums


def measure_fig2(config, num_images: int, seeds: int) -> dict[str, list[dict]]:
    """teacher name -> one row per world seed: LS alignment numbers + the card's measure_teacher."""
    from depthdistill.models import load_teacher
    from depthdistill.models.teacher_card import measure_teacher

    out: dict[str, list[dict]] = {}
    for tcfg in config.teachers:
        teacher = load_teacher(tcfg, device="cpu")
        rows = []
        for seed in range(seeds):
            hw = tuple(config.images.image_size)
            row = {"seed": seed, **ls_crop_alignment(teacher.predict, num_images, seed, image_hw=hw)}
            card = asdict(measure_teacher(teacher.predict, num_images, image_hw=hw, seed=seed))
            row.update({f"card_{k}": v for k, v in card.items()})
            rows.append(row)
            logger.info("fig2 %s seed %d: %s", tcfg.name, seed, row)
        out[tcfg.name] = rows
    return out
