"""Depth-space maths shared by the trainer, the teachers and evaluation: pure torch, batched, masked.

Maps are `[B, H, W]` tensors with a bool valid mask of the same shape (docs/CONTRACTS.md).
Formulas: METHOD.md "Normalizations", "Losses" (L_grad) and "Evaluation".

Conventions chosen here (**[ours]** where METHOD.md leaves the choice open):
- Median: torch's **lower median** (for an even count N the (N-1)//2-th smallest value, not the
  mean of the two middle values), computed with `torch.nanmedian` on NaN-filled tensors.
  Measured on real hybrid contexts [8, 7, 112*112]: 1 CPU thread (shared, noisy) ~14-17 ms fwd+bwd
  vs ~37-47 ms for sort with +inf fill (one sort per map plus per-context cumulative counts and
  searchsorted: ~11-13 ms, not worth its complexity); H100: 0.10 ms vs 0.18 ms for sort + inf.
- Scale: mean absolute deviation from that median over the context's N pixels (divide by N),
  floored at `MAD_EPS` so a constant map normalizes to exactly 0 instead of 0/0.
- Contexts: a context with fewer than 2 valid pixels is dropped (contributes nothing). The
  per-pixel loss averages the contexts holding the pixel; the loss averages over the pixels held
  by at least one context (for hybrid/global that is every valid pixel once >= 2 are valid).
- Gradient matching's residual for several contexts (hybrid): the mean over the contexts holding
  a pixel of N_u(ds) - N_u(dt), i.e. the same per-pixel averaging as L_Dis.
- Masking is done with `torch.where` on sanitized inputs (never by multiplying), so masked pixels
  holding inf/NaN/huge values influence neither values nor gradients.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

from depthdistill.config import NORMALIZATIONS as KINDS  # noqa: E402 - the one list, in config.py
from depthdistill.config import SPACES  # noqa: E402
HYBRID_LEVELS = (1, 2, 4)  # equal-width bins of the teacher's valid range: 1 + 2 + 4 = 7 contexts
LOCAL_LEVELS = (4,)  # the 4 finest contexts only
MAD_EPS = 1e-6
DISPARITY_FLOOR = 1e-3  # Marigold: aligned disparity clipped at >= 1e-3 before inversion
DEPTH_FLOOR = 1e-6  # Marigold: depth clipped at >= 1e-6 after the range clip


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"normalization kind {kind!r} is not known; use one of {', '.join(KINDS)} "
                         "(config keys train.norm_sc / norm_lg / norm_grad)")


def _check_scales(scales: int) -> None:
    if not isinstance(scales, int) or scales < 1:
        raise ValueError(f"gradient matching needs an integer scales >= 1 (config key train.grad_scales), "
                         f"got {scales!r}")


def _check_maps(mask: torch.Tensor, **maps: torch.Tensor) -> torch.Tensor:
    """Shape checks; returns the mask as bool."""
    if mask.dim() != 3:
        raise ValueError(f"mask must be [B, H, W], got shape {tuple(mask.shape)}; "
                         "squeeze the channel axis of [B, 1, H, W] tensors")
    for name, x in maps.items():
        if x.shape != mask.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)} but mask has {tuple(mask.shape)}; "
                             "resize or squeeze so both are [B, H, W]")
    return mask.bool()


def _sanitize(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """float32 copy with masked pixels set to 0 (grad to them is exactly 0, never NaN*0)."""
    x = x.float()
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


def _median_last(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Lower median of `x` over `mask` along the last axis; 0 where no pixel is valid."""
    nan = torch.full((), float("nan"), dtype=x.dtype, device=x.device)
    med = torch.where(mask, x, nan).nanmedian(dim=-1).values  # [...]
    return torch.where(mask.any(-1), med, torch.zeros_like(med))


def masked_median(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample lower median (torch convention) of `x` [B, N] or [B, H, W] over `mask`. -> [B]

    For an even count the smaller of the two middle values: median([1, 2, 3, 4]) = 2.
    A sample with no valid pixel gets 0."""
    if x.shape != mask.shape or x.dim() not in (2, 3):
        raise ValueError(f"masked_median needs x and mask of the same [B, N] or [B, H, W] shape, "
                         f"got {tuple(x.shape)} and {tuple(mask.shape)}")
    m = mask.bool().flatten(1)  # [B, N]
    return _median_last(torch.where(m, x.flatten(1), torch.zeros_like(x.flatten(1))), m)


def context_masks(teacher: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """The contexts of a normalization kind as bool masks [B, C, H, W] (C = 7 / 4 / 1 / 1).

    hybrid: S in (1, 2, 4) equal-width bins of the teacher's valid range [min, max], ordered
    S=1, S=2 (low to high), S=4 (low to high); bins are [lo, hi) except the last, [lo, max], so the
    maximum (and every pixel tied with it) lands in the last bin. local: the S=4 bins. global: the
    valid mask. Contexts with fewer than 2 pixels are emptied, except for kind "none". A constant
    teacher puts every pixel in the last bin of each level."""
    _check_kind(kind)
    mask = _check_maps(mask, teacher=teacher)
    if kind in ("global", "none"):
        ctx = mask[:, None]  # [B, 1, H, W]
        return ctx if kind == "none" else ctx & (ctx.sum((2, 3), keepdim=True) >= 2)
    t = _sanitize(teacher, mask).detach().flatten(1)  # [B, N]; contexts carry no gradient
    m = mask.flatten(1)  # [B, N]
    inf = torch.full((), float("inf"), device=t.device)
    has = m.any(1)  # [B]
    lo = torch.where(has, torch.where(m, t, inf).amin(1), 0.0)  # [B]
    hi = torch.where(has, torch.where(m, t, -inf).amax(1), 0.0)  # [B]
    parts = []
    for s in HYBRID_LEVELS if kind == "hybrid" else LOCAL_LEVELS:
        if s == 1:
            parts.append(m[:, None])  # [B, 1, N]
            continue
        frac = torch.arange(1, s, device=t.device, dtype=t.dtype) / s  # [S-1]
        inner = (lo[:, None] + (hi - lo)[:, None] * frac).contiguous()  # [B, S-1] interior edges
        # bin = number of interior edges <= t: bins are [lo, hi) and the last one has no upper
        # edge at all, so the maximum and its ties always land in it
        idx = torch.searchsorted(inner, t.contiguous(), right=True)  # [B, N] in 0..S-1
        parts.append(idx[:, None] == torch.arange(s, device=t.device)[None, :, None])  # [B, S, N]
    ctx = (torch.cat(parts, dim=1) & m[:, None]).view(mask.shape[0], -1, *mask.shape[1:])  # [B, C, H, W]
    return ctx & (ctx.sum((2, 3), keepdim=True) >= 2)


def _normalize_in_contexts(d: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
    """d [B, N] (sanitized), ctx [B, C, N] -> per-context (d - median) / MAD, 0 outside. [B, C, N]"""
    x = d[:, None].expand_as(ctx)  # [B, C, N]
    med = _median_last(x, ctx)  # [B, C]
    centred = torch.where(ctx, x - med[..., None], torch.zeros((), device=d.device))  # [B, C, N]
    mad = centred.abs().sum(-1) / ctx.sum(-1).clamp_min(1)  # [B, C]
    return centred / mad.clamp_min(MAD_EPS)[..., None]  # [B, C, N]


def normalize(d: torch.Tensor, mask: torch.Tensor, kind: str,
              teacher: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """N(d) in every context of `kind`. -> (n [B, C, H, W] float32, 0 outside, ctx [B, C, H, W]).

    Contexts of hybrid/local come from `teacher` (from `d` itself when teacher is None, which is
    how a teacher map is normalized). kind "none" returns d itself in one context."""
    _check_kind(kind)
    mask = _check_maps(mask, d=d)
    ctx = context_masks(d if teacher is None else teacher, mask, kind)  # [B, C, H, W]
    x = _sanitize(d, mask)  # [B, H, W]
    if kind == "none":
        return x[:, None], ctx
    n = _normalize_in_contexts(x.flatten(1), ctx.flatten(2))  # [B, C, H*W]
    return n.view(ctx.shape), ctx


def _residuals(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor,
               kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """N_u(ds) - N_u(dt) per context: (diff [B, C, H, W], ctx [B, C, H, W])."""
    mask = _check_maps(mask, student=student, teacher=teacher)
    ctx = context_masks(teacher, mask, kind)  # [B, C, H, W] from the teacher only
    s, t = _sanitize(student, mask), _sanitize(teacher, mask)  # [B, H, W]
    if kind == "none":
        return torch.where(ctx, (s - t)[:, None], 0.0), ctx
    both = torch.cat([s, t]).flatten(1)  # [2B, N]: one median pass for student and teacher
    n = _normalize_in_contexts(both, ctx.flatten(2).repeat(2, 1, 1))  # [2B, C, N]
    ns, nt = n.view(2, *ctx.shape).unbind(0)  # [B, C, H, W] each
    return ns - nt, ctx


def _context_mean(values: torch.Tensor, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel mean over the contexts holding it: (mean [B, H, W], covered [B, H, W])."""
    count = ctx.sum(1)  # [B, H, W]
    total = torch.where(ctx, values, 0.0).sum(1)  # [B, H, W]
    return total / count.clamp_min(1), count > 0


def _dis_from(diff: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
    """Per-context residuals [B, C, H, W] -> L_Dis per sample [B]."""
    per_pixel, covered = _context_mean(diff.abs(), ctx)  # [B, H, W]
    total = torch.where(covered, per_pixel, 0.0).sum((1, 2))  # [B]
    return total / covered.sum((1, 2)).clamp_min(1)


def _gradient_from(diff: torch.Tensor, ctx: torch.Tensor, scales: int) -> torch.Tensor:
    """Per-context residuals [B, C, H, W] -> multi-scale gradient matching per sample [B]."""
    r, valid = _context_mean(diff, ctx)  # [B, H, W]: residual averaged over holding contexts
    r = torch.where(valid, r, 0.0)
    total = torch.zeros(r.shape[0], device=r.device)  # [B]
    for k in range(scales):
        step = 2 ** k
        rk, vk = r[:, ::step, ::step], valid[:, ::step, ::step]  # [B, h, w]
        gx = torch.where(vk[:, :, 1:] & vk[:, :, :-1], (rk[:, :, 1:] - rk[:, :, :-1]).abs(), 0.0)
        gy = torch.where(vk[:, 1:, :] & vk[:, :-1, :], (rk[:, 1:, :] - rk[:, :-1, :]).abs(), 0.0)
        total = total + (gx.sum((1, 2)) + gy.sum((1, 2))) / vk.sum((1, 2)).clamp_min(1)
    return total


def dis_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor,
             kind: str = "hybrid") -> torch.Tensor:
    """L_Dis per sample [B]: mean over covered pixels of the context-averaged |N(ds) - N(dt)|.

    0 for a sample with no valid pixel (or a single one under a normalizing kind)."""
    _check_kind(kind)
    return _dis_from(*_residuals(student, teacher, mask, kind))


def gradient_matching_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor,
                           kind: str = "hybrid", scales: int = 4) -> torch.Tensor:
    """MiDaS gradient matching on R = N(ds) - N(dt), per sample [B].

    For k < scales: subsample R and the mask by stride 2^k (no pooling), sum |dR/dx| + |dR/dy| over
    neighbour pairs whose both pixels are valid, divide by that scale's valid-pixel count, and sum
    the scales (~3x a single global division; `w_grad` weights this sum). With several contexts
    (hybrid) R is the mean over the contexts holding a pixel."""
    _check_kind(kind)
    _check_scales(scales)
    return _gradient_from(*_residuals(student, teacher, mask, kind), scales)


def dis_and_gradient_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor,
                          kind: str = "hybrid", scales: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """(dis_loss, gradient_matching_loss), each [B], from ONE normalization pass: use it when both
    losses take the same maps and kind (about half the cost of the two calls)."""
    _check_kind(kind)
    _check_scales(scales)
    diff, ctx = _residuals(student, teacher, mask, kind)  # [B, C, H, W]
    return _dis_from(diff, ctx), _gradient_from(diff, ctx, scales)


def _scale_shift64(pred: torch.Tensor, target: torch.Tensor,
                   mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least squares s, b (float64) minimizing sum_mask (s*pred + b - target)^2. -> ([B], [B])

    The 2x2 normal equations [[Σp², Σp], [Σp, n]] [s, b]ᵀ = [Σpt, Σt]ᵀ solved in closed form on
    centred sums (s = cov / var, b = mean t - s * mean p). Degenerate systems (fewer than 2 pixels
    or a constant prediction) fall back to s = 1, b = mean(t - p) (0 with no pixel)."""
    m = mask.flatten(1)  # [B, N]
    zero = torch.zeros((), dtype=torch.float64, device=pred.device)
    p = torch.where(m, pred.flatten(1).double(), zero)  # [B, N]
    t = torch.where(m, target.flatten(1).double(), zero)  # [B, N]
    n = m.sum(1).double().clamp_min(1)  # [B]
    pm, tm = p.sum(1) / n, t.sum(1) / n  # [B]
    pc = torch.where(m, p - pm[:, None], zero)  # [B, N]
    tc = torch.where(m, t - tm[:, None], zero)  # [B, N]
    var, cov = (pc * pc).sum(1), (pc * tc).sum(1)  # [B]
    ok = (m.sum(1) >= 2) & (var > 1e-12 * (p * p).sum(1))  # [B]
    scale = torch.where(ok, cov / torch.where(ok, var, 1.0), 1.0)  # [B]
    shift = tm - scale * pm  # [B]
    return scale, shift


def align_scale_shift(pred: torch.Tensor, target: torch.Tensor,
                      mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares scale and shift of `pred` onto `target` over `mask` (float64 solve).

    -> (aligned [B, H, W] in pred's dtype = scale * pred + shift everywhere, scale [B], shift [B]
    float64). No torch.linalg.lstsq (it crashes on NaN input in MKL); masked NaN/inf are ignored."""
    mask = _check_maps(mask, pred=pred, target=target)
    scale, shift = _scale_shift64(pred, target, mask)
    aligned = pred.double() * scale[:, None, None] + shift[:, None, None]  # [B, H, W]
    return aligned.to(pred.dtype), scale, shift


def abs_rel(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image mean |pred - gt| / gt over mask & gt > 0. -> [B]; NaN for an image with no pixel
    (an undefined score must not read as a perfect 0)."""
    mask = _check_maps(mask, pred=pred, gt=gt) & (gt > 0)
    g = torch.where(mask, gt, torch.ones_like(gt))  # [B, H, W]
    err = torch.where(mask, (pred - g).abs() / g, torch.zeros_like(g))  # [B, H, W]
    count = mask.sum((1, 2))  # [B]
    return torch.where(count > 0, err.sum((1, 2)) / count.clamp_min(1), float("nan"))


def delta1(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image fraction of mask & gt > 0 pixels with max(pred/gt, gt/pred) < 1.25 (strict; a
    pred <= 0 never counts). -> [B]; NaN for an image with no pixel."""
    mask = _check_maps(mask, pred=pred, gt=gt) & (gt > 0)
    g = torch.where(mask, gt, torch.ones_like(gt))  # [B, H, W]
    p = torch.where(mask, pred, torch.ones_like(pred))  # [B, H, W]
    ratio = torch.maximum(p / g, g / p)  # [B, H, W]
    hit = mask & (p > 0) & (ratio < 1.25)  # [B, H, W]
    count = mask.sum((1, 2))  # [B]
    return torch.where(count > 0, hit.sum((1, 2)).double() / count.clamp_min(1), float("nan"))


EDGE_JUMP = 0.05  # a depth discontinuity: |log d - log d_neighbour| above this (edge F1)
EDGE_SHORT_SIDE = 96  # edge F1 compares maps pooled to about this short side (see edge_pool)


def edge_pool(hw: tuple[int, int]) -> int:
    """The pooling factor edge F1 uses on an image of size `hw`: short side // EDGE_SHORT_SIDE.

    Depth edges are compared at about the resolution a model sees (the embedded models run at a
    112-px input), not at the ground truth's: upsampled to 384 x 512 a 112-px prediction spreads
    every jump over ~4 pixels, under EDGE_JUMP per pixel, and a 1-pixel tolerance then scores
    every such model near 0, which no comparison can read: the DAv2-tiny card's edge F1 on the
    central crop (192 x 256) was 0.061 local / 0.013 global unpooled, 0.276 / 0.133 pooled by 2
    (depthdistill/assets/teachers/dav2-tiny, docs/teachers/README.md)."""
    return max(1, min(int(hw[0]), int(hw[1])) // EDGE_SHORT_SIDE)


def _pool_depth(depth: torch.Tensor, mask: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Valid-weighted mean of `depth` over factor x factor cells; a cell is valid when all its
    pixels are. [B, H, W] -> ([B, H // f, W // f], bool mask)."""
    import torch.nn.functional as F

    if factor == 1:
        return depth, mask
    weight = F.avg_pool2d(mask.double()[:, None], factor)[:, 0]  # [B, h, w] share of valid pixels
    total = F.avg_pool2d(torch.where(mask, depth.double(), 0.0)[:, None], factor)[:, 0]
    return total / weight.clamp_min(1e-12), weight > 1 - 1e-9


def depth_edges(depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Depth discontinuities: |log d - log d_left| or |log d - log d_above| > EDGE_JUMP with both
    pixels in `mask`; the right / lower pixel of such a pair is marked. [B, H, W] -> bool [B, H, W]."""
    mask = _check_maps(mask, depth=depth)
    log_d = torch.log(torch.where(mask, depth.double(), 1.0).clamp_min(DEPTH_FLOOR))  # [B, H, W]
    dx = ((log_d[..., :, 1:] - log_d[..., :, :-1]).abs() > EDGE_JUMP) & mask[..., :, 1:] & mask[..., :, :-1]
    dy = ((log_d[..., 1:, :] - log_d[..., :-1, :]).abs() > EDGE_JUMP) & mask[..., 1:, :] & mask[..., :-1, :]
    edges = torch.zeros_like(mask)
    edges[..., :, 1:] |= dx
    edges[..., 1:, :] |= dy
    return edges


def edge_f1(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, pool: int = 1) -> torch.Tensor:
    """F-score of the depth discontinuities of `pred` against those of `gt` (both depth maps),
    each found within one pixel (3x3) of the other, after both are pooled by `pool` (valid-
    weighted means, `edge_pool`). -> [B]; NaN where `gt` has no edge (the score is undefined
    there); 0 when the prediction finds none of them."""
    import torch.nn.functional as F

    mask = _check_maps(mask, pred=pred, gt=gt)
    pred, _ = _pool_depth(pred, mask, pool)
    gt, mask = _pool_depth(gt, mask, pool)  # [B, H/pool, W/pool]
    true, found = depth_edges(gt, mask), depth_edges(pred, mask)  # [B, h, w]
    near_true = F.max_pool2d(true.float()[:, None], 3, 1, 1)[:, 0] > 0
    near_found = F.max_pool2d(found.float()[:, None], 3, 1, 1)[:, 0] > 0
    precision = (found & near_true).sum((1, 2)) / found.sum((1, 2)).clamp_min(1)  # [B]
    recall = (true & near_found).sum((1, 2)) / true.sum((1, 2)).clamp_min(1)  # [B]
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    return torch.where(true.flatten(1).any(1), f1.double(), float("nan"))


def to_disparity(x: torch.Tensor, space: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A map in its space -> (disparity float32, valid bool). Non-finite values, and depth <= 0,
    are invalid (disparity 0 there). The trainer reads every teacher's labels through this."""
    finite = torch.isfinite(x)
    if space == "disparity":
        return torch.where(finite, x, 0.0).float(), finite
    if space == "depth":
        valid = finite & (x > 0)
        return torch.where(valid, 1.0 / torch.where(valid, x, 1.0), 0.0).float(), valid
    raise ValueError(f"label space {space!r} is unknown; the store must record 'disparity' or 'depth'")


def aligned_depth(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, space: str = "disparity",
                  depth_range: tuple[float, float] = (1e-3, 10.0)):
    """The protocol's alignment: a raw prediction -> metric depth, least-squares fitted on `mask`.

    disparity: fit pred to 1/gt over mask & pred > 0, clip the aligned disparity at >= 1e-3,
    invert. depth: fit pred to gt over mask. Then clip to `depth_range`, then >= 1e-6 (float64).
    -> (depth [B, H, W] float64, scale [B], shift [B], valid [B, H, W]: mask & finite gt > 0)."""
    if space not in SPACES:
        raise ValueError(f"evaluation space {space!r} is not known; use 'disparity' or 'depth' "
                         "(the model's output space)")
    lo, hi = (float(v) for v in depth_range)
    if not 0 <= lo < hi:
        raise ValueError(f"depth_range must be (min, max) with 0 <= min < max, got {depth_range}")
    mask = _check_maps(mask, pred=pred, gt=gt)
    p, g = pred.double(), gt.double()  # [B, H, W]
    valid = mask & torch.isfinite(g) & (g > 0)  # [B, H, W]
    g = torch.where(valid, g, torch.ones_like(g))
    if space == "disparity":
        scale, shift = _scale_shift64(p, 1.0 / g, valid & (p > 0))
        disp = (p * scale[:, None, None] + shift[:, None, None]).clamp_min(DISPARITY_FLOOR)  # [B, H, W]
        depth = 1.0 / disp
    else:
        scale, shift = _scale_shift64(p, g, valid)
        depth = p * scale[:, None, None] + shift[:, None, None]  # [B, H, W]
    depth = depth.clamp(lo, hi).clamp_min(DEPTH_FLOOR)  # [B, H, W]
    return depth, scale, shift, valid


def evaluate_depth(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, space: str = "disparity",
                   depth_range: tuple[float, float] = (1e-3, 10.0),
                   thin: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The Marigold / GenPercept protocol, per image. The project's only evaluation implementation.

    `mask` is the dataset's evaluation mask (strict range, crop, set mask; the caller builds it);
    pixels with non-finite or non-positive GT are dropped from it. The prediction is aligned by
    `aligned_depth` and scored on the mask (float64). Beyond AbsRel / delta1, on the same aligned
    depth: `edge_f1` (depth discontinuities found within a pixel, on maps pooled by
    `edge_pool`) and `thin_abs_rel` (AbsRel on mask & `thin`, the thin-structure pixels; NaN
    without a thin mask or with no thin pixel).
    -> {"abs_rel", "delta1", "edge_f1", "thin_abs_rel", "scale", "shift", "num_valid"}, each [B]."""
    depth, scale, shift, valid = aligned_depth(pred, gt, mask, space, depth_range)
    g = torch.where(valid, gt.double(), 1.0)
    thin_mask = valid & _check_maps(thin, gt=gt) if thin is not None else torch.zeros_like(valid)
    return {"abs_rel": abs_rel(depth, g, valid), "delta1": delta1(depth, g, valid),
            "edge_f1": edge_f1(depth, g, valid, edge_pool(g.shape[-2:])), "thin_abs_rel": abs_rel(depth, g, thin_mask),
            "scale": scale, "shift": shift, "num_valid": valid.sum((1, 2))}
