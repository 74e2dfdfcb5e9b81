"""The distillation loss (METHOD.md, Eq. 9), built on `depthdistill.depth`.

    L = w_sc * L_sc + w_lg * L_lg + w_feat * L_feat + w_grad * L_grad

- `SharedContextLoss` (L_sc): student vs teacher on the same global view, L_Dis with the
  configured normalization (`train.norm_sc`, hybrid by default).
- `LocalGlobalLoss` (L_lg): the student's view prediction cropped to each patch footprint
  (`views.crop_footprint`) against the teacher's patch label resized to that footprint's size
  (`views.resize`); normalization per patch (`train.norm_lg`); mean over valid patches of a
  sample, then over samples that have one. Batched by footprint size: one call per distinct
  size, no padding.
- `FeatureAlignmentLoss` (L_feat): per token `1 - cos(student, frozen)`; tokens whose cosine
  is above `feat_alpha` are ignored. `feat_reduce="kept"` (default) averages over the kept
  tokens, `"all"` over all tokens (ignored ones count as 0): about 3x apart, see METHOD.md.
- `GradientMatchingLoss` (L_grad): MiDaS multi-scale gradient matching on the normalized
  residual (`train.norm_grad`), each scale divided by its own valid count, summed over
  `grad_scales` scales (the MiDaS convention `w_grad` refers to).
- `ScaleAnchorLoss` (L_anchor, the scale-drift guard): every normalized term above is blind to
  the student's output level, so nothing stops it drifting (Distill-Any-Depth issue #36: the
  output grows all training). `mean_b (log median(pred_b) - log anchor)^2` holds the median
  output at the anchor (`train.anchor_median`, or the student's first-batch median); its weight
  `w_anchor` is 0 (off) by default.
- `DistillationLoss`: the weighted sum; returns (total, {term: value}) with the names in
  `TERMS`. Terms with weight 0 are not computed. When L_sc and L_grad use the same
  normalization they share one normalization pass (`depth.dis_and_gradient_loss`).

Batch means count only the samples (and patches) the term is defined on: at least 2 valid
pixels for the normalizing kinds (median and MAD of one pixel normalize it to 0), at least 1
for `none`; a sample with too few pixels contributes nothing and is not counted.

All maps are disparity `[B, H, W]` with bool masks; every term is a scalar tensor.
"""

from __future__ import annotations

import torch
from torch import nn

from depthdistill import depth, views


TERMS = ("sc", "lg", "feat", "grad", "anchor")  # DistillationLoss's terms, as logged (loss/<name>)


def defined(mask: torch.Tensor, kind: str) -> torch.Tensor:
    """Which maps of `mask [B, H, W]` a loss of normalization `kind` is defined on. -> bool [B]"""
    return mask.flatten(1).sum(1) >= (1 if kind == "none" else 2)


def _mean_over_valid(per_sample: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    """Mean of `per_sample [B]` over the counted samples (0 if none, keeps the graph)."""
    weight = counted.to(per_sample.dtype)  # [B]
    return (per_sample * weight).sum() / weight.sum().clamp_min(1.0)


class SharedContextLoss(nn.Module):
    def __init__(self, norm: str = "hybrid"):
        super().__init__()
        self.norm = norm

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # pred, target [B, H, W] float; mask [B, H, W] bool
        per_sample = depth.dis_loss(pred, target, mask, kind=self.norm)  # [B]
        return _mean_over_valid(per_sample, defined(mask, self.norm))


class LocalGlobalLoss(nn.Module):
    """L_lg, compared at each footprint's own (rounded) size, as METHOD.md says.

    Every view's patches share one footprint size (h, w); views differ. Views are grouped by
    (h, w) and each group runs as ONE crop (`views.crop_footprint` with per-patch footprints),
    ONE label resize and ONE `dis_loss` call over `[n, h, w]`: no padding, so no pixel is
    normalized that is not compared (padding every patch to the batch's largest footprint, as
    before, spent ~2x the normalization work on masked pixels). The result equals one call per
    patch: each patch is normalized on its own pixels whatever it is batched with."""

    def __init__(self, norm: str = "hybrid"):
        super().__init__()
        self.norm = norm

    def forward(self, pred: torch.Tensor, patches: torch.Tensor, patch_mask: torch.Tensor,
                footprints: torch.Tensor, patch_valid: torch.Tensor) -> torch.Tensor:
        """pred [B, V, V]; patches [B, K, P, P]; patch_mask [B, K, P, P] bool;
        footprints [B, K, 4] view px; patch_valid [B, K] bool (padding slots False)."""
        groups = self._size_groups(footprints, patch_valid)
        if not groups:
            return pred.sum() * 0.0
        sums = pred.new_zeros(pred.shape[0])  # [B]
        counts = pred.new_zeros(pred.shape[0])  # [B]
        for (h, w), (b_idx, k_idx) in groups.items():
            fps = footprints[b_idx, k_idx]  # [n, 4]
            crops = views.crop_footprint(pred[b_idx], fps, (h, w))  # [n, h, w]
            labels = views.resize(patches[b_idx, k_idx], (h, w))  # [n, h, w]
            mask = views.resize(patch_mask[b_idx, k_idx].float(), (h, w)) > 0.999  # [n, h, w]
            per_patch = depth.dis_loss(crops, labels, mask, kind=self.norm)  # [n]
            has = defined(mask, self.norm).to(per_patch.dtype)  # [n]
            owner = b_idx.to(pred.device)  # [n]
            sums = sums.index_add(0, owner, per_patch * has)
            counts = counts.index_add(0, owner, has)
        per_sample = sums / counts.clamp_min(1.0)  # [B]: mean over a view's valid patches
        return _mean_over_valid(per_sample, counts > 0)

    @staticmethod
    def _size_groups(footprints: torch.Tensor,
                     patch_valid: torch.Tensor) -> dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]]:
        """{(h, w): (view index [n], patch slot [n])} over the valid patches, views in batch order."""
        fps, valid = footprints.detach().cpu(), patch_valid.cpu()
        members: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for b in range(fps.shape[0]):
            idx = valid[b].nonzero().flatten().tolist()
            if idx:
                hw = views.footprint_hw(fps[b, idx[0]].tolist())
                members.setdefault(hw, []).extend((b, k) for k in idx)
        return {hw: tuple(torch.tensor(col) for col in zip(*pairs)) for hw, pairs in members.items()}


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
        return _mean_over_valid(per_sample, defined(mask, self.norm))


class ScaleAnchorLoss(nn.Module):
    """The scale-drift guard: mean_b (log median(pred_b) - log anchor)^2 over the whole map."""

    def forward(self, pred: torch.Tensor, anchor: float) -> torch.Tensor:
        # pred [B, H, W]; anchor > 0 (the median output to hold)
        med = pred.flatten(1).median(dim=1).values.clamp_min(1e-6)  # [B]
        return ((med.log() - torch.log(torch.tensor(float(anchor), device=pred.device))) ** 2).mean()


def shared_context_and_gradient(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, norm: str,
                                scales: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_sc, L_grad) from one normalization (`depth.dis_and_gradient_loss`); equal to
    `SharedContextLoss(norm)` and `GradientMatchingLoss(norm, scales)` called separately."""
    dis, grad = depth.dis_and_gradient_loss(pred, target, mask, kind=norm, scales=scales)  # [B], [B]
    counted = defined(mask, norm)  # [B]
    return _mean_over_valid(dis, counted), _mean_over_valid(grad, counted)


class DistillationLoss(nn.Module):
    """The weighted sum of the four terms, weights and normalizations from TrainConfig."""

    def __init__(self, cfg):
        super().__init__()
        self.weights = {"sc": cfg.w_sc, "lg": cfg.w_lg, "feat": cfg.w_feat, "grad": cfg.w_grad,
                        "anchor": cfg.w_anchor}
        assert tuple(self.weights) == TERMS
        self.sc = SharedContextLoss(cfg.norm_sc)
        self.lg = LocalGlobalLoss(cfg.norm_lg)
        self.feat = FeatureAlignmentLoss(cfg.feat_alpha, cfg.feat_reduce)
        self.grad = GradientMatchingLoss(cfg.norm_grad, cfg.grad_scales)
        self.anchor = ScaleAnchorLoss()

    @property
    def needs_features(self) -> bool:
        return self.weights["feat"] > 0

    def without_features(self) -> "DistillationLoss":
        """The same loss with L_feat off (no reference encoder: `train.feat_reference` resolved to none)."""
        self.weights["feat"] = 0.0
        return self

    def forward(self, pred: torch.Tensor, batch: dict, tokens: torch.Tensor | None = None,
                frozen_tokens: torch.Tensor | None = None,
                anchor: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """pred [B, V, V] student disparity; batch: one teacher's labels (data.select_teacher);
        anchor: the median output L_anchor holds (needed when w_anchor > 0)."""
        pred = pred.float()
        terms: dict[str, torch.Tensor] = {}
        if self.weights["sc"] > 0 and self.weights["grad"] > 0 and self.sc.norm == self.grad.norm:
            # same maps, same kind: one normalization pass serves both (half the cost)
            terms["sc"], terms["grad"] = shared_context_and_gradient(pred, batch["label"], batch["label_mask"],
                                                                     self.sc.norm, self.grad.scales)
        elif self.weights["sc"] > 0:
            terms["sc"] = self.sc(pred, batch["label"], batch["label_mask"])
        if self.weights["lg"] > 0:
            terms["lg"] = self.lg(pred, batch["patches"], batch["patch_mask"], batch["footprints"],
                                  batch["patch_valid"])
        if self.weights["feat"] > 0:
            if tokens is None or frozen_tokens is None:
                raise ValueError("train.w_feat > 0 needs the student's and the frozen encoder's tokens")
            terms["feat"] = self.feat(tokens, frozen_tokens)
        if self.weights["grad"] > 0 and "grad" not in terms:
            terms["grad"] = self.grad(pred, batch["label"], batch["label_mask"])
        if self.weights["anchor"] > 0:
            if anchor is None:
                raise ValueError("train.w_anchor > 0 needs the anchor median (train.anchor_median or the first batch's)")
            terms["anchor"] = self.anchor(pred, anchor)
        total = sum(self.weights[k] * v for k, v in terms.items())
        return total, terms
