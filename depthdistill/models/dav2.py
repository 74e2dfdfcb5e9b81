"""Depth Anything V2 (and any transformers depth-estimation model) as a Teacher.

`AutoModelForDepthEstimation.from_pretrained` accepts DAv2 S/B/L, Distill Any Depth's own
releases, DPT/MiDaS and the embedded tiny DAv2. Preprocessing is done in torch on the device
(no per-image PIL processor): resize to the fixed square input size, normalise with the
model's image mean/std (its preprocessor_config.json when present, else ImageNet's).
The output space comes from the config: `depth_estimation_type == "metric"` -> depth (metres),
anything else -> relative disparity.

Encoder features for the trainer's feature-alignment loss: `capture_neck_inputs(model)` hooks
the neck and catches the backbone's layer-normed taps at `out_indices` (each [B, 1 + N, C],
CLS first; the last one is the encoder's final tokens) during the ordinary forward pass.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import torch

from depthdistill.models.base import Teacher, precision_dtype
from depthdistill.models.fingerprint import config_digest, hash_folder_weights, hash_state_dict, teacher_fingerprint
from depthdistill.models.hub import from_pretrained_checked, is_local

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_image_mean_std(id_or_path: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """image_mean / image_std from the model's preprocessor_config.json, else ImageNet's."""
    config_file = Path(id_or_path, "preprocessor_config.json")
    if not is_local(id_or_path):
        try:
            from huggingface_hub import hf_hub_download

            config_file = Path(hf_hub_download(id_or_path, "preprocessor_config.json", local_files_only=True))
        except Exception:  # noqa: BLE001 - no processor file cached: DAv2 convention
            return IMAGENET_MEAN, IMAGENET_STD
    if not config_file.is_file():
        return IMAGENET_MEAN, IMAGENET_STD
    data = json.loads(config_file.read_text())
    return tuple(data.get("image_mean", IMAGENET_MEAN)), tuple(data.get("image_std", IMAGENET_STD))


def space_of_config(config) -> str:
    """'depth' for metric depth models, 'disparity' for relative ones (DAv2, DPT/MiDaS)."""
    return "depth" if getattr(config, "depth_estimation_type", "relative") == "metric" else "disparity"


def dav2_fingerprint(weights_digest: str, precision: str, input_size: int, image_mean, image_std,
                     kind: str = "dav2") -> str:
    """The fingerprint of a transformers depth teacher (also computed without loading it)."""
    extra = {"mean": repr(tuple(float(m) for m in image_mean)), "std": repr(tuple(float(s) for s in image_std))}
    return teacher_fingerprint(kind, weights_digest, precision, input_size, extra)


def folder_space(folder: str | Path) -> str:
    """The output space of a saved model folder, read from its config.json (no model load)."""
    config_file = Path(folder, "config.json")
    if not config_file.is_file():
        raise ValueError(f"{folder}: no config.json, so this is not a folder written by save_pretrained; "
                         "point the teacher's model at such a folder")
    data = json.loads(config_file.read_text())
    return "depth" if data.get("depth_estimation_type", "relative") == "metric" else "disparity"


@contextlib.contextmanager
def capture_neck_inputs(model):
    """Collect the neck's input token maps of every forward pass inside the block.

    Yields a list that receives, per forward, the list of tensors [B, 1 + N, C] the backbone
    hands to the neck (layer-normed hidden states at out_indices; index -1 = final tokens).
    """
    captured: list[list[torch.Tensor]] = []

    def hook(_module, args, kwargs):
        hidden_states = args[0] if args else kwargs["hidden_states"]
        captured.append([h.detach() for h in hidden_states])

    handle = model.neck.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield captured
    finally:
        handle.remove()


class DepthAnythingTeacher(Teacher):
    """A transformers depth-estimation model at a fixed square input size."""

    kind = "dav2"

    def __init__(self, model, *, name: str, input_size: int, precision: str, device, weights_digest: str,
                 image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, input_multiple: int | None = None) -> None:
        patch = int(getattr(model.config, "patch_size", 14) or 14)
        super().__init__(name=name, space=space_of_config(model.config), input_multiple=input_multiple or patch,
                         input_size=input_size, precision=precision, device=device)
        if input_size % patch:
            raise ValueError(f"teachers[{name}].input_size: got {input_size}; this model has patch size {patch}, "
                             f"use a multiple of {patch}")
        self.model = model.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        self.mean = torch.tensor(image_mean, device=self.device).view(1, 3, 1, 1)  # [1, 3, 1, 1]
        self.std = torch.tensor(image_std, device=self.device).view(1, 3, 1, 1)  # [1, 3, 1, 1]
        self.fingerprint = dav2_fingerprint(weights_digest, precision, input_size, image_mean, image_std, self.kind)

    @classmethod
    def from_pretrained(cls, id_or_path: str, *, name: str = "dav2", input_size: int = 112,
                        precision: str = "fp32", device="cpu", input_multiple: int | None = None):
        """Load any HF depth-estimation model (folder or hub id) as a teacher on `device`."""
        from transformers import AutoModelForDepthEstimation

        model = from_pretrained_checked(AutoModelForDepthEstimation, id_or_path, dtype=precision_dtype(precision, name))
        if is_local(id_or_path):
            digest = hash_folder_weights(id_or_path)
        else:
            digest = hash_state_dict(model.state_dict()) + config_digest(model.config.to_dict())
        mean, std = read_image_mean_std(id_or_path)
        return cls(model, name=name, input_size=input_size, precision=precision, device=device,
                   weights_digest=digest, image_mean=mean, image_std=std, input_multiple=input_multiple)

    @classmethod
    def load(cls, cfg, path: str, device) -> "DepthAnythingTeacher":
        return cls.from_pretrained(path, name=cfg.name, input_size=cfg.input_size, precision=cfg.precision,
                                   device=device, input_multiple=cfg.input_multiple or None)

    @classmethod
    def fingerprint_folder(cls, path: str, cfg) -> tuple[str, str]:
        precision_dtype(cfg.precision, cfg.name)
        mean, std = read_image_mean_std(path)
        return (dav2_fingerprint(hash_folder_weights(path), cfg.precision, cfg.input_size, mean, std, cls.kind),
                folder_space(path))

    def _forward(self, rgb01: torch.Tensor, features: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        pixel_values = ((rgb01 - self.mean) / self.std).to(self.dtype)  # [B, 3, S, S]
        with capture_neck_inputs(self.model) if features else contextlib.nullcontext([]) as captured:
            depth = self.model(pixel_values=pixel_values).predicted_depth  # [B, S, S]
        feats = [f.float() for f in captured[0]] if captured else []  # each [B, 1 + N, C]
        return depth, feats

    def encoder_features(self, images) -> torch.Tensor:
        """The encoder's final tokens for a batch: float32 [B, N, C] (CLS dropped), N = (S/14)^2."""
        return self.infer(images, features=True).features[-1][:, 1:]
