"""DepthPredictor: any model id -> relative depth maps at each image's own resolution.

A model is named by one string:
- `teacher:NAME`      a teacher of the config (its kind, weights, precision, input size);
- `embedded://NAME`   a tiny model shipped in depthdistill/assets (made by `make teachers`);
- a local folder      a save_pretrained folder: a trained student, a DAv2 / DPT checkpoint, or a
                      GenPercept folder (it has `unet*/` and `vae/` subfolders);
- a hub id            e.g. depth-anything/Depth-Anything-V2-Large-hf (GenPercept when the id
                      names it);
- `baseline://constant` / `baseline://ramp`  trivial references that look at no pixel: a
                      constant map, and "lower rows are nearer" (disparity growing linearly
                      from the top row to the bottom one). A model that does not beat them on
                      a data set knows nothing about its images.
Loading goes through `depthdistill.models.load_teacher`, the one model-loading path;
`make_predictor(spec, ...)` picks the baseline or the model predictor.

Any aspect ratio: a teacher runs at one square input side (`input_size`, a multiple of its
patch: 14 DAv2, 8 GenPercept). Each image is resized to that square (antialiased bilinear,
`views.resize`, the same routine the teachers use), so images of any size share a batch, and
each map is resized back to its image's resolution with the same bilinear routine. The aspect
ratio is squashed and restored, as the teachers do for label views.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

    from depthdistill.config import StagesConfig, TeacherConfig

logger = logging.getLogger(__name__)

def resolve_model(spec: str, config: "StagesConfig", input_size: int | None = None) -> "TeacherConfig":
    """The TeacherConfig that loads `spec`; raises ValueError naming the spec and the fix."""
    from depthdistill.config import DEFAULT_INPUT_MULTIPLE, TeacherConfig
    from depthdistill.models.kinds import guess_kind

    if spec.startswith("teacher:"):
        cfg = config.teacher(spec.split(":", 1)[1])
    else:
        match = [t for t in config.teachers if t.model == spec]
        if match:
            cfg = match[0]
        else:
            kind = guess_kind(spec)
            cfg = TeacherConfig(name=re.sub(r"[^A-Za-z0-9_-]+", "_", spec).strip("_")[-60:] or "model",
                                kind=kind, model=spec, input_size=_default_size(spec, kind, config))
    if input_size is not None:
        multiple = cfg.input_multiple or DEFAULT_INPUT_MULTIPLE[cfg.kind]
        if input_size % multiple:
            raise ValueError(f"--input-size {input_size}: must be a multiple of {multiple} for {spec} ({cfg.kind})")
        cfg = dataclasses.replace(cfg, input_size=input_size)
    return cfg


def _default_size(spec: str, kind: str, config: "StagesConfig") -> int:
    if spec.startswith("embedded://") or Path(spec).is_dir():
        return config.views.view_size  # the size our students and embedded teachers are trained at
    from depthdistill.models.kinds import KINDS

    return KINDS[kind].hub_input_size  # hub checkpoints: DAv2's processor 518, GenPercept 768, DPT 384


BASELINE_SCHEME = "baseline://"
BASELINES = ("constant", "ramp")


class BaselinePredictor:
    """A trivial reference with DepthPredictor's interface: maps from the image size alone."""

    def __init__(self, spec: str):
        kind = spec[len(BASELINE_SCHEME):]
        if kind not in BASELINES:
            raise ValueError(f"--model {spec}: unknown baseline; use one of "
                             + ", ".join(BASELINE_SCHEME + b for b in BASELINES))
        self.spec, self.kind, self.space = spec, kind, "disparity"

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = []
        for img in images:
            h, w = img.shape[:2]
            if self.kind == "constant":
                out.append(np.ones((h, w), np.float32))
            else:  # disparity 1 .. 2 from the top row to the bottom one: lower rows are nearer
                rows = np.linspace(1.0, 2.0, h, dtype=np.float32)[:, None]  # [H, 1]
                out.append(np.ascontiguousarray(np.broadcast_to(rows, (h, w))))
        return out


def make_predictor(spec: str, config: "StagesConfig", **kwargs) -> "DepthPredictor | BaselinePredictor":
    """The predictor of a --model string: a baseline:// reference or a model (DepthPredictor)."""
    if spec.startswith(BASELINE_SCHEME):
        return BaselinePredictor(spec)
    return DepthPredictor(spec, config, **kwargs)


class DepthPredictor:
    """Wraps one model; `predict(images)` gives float32 maps [H, W] at each image's size."""

    def __init__(self, spec: str, config: "StagesConfig", *, device: str = "cpu",
                 input_size: int | None = None, batch_size: int | None = None):
        from depthdistill.models import load_teacher

        self.spec = spec
        self.cfg = resolve_model(spec, config, input_size)
        self.device = device
        self.batch_size = batch_size or self.cfg.batch_size
        self.model = load_teacher(self.cfg, device=device)
        self.space: str = self.model.space  # "disparity" | "depth"
        self.input_size = self.cfg.input_size
        logger.info("loaded %s (%s, %s space) at input %d", spec, self.cfg.kind, self.space, self.input_size)

    @classmethod
    def wrap(cls, spec: str, model, *, input_size: int, batch_size: int = 8) -> "DepthPredictor":
        """A predictor around a model already in memory (`model.predict(uint8 [B, S, S, 3]) ->
        [B, S, S]` and `model.space`), e.g. `InMemoryStudent`: the trainer's periodic eval."""
        self = cls.__new__(cls)
        self.spec, self.cfg, self.device, self.batch_size = spec, None, "", batch_size
        self.model, self.space, self.input_size = model, model.space, input_size
        return self

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """uint8 [H, W, 3] images (any sizes) -> float32 [H, W] raw model outputs."""
        import torch

        from depthdistill.views import resize

        side = (self.input_size, self.input_size)
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start: start + self.batch_size]
            batch = np.stack([resize(img, side) for img in chunk])  # uint8 [B, S, S, 3]
            with torch.inference_mode():
                pred = self.model.predict(batch).float()  # [B, S, S]
            for img, p in zip(chunk, pred):
                full = resize(p[None], img.shape[:2])  # [1, H, W] bilinear back to the image
                out.append(full[0].cpu().numpy().astype(np.float32))
        return out


class InMemoryStudent:
    """A DAv2-class student being trained, seen as a model `DepthPredictor.wrap` can run: its
    exported folder would load as a teacher with exactly this preprocessing (ImageNet mean/std)."""

    space = "disparity"

    def __init__(self, model, device):
        self.model, self.device = model, device

    def predict(self, batch) -> "torch.Tensor":
        """uint8 [B, S, S, 3] -> float32 disparity [B, S, S]."""
        import torch

        from depthdistill.models.student import normalize_images

        x = torch.as_tensor(batch).to(self.device).permute(0, 3, 1, 2)  # [B, 3, S, S] uint8
        with torch.no_grad():
            return self.model(pixel_values=normalize_images(x)).predicted_depth.float()  # [B, S, S]
