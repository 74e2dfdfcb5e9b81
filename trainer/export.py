"""Export the student as a plain transformers folder.

`DIR/` gets `config.json` + `model.safetensors` (`save_pretrained`), a `DPTImageProcessor`
config (`preprocessor_config.json`: resize to the student's input size keeping the aspect
ratio, sides multiples of 14, bicubic, ImageNet mean/std, as the DAv2 hub processors do), and
`depthdistill.json` recording the output space (affine-invariant disparity) and the training
config. `transformers.pipeline("depth-estimation", model=DIR)` loads it with no code from
this project.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def image_processor(input_size: int):
    """The DAv2-style processor for a student trained at `input_size` (multiple of 14)."""
    from transformers import DPTImageProcessor

    from depthdistill.models.student import IMAGENET_MEAN, IMAGENET_STD

    return DPTImageProcessor(do_resize=True, size={"height": input_size, "width": input_size},
                             keep_aspect_ratio=True, ensure_multiple_of=14, resample=3,  # PIL bicubic
                             do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                             image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD), do_pad=False)


def export_student(model, out: str | Path, *, input_size: int, config=None) -> Path:
    """save_pretrained the student (+ processor + space record) into `out`; returns `out`.
    `input_size` (views.view_size) is a multiple of the student's patch: config.py checks it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    image_processor(input_size).save_pretrained(out)
    record = {"space": "disparity", "invariance": "affine", "input_size": input_size,
              "train_config": config.to_dict() if config is not None else None}
    (out / "depthdistill.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    logger.info("exported student to %s", out)
    return out
