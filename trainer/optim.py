"""Optimizer, learning-rate schedule and mixed precision for the student.

- AdamW with two **named** parameter groups (DAv2 convention): `encoder` (the DINOv2
  backbone, `train.lr_encoder`) and `decoder` (neck + head, `train.lr_decoder`).
- The learning rate is a pure function of the step (nanoGPT `get_lr`): linear warm-up from
  0 over `warmup_steps`, then poly decay `(1 - t/T)^power` to 0 at `steps`. Each group's
  lr is its base lr times that factor, so the encoder/decoder ratio never changes.
- AMP: `auto` = bf16 autocast on CUDA, off on CPU; fp16 uses a GradScaler.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from depthdistill.config import TrainConfig

logger = logging.getLogger(__name__)


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, power: float) -> float:
    """Multiplier of the base lr at optimizer step `step` (0-based): warm-up then poly decay."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, step / max(1, total_steps))
    return (1.0 - progress) ** power


def param_groups(model, cfg: "TrainConfig") -> list[dict]:
    """Named AdamW groups: backbone -> `encoder`, everything else -> `decoder`."""
    encoder, decoder = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (encoder if name.startswith("backbone.") else decoder).append(p)
    if not encoder or not decoder:
        raise ValueError("train.student: the model needs a `backbone` and a head to form the "
                         f"encoder/decoder groups (found {len(encoder)} / {len(decoder)} tensors)")
    return [
        {"name": "encoder", "params": encoder, "lr": cfg.lr_encoder, "base_lr": cfg.lr_encoder},
        {"name": "decoder", "params": decoder, "lr": cfg.lr_decoder, "base_lr": cfg.lr_decoder},
    ]


def build_optimizer(model, cfg: "TrainConfig") -> "torch.optim.Optimizer":
    import torch

    return torch.optim.AdamW(param_groups(model, cfg), weight_decay=cfg.weight_decay, betas=(0.9, 0.999))


class PolyWarmupSchedule:
    """Sets each group's lr from the step; its state is the step only (lr is recomputed)."""

    def __init__(self, optimizer, cfg: "TrainConfig"):
        self.optimizer = optimizer
        self.warmup_steps = cfg.warmup_steps
        self.total_steps = cfg.steps
        self.power = cfg.poly_power
        self.step_num = 0

    def factor(self, step: int) -> float:
        return lr_factor(step, warmup_steps=self.warmup_steps, total_steps=self.total_steps, power=self.power)

    def apply(self, step: int) -> dict[str, float]:
        """Set the lrs for optimizer step `step`; returns {group name: lr} for logging."""
        self.step_num = step
        f = self.factor(step)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * f
        return {g["name"]: g["lr"] for g in self.optimizer.param_groups}

    def state_dict(self) -> dict:
        return {"kind": "poly_warmup", "step": self.step_num, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps, "power": self.power}

    def load_state_dict(self, state: dict) -> None:
        self.step_num = int(state["step"])


def amp_dtype(amp: str, device: "torch.device"):
    """The autocast dtype for `train.amp` on `device`, or None for full fp32."""
    import torch

    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp in ("auto", "bf16"):
        return torch.bfloat16
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError("train.amp: fp16 needs a CUDA device; use off or bf16 on CPU")
        return torch.float16
    raise ValueError(f"train.amp: got {amp!r}; use auto, off, bf16 or fp16")


def grad_scaler(dtype, device: "torch.device"):
    """A GradScaler enabled only for fp16 (bf16 and fp32 need none)."""
    import torch

    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def clip_and_norm(model, max_norm: float) -> float:
    """Clip the global grad norm (0 = no clipping) and return the pre-clip norm."""
    import torch

    params = [p for p in model.parameters() if p.grad is not None]
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return float(torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params])))
