"""The one Teacher interface every teacher implements, and its typed output.

A teacher runs at one fixed square input size (112 embedded, 518-560 for the real ones) on a
device it is given. `predict` takes a batch of images, does all preprocessing in torch on that
device (uint8 -> float, resize to the input size with `depthdistill.views.resize` when the
batch is not already at it), runs the model in the configured precision and brings the maps
back to the batch's H x W with the same resize. Outputs are float32 and stay in the teacher's
own space (`disparity` or `depth`); the trainer converts.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

logger = logging.getLogger(__name__)

from depthdistill.config import SPACES  # noqa: E402 - the one list, in config.py

PRECISION_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class TeacherOutput:
    """What a teacher returns for a batch.

    depth: float32 [B, H, W] at the batch's H x W, in `space` ("disparity": larger = nearer,
        affine-invariant, >= 0 for DAv2 and in [0, 1] for GenPercept; "depth": metres for
        metric models, [0, 1] for GenPercept's depth UNet).
    features: optional list of token/feature tensors at the teacher's input size (DAv2: the
        neck's inputs, each [B, 1 + N, C] with the CLS token first).
    """

    depth: torch.Tensor
    space: str
    features: list[torch.Tensor] = field(default_factory=list)


def precision_dtype(precision: str, name: str = "?") -> torch.dtype:
    """torch dtype of a precision name; ValueError naming the teacher's key otherwise."""
    if precision not in PRECISION_DTYPES:
        raise ValueError(f"teachers[{name}].precision: got {precision!r}; use one of {tuple(PRECISION_DTYPES)}")
    return PRECISION_DTYPES[precision]


def to_float_images(images, device: torch.device | str) -> torch.Tensor:
    """uint8 [B, H, W, 3] (numpy or torch) or float [B, 3, H, W] in [0, 1] -> float32 [B, 3, H, W].

    The conversion happens on `device` (uint8 is moved first: 4x fewer bytes to copy).
    """
    tensor = images if isinstance(images, torch.Tensor) else torch.as_tensor(images)
    if tensor.ndim == 3:
        raise ValueError(f"teacher input has shape {tuple(tensor.shape)}; pass a batch [B, H, W, 3] "
                         "(use images[None] for one image)")
    if tensor.ndim != 4:
        raise ValueError(f"teacher input has shape {tuple(tensor.shape)}; expected uint8 [B, H, W, 3] "
                         "or float [B, 3, H, W]")
    tensor = tensor.to(device, non_blocking=True)
    if tensor.dtype == torch.uint8:
        if tensor.shape[-1] != 3:
            raise ValueError(f"uint8 teacher input has shape {tuple(tensor.shape)}; expected [B, H, W, 3] RGB")
        return tensor.permute(0, 3, 1, 2).float().div_(255.0)  # [B, 3, H, W]
    if not tensor.is_floating_point() or tensor.shape[1] != 3:
        raise ValueError(f"teacher input has dtype {tensor.dtype} and shape {tuple(tensor.shape)}; "
                         "expected uint8 [B, H, W, 3] or float [B, 3, H, W] in [0, 1]")
    return tensor.float()  # [B, 3, H, W]


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The project's one resize routine (antialiased bilinear), skipped when already at `size`."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    from depthdistill.views import resize

    return resize(x, size)


class Teacher(ABC):
    """A frozen depth model with a fixed input size, precision and device.

    Attributes: name, space ("disparity" | "depth"), input_multiple (14 DAv2, 8 GenPercept),
    input_size, precision ("fp32" | "fp16" | "bf16"), device, fingerprint (16 hex chars).
    """

    kind: str  # the key of this class in models.kinds.KINDS
    name: str
    space: str
    input_multiple: int
    input_size: int
    precision: str
    device: torch.device
    fingerprint: str

    def __init__(self, *, name: str, space: str, input_multiple: int, input_size: int, precision: str,
                 device: torch.device | str) -> None:
        if space not in SPACES:
            raise ValueError(f"teacher {name!r}: output space {space!r} is unknown; use one of {SPACES}")
        precision_dtype(precision, name)
        if input_size < input_multiple or input_size % input_multiple:
            raise ValueError(f"teachers[{name}].input_size: got {input_size}; use a multiple of {input_multiple}")
        self.name, self.space = name, space
        self.input_multiple, self.input_size, self.precision = input_multiple, input_size, precision
        self.device = torch.device(device)
        self.fingerprint = ""

    @classmethod
    @abstractmethod
    def load(cls, cfg, path: str, device) -> "Teacher":
        """The teacher a `TeacherConfig` describes, from a resolved folder or hub id, on `device`."""

    @classmethod
    @abstractmethod
    def fingerprint_folder(cls, path: str, cfg) -> tuple[str, str]:
        """(fingerprint, space) of a local folder, equal to `load(...).fingerprint`, from the
        weight files alone (no model built)."""

    @property
    def dtype(self) -> torch.dtype:
        return PRECISION_DTYPES[self.precision]

    @abstractmethod
    def _forward(self, rgb01: torch.Tensor, features: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """float32 [B, 3, S, S] in [0, 1] on the device -> (maps [B, S, S] any float dtype, features)."""

    @torch.no_grad()  # not inference_mode: outputs may be saved by the trainer's autograd graph
    def infer(self, images, features: bool = False) -> TeacherOutput:
        """Run the teacher on a batch; maps come back float32 at the batch's H x W."""
        rgb01 = to_float_images(images, self.device)  # [B, 3, H, W]
        height, width = rgb01.shape[-2:]
        side = (self.input_size, self.input_size)
        maps, feats = self._forward(_resize(rgb01, side), features)  # [B, S, S]
        maps = _resize(maps.float(), (height, width))  # [B, H, W]
        return TeacherOutput(depth=maps.contiguous(), space=self.space, features=feats)

    def predict(self, images) -> torch.Tensor:
        """float32 [B, H, W] maps in the teacher's space for uint8 [B,H,W,3] or float [B,3,H,W] images."""
        return self.infer(images).depth

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, space={self.space!r}, input_size={self.input_size}, "
                f"precision={self.precision!r}, device={str(self.device)!r}, fingerprint={self.fingerprint!r})")
