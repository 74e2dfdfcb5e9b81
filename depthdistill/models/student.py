"""Student builders: a transformers `DepthAnythingForDepthEstimation` ready to distill.

A student is named by `train.student`: `tiny | small | base | large` (architectures from
`models/configs.py`, random weights) or any `from_pretrained` id / folder / `embedded://NAME`
(resolved by `models.hub.resolve_model_path`, as teachers are). `train.init`:

- `random`: every weight random (for a named id: its architecture, not its weights);
- `encoder_only`: the DINOv2 backbone copied from `train.init_from`, neck and head random
  (the paper's Table 5 setting);
- `full`: every weight copied from `train.init_from` (or from the named id itself).

**Dead-ReLU guard.** DAv2's relative head ends `conv3 -> ReLU`. At random init about half of
the outputs are negative, and a shift-invariant loss never pushes the level of the map up, so
a freshly initialised head can sit in the ReLU's flat region and never recover (all-zero
output, zero gradient). Whenever the head is random we set `head.conv3.bias` to
`HEAD_BIAS_INIT` (positive): every output starts on the linear side of the ReLU, and the
normalized losses are unaffected by the offset. The trainer also logs the median output so a
collapse (median -> 0) or an upward scale drift is visible.

torch / transformers are imported inside the functions (CLI start-up stays fast).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from depthdistill.models.configs import DAV2_SIZES

logger = logging.getLogger(__name__)

HEAD_BIAS_INIT = 1.0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _resolve(spec: str, key: str) -> str:
    """embedded://NAME -> its folder; a folder -> its path; a hub id -> itself (ValueError naming `key`)."""
    from depthdistill.models.hub import resolve_model_path

    try:
        return resolve_model_path(spec)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


def _load_pretrained(spec: str, key: str = "train.init_from"):
    """`from_pretrained` of a DAv2-class depth model (hub id, folder, embedded://); clear error if absent."""
    from transformers import AutoModelForDepthEstimation

    path = _resolve(spec, key)
    local = Path(path).is_dir()
    try:
        return AutoModelForDepthEstimation.from_pretrained(path, local_files_only=local)
    except OSError as exc:
        raise ValueError(f"{key}: cannot load {spec!r} ({exc}); give a save_pretrained folder, "
                         "embedded://NAME or a hub id that is in the local cache") from None


def _architecture(student: str):
    """(config, pretrained model or None) for a student name."""
    from transformers import AutoConfig

    from depthdistill.models.configs import dav2_config

    if student in DAV2_SIZES:
        return dav2_config(student), None
    if student.startswith("embedded://") or Path(student).is_dir() or "/" in student:
        path = _resolve(student, "train.student")
        try:
            return AutoConfig.from_pretrained(path, local_files_only=Path(path).is_dir()), None
        except OSError as exc:
            raise ValueError(f"train.student: {student!r} is not a tiny/small/base/large size nor a "
                             f"loadable model folder or hub id ({exc})") from None
    raise ValueError(f"train.student: got {student!r}; use one of {', '.join(DAV2_SIZES)}, a "
                     "save_pretrained folder, embedded://NAME or a hub id")


def reinit_random_parts(model) -> None:
    """Give the randomly initialised neck and head PyTorch's default (Kaiming-uniform) conv and
    linear init. transformers initialises them at std 0.02, under which the signal vanishes
    through the DPT neck: a fresh tiny student's output varies by ~1e-7 around its bias, below
    the normalizations' MAD floor, and a scale-invariant loss then has no usable gradient (a
    global-SSI tiny student stayed a constant map for 3,000 steps). With the default init it
    varies by ~1e-2 and trains."""
    import torch

    for part in (model.neck, model.head):
        for module in part.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                module.reset_parameters()


def guard_head(model) -> None:
    """Put the last conv's bias on the live side of the head's final ReLU (see module doc)."""
    import torch

    conv = getattr(getattr(model, "head", None), "conv3", None)
    if conv is None or conv.bias is None:
        logger.warning("student has no head.conv3 bias; dead-ReLU guard not applied")
        return
    with torch.no_grad():
        conv.bias.fill_(HEAD_BIAS_INIT)


# Parameters DAv2's forward never uses (the deepest fusion layer has no residual input; the
# mask token is for masked-image pretraining). Frozen so DDP does not wait for their gradients.
UNUSED_PARAMETERS = ("backbone.embeddings.mask_token", "neck.fusion_stage.layers.0.residual_layer1.")


def freeze_unused(model):
    for name, p in model.named_parameters():
        if name.startswith(UNUSED_PARAMETERS):
            p.requires_grad_(False)
    return model


def build_student(student: str = "tiny", init: str = "random", init_from: str = "", *, seed: int = 0):
    """A `DepthAnythingForDepthEstimation` student in train mode (seeded random parts)."""
    import torch
    from transformers import AutoModelForDepthEstimation

    if init not in ("random", "encoder_only", "full"):
        raise ValueError(f"train.init: got {init!r}; use random, encoder_only or full")
    config, _ = _architecture(student)
    torch.manual_seed(seed)
    model = AutoModelForDepthEstimation.from_config(config)
    source = init_from or (student if student not in DAV2_SIZES else "")
    if init != "random":
        if not source:
            raise ValueError(f"train.init_from: init {init!r} needs pretrained weights; set train.init_from")
        pretrained = _load_pretrained(source)
        part_src = pretrained if init == "full" else pretrained.backbone
        part_dst = model if init == "full" else model.backbone
        try:
            part_dst.load_state_dict(part_src.state_dict(), strict=True)
        except RuntimeError as exc:
            raise ValueError(f"train.init_from: {source!r} does not match student {student!r} "
                             f"({str(exc).splitlines()[0]}); pick a matching size") from None
        logger.info("student %s: %s weights from %s", student, init, source)
    if init != "full":
        reinit_random_parts(model)
        guard_head(model)
    return freeze_unused(model).train()


def model_args(model) -> dict[str, Any]:
    """What a checkpoint needs to rebuild the architecture (nanoGPT's `model_args`)."""
    return {"model_type": model.config.model_type, "config": model.config.to_dict()}


def model_from_args(args: dict[str, Any]):
    """Rebuild the (randomly initialised) architecture saved by `model_args`."""
    from transformers import AutoConfig, AutoModelForDepthEstimation

    cfg = dict(args["config"])
    cfg.pop("model_type", None)
    config = AutoConfig.for_model(args["model_type"], **cfg)
    return freeze_unused(AutoModelForDepthEstimation.from_config(config))


def normalize_images(images):
    """uint8 [B, 3, H, W] (or float in [0, 1]) -> ImageNet-normalised float32 [B, 3, H, W]."""
    import torch

    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()  # [B, 3, H, W]
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def _tokens_module():
    import torch

    class StudentWithTokens(torch.nn.Module):
        """One pass: (disparity [B, H, W], final encoder patch tokens [B, N, C]).

        The final tokens are the backbone's last `out_indices` tap (layernormed), CLS dropped.
        Wrap this module (not the bare model) in DDP so gradient sync sees the forward.
        """

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):  # [B, 3, H, W]
            m = self.model
            feats = m.backbone.forward_with_filtered_kwargs(pixel_values).feature_maps  # L x [B, 1+N, C]
            ph, pw = pixel_values.shape[-2] // m.config.patch_size, pixel_values.shape[-1] // m.config.patch_size
            hidden = m.neck(list(feats), ph, pw)
            depth = m.head(hidden, ph, pw)  # [B, H, W]
            return depth, feats[-1][:, 1:]  # [B, H, W], [B, N, C]

    return StudentWithTokens


def with_tokens(model):
    """Wrap a DAv2 model so forward returns (depth, final tokens)."""
    return _tokens_module()(model)


def _frozen(backbone):
    backbone = backbone.eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone


def frozen_encoder(model):
    """A frozen deep copy of the student's current backbone."""
    import copy

    return _frozen(copy.deepcopy(model.backbone))


def feature_reference_source(reference: str, init: str, init_from: str, student: str) -> str:
    """The model whose encoder L_feat aligns to, or "" (L_feat off), for `train.feat_reference`:
    `auto` = the pretrained weights the student starts from (`init_from`, or the named student for
    full / encoder_only init), off for a random student (a random encoder is no reference);
    `off`; or a model id / folder / embedded://NAME."""
    if reference == "off":
        return ""
    if reference != "auto":
        return reference
    if init == "random":
        return ""
    return init_from or student


def reference_encoder(source: str, model):
    """The frozen backbone of `source` (train.feat_reference), checked against the student's
    token width; ValueError naming the key and the fix otherwise."""
    backbone = _load_pretrained(source, "train.feat_reference").backbone
    ours = getattr(model.config.backbone_config, "hidden_size", None)
    theirs = getattr(backbone.config, "hidden_size", None)
    if ours != theirs:
        raise ValueError(f"train.feat_reference: {source!r} has encoder width {theirs}, the student {ours}; "
                         "L_feat compares tokens one to one, so use a reference of the student's size "
                         "(or `off`)")
    return _frozen(backbone)


def encoder_tokens(encoder, pixel_values):
    """Final patch tokens [B, N, C] of a (frozen) backbone, without gradient."""
    import torch

    with torch.no_grad():
        return encoder.forward_with_filtered_kwargs(pixel_values).feature_maps[-1][:, 1:]  # [B, N, C]
