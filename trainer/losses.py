"""The distillation loss (METHOD.md, Eq. 9), built on `depthdistill.depth`.

    L = w_sc * L_sc + w_lg * L_lg + w_feat * L_feat + w_grad * L_grad

- `SharedContextLoss` (L_sc): student vs teacher on the same global view, L_Dis with the
  configured normalization (`train.norm_sc`, hybrid by default).
- `LocalGlobalLoss` (L_lg): the student's view prediction cropped to each patch footprint
  (`views.crop_footprint`) against the teacher's patch label resized to that footprint's size
  (`views.resize`); normalization per patch (`train.norm_lg`); mean over valid patches of a
  sample, then over samples that have one.
- `FeatureAlignmentLoss` (L_feat): per token `1 - cos(student, frozen)`; tokens whose cosine
  is above `feat_alpha` are ignored. `feat_reduce="kept"` (default) averages over the kept
  tokens, `"all"` over all tokens (ignored ones count as 0): about 3x apart, see METHOD.md.
- `GradientMatchingLoss` (L_grad): MiDaS multi-scale gradient matching on the normalized
  residual (`train.norm_grad`), each scale divided by its own valid count, summed over
  `grad_scales` scales (the MiDaS convention `w_grad` refers to).
- `DistillationLoss`: the weighted sum; returns (total, {term: value}). Terms with weight 0
  are not computed.

All maps are disparity `[B, H, W]` with bool masks; every term is a scalar tensor.
"""

from __future__ import annotations

import torch
from torch import nn

from depthdistill import depth, views


def _mean_over_valid(per_sample: torch.Tensor, has_pixels: torch.Tensor) -> torch.Tensor:
    """Mean of `per_sample [B]` over samples with any valid pixel (0 if none, keeps the graph)."""
    weight = has_pixels.to(per_sample.dtype)  # [B]
    return (per_sample * weight).sum() / weight.sum().clamp_min(1.0)


class SharedContextLoss(nn.Module):
    def __init__(self, norm: str = "hybrid"):
        super().__init__()
        self.norm = norm

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # pred, target [B, H, W] float; mask [B, H, W] bool
        per_sample = depth.dis_loss(pred, target, mask, kind=self.norm)  # [B]
        return _mean_over_valid(per_sample, mask.flatten(1).any(1))


class LocalGlobalLoss(nn.Module):
    def __init__(self, norm: str = "hybrid"):
        super().__init__()
        self.norm = norm

    def forward(self, pred: torch.Tensor, patches: torch.Tensor, patch_mask: torch.Tensor,
                footprints: torch.Tensor, patch_valid: torch.Tensor) -> torch.Tensor:
        """pred [B, V, V]; patches [B, K, P, P]; patch_mask [B, K, P, P] bool;
        footprints [B, K, 4] view px; patch_valid [B, K] bool (padding slots False).

        Every view's patches share one footprint size (h, w); views differ. The patches of the
        whole batch are padded to the largest (h, w) (padding masked out) so that one
        `dis_loss` call normalizes all of them, each patch on its own pixels."""
        crops, labels, masks, owner = [], [], [], []
        for b in range(pred.shape[0]):
            idx = patch_valid[b].nonzero().flatten()  # [k]
            if idx.numel() == 0:
                continue
            fps = footprints[b, idx]  # [k, 4]
            h, w = views.footprint_hw(fps[0].tolist())
            crops.append(views.crop_footprint(pred[b].expand(idx.numel(), *pred.shape[1:]), fps, (h, w)))  # [k, h, w]
            labels.append(views.resize(patches[b, idx], (h, w)))  # [k, h, w]
            masks.append(views.resize(patch_mask[b, idx].float(), (h, w)) > 0.999)  # [k, h, w]
            owner += [b] * idx.numel()
        if not crops:
            return pred.sum() * 0.0
        hm, wm = max(c.shape[-2] for c in crops), max(c.shape[-1] for c in crops)

        def pad(xs: list[torch.Tensor]) -> torch.Tensor:
            return torch.cat([nn.functional.pad(x, (0, wm - x.shape[-1], 0, hm - x.shape[-2])) for x in xs])

        mask = pad(masks)  # [N, hm, wm] bool, padding False
        per_patch = depth.dis_loss(pad(crops), pad(labels), mask, kind=self.norm)  # [N]
        has = mask.flatten(1).any(1).to(per_patch.dtype)  # [N]
        owner_t = torch.tensor(owner, device=pred.device)  # [N]
        sums = torch.zeros(pred.shape[0], device=pred.device).index_add(0, owner_t, per_patch * has)  # [B]
        counts = torch.zeros(pred.shape[0], device=pred.device).index_add(0, owner_t, has)  # [B]
        per_sample = sums / counts.clamp_min(1.0)  # [B]: mean over a view's valid patches
        return _mean_over_valid(per_sample, counts > 0)


class FeatureAlignmentLoss(nn.Module):
    def __init__(self, alpha: float = 0.85, reduce: str = "kept"):
        super().__init__()
        if reduce not in ("kept", "all"):
            raise ValueError(f"train.feat_reduce: got {reduce!r}; use kept or all")
        self.alpha = alpha
        self.reduce = reduce

    def forward(self, student: torch.Tensor, frozen: torch.Tensor) -> torch.Tensor:
        # student, frozen [B, N, C] tokens
        cos = nn.functional.cosine_similarity(student.float(), frozen.float(), dim=-1)  # [B, N]
        keep = cos <= self.alpha  # [B, N]: tokens already aligned above alpha are ignored
        per_token = (1.0 - cos) * keep  # [B, N]
        if self.reduce == "kept":
            return per_token.sum() / keep.sum().clamp_min(1)
        return per_token.mean()


class GradientMatchingLoss(nn.Module):
    def __init__(self, norm: str = "hybrid", scales: int = 4):
        super().__init__()
        self.norm = norm
        self.scales = scales

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        per_sample = depth.gradient_matching_loss(pred, target, mask, kind=self.norm, scales=self.scales)  # [B]
        return _mean_over_valid(per_sample, mask.flatten(1).any(1))


class DistillationLoss(nn.Module):
    """The weighted sum of the four terms, weights and normalizations from TrainConfig."""

    def __init__(self, cfg):
        super().__init__()
        self.weights = {"sc": cfg.w_sc, "lg": cfg.w_lg, "feat": cfg.w_feat, "grad": cfg.w_grad}
        self.sc = SharedContextLoss(cfg.norm_sc)
        self.lg = LocalGlobalLoss(cfg.norm_lg)
        self.feat = FeatureAlignmentLoss(cfg.feat_alpha, cfg.feat_reduce)
        self.grad = GradientMatchingLoss(cfg.norm_grad, cfg.grad_scales)

    @property
    def needs_features(self) -> bool:
        return self.weights["feat"] > 0

    def forward(self, pred: torch.Tensor, batch: dict, tokens: torch.Tensor | None = None,
                frozen_tokens: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """pred [B, V, V] student disparity; batch: one teacher's labels (data.select_teacher)."""
        pred = pred.float()
        terms: dict[str, torch.Tensor] = {}
        if self.weights["sc"] > 0:
            terms["sc"] = self.sc(pred, batch["label"], batch["label_mask"])
        if self.weights["lg"] > 0:
            terms["lg"] = self.lg(pred, batch["patches"], batch["patch_mask"], batch["footprints"],
                                  batch["patch_valid"])
        if self.weights["feat"] > 0:
            if tokens is None or frozen_tokens is None:
                raise ValueError("train.w_feat > 0 needs the student's and the frozen encoder's tokens")
            terms["feat"] = self.feat(tokens, frozen_tokens)
        if self.weights["grad"] > 0:
            terms["grad"] = self.grad(pred, batch["label"], batch["label_mask"])
        total = sum(self.weights[k] * v for k, v in terms.items())
        return total, terms
