"""depthdistill.depth: normalizations, L_Dis, gradient matching, alignment, Marigold evaluation.

Hand-made maps carry their arithmetic in comments; random maps test invariances, masking and an
independent numpy implementation of the Marigold protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthdistill import depth as D

NORMALIZING = ("global", "hybrid", "local")


def _full(shape) -> torch.Tensor:
    return torch.ones(shape, dtype=torch.bool)


def _ramp16() -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher t = 0..15 on a 4x4 grid (row-major); student s = t except s[15] = 31."""
    t = torch.arange(16, dtype=torch.float32).view(1, 4, 4)
    s = t.clone()
    s[0, 3, 3] = 31.0
    return s, t


def _random_pair(seed: int = 0, b: int = 2, h: int = 16, w: int = 16):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(b, h, w, generator=g) * 5 + 0.5
    s = t ** 1.7 + 0.3 * torch.rand(b, h, w, generator=g)  # related but not affine
    mask = torch.rand(b, h, w, generator=g) > 0.25
    return s, t, mask


# ---------------------------------------------------------------- median and contexts

def test_masked_median_is_the_lower_median():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0, 100.0], [5.0, 1.0, 3.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, True, False], [True, True, True, False, False]])
    # row 0: {1, 2, 3, 4}: even count, lower median 2 (mean convention would give 2.5)
    # row 1: {5, 1, 3}: median 3
    assert D.masked_median(x, mask).tolist() == [2.0, 3.0]
    x[0, 4] = float("nan")  # a masked NaN changes nothing
    assert D.masked_median(x, mask).tolist() == [2.0, 3.0]
    assert D.masked_median(x, torch.zeros_like(mask)).tolist() == [0.0, 0.0]  # no pixel -> 0
    grid = torch.arange(16.0).view(1, 4, 4)  # [B, H, W] input: lower median of 0..15 is 7
    assert D.masked_median(grid, _full(grid.shape)).item() == 7.0


def test_hybrid_contexts_on_the_ramp():
    _, t = _ramp16()
    ctx = D.context_masks(t, _full(t.shape), "hybrid")  # [1, 7, 4, 4]
    assert ctx.shape == (1, 7, 4, 4)
    members = [torch.nonzero(c.flatten()).flatten().tolist() for c in ctx[0]]
    # range [0, 15]; S=2: width 7.5 -> [0, 7.5) = 0..7, [7.5, 15] = 8..15;
    # S=4: width 3.75 -> edges 0, 3.75, 7.5, 11.25, 15 -> 0..3, 4..7, 8..11, 12..15
    assert members == [list(range(16)), list(range(8)), list(range(8, 16)),
                       [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]
    local = D.context_masks(t, _full(t.shape), "local")
    assert torch.equal(local, ctx[:, 3:])
    assert D.context_masks(t, _full(t.shape), "global").shape == (1, 1, 4, 4)


def test_pixels_on_an_edge_go_to_the_upper_bin():
    t = torch.tensor([[[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 8.0]]])  # range [0, 8]
    ctx = D.context_masks(t, _full(t.shape), "hybrid")
    members = [t[0][c].tolist() for c in ctx[0]]
    # S=2 edge 4; S=4 edges 2, 4, 6: bins are [lo, hi), the last one [6, 8]
    assert members[1:] == [[0, 1, 2, 3], [4, 5, 6, 8], [0, 1], [2, 3], [4, 5], [6, 8]]


def test_maximum_and_its_ties_belong_to_the_last_bin():
    # float32 values where lo + (hi - lo) rounds to hi - 6.1e-5: an upper edge computed as
    # min + S * width (or HDN's `d < max + 1e-30`) would lose the maximum and all its ties
    lo, hi = 0.454986572265625, 597.5867309570312
    assert (torch.tensor(lo) + (torch.tensor(hi) - torch.tensor(lo))).item() < hi
    g = torch.Generator().manual_seed(3)
    t = lo + torch.rand(2, 16, 16, generator=g) * (hi - lo) * 0.9
    t[:, 0, 0] = lo
    t[:, 1:5] = hi  # a clipped far plane: many pixels tied with the maximum
    mask = torch.rand(2, 16, 16, generator=g) > 0.1
    mask[:, 0, 0] = True
    ctx = D.context_masks(t, mask, "hybrid")  # [2, 7, 16, 16]
    is_max = mask & (t == torch.where(mask, t, -1.0).amax((1, 2), keepdim=True))
    assert int(is_max.sum()) > 20
    assert bool(ctx[:, 2][is_max].all()) and bool(ctx[:, 6][is_max].all())  # last S=2 / S=4 bins
    # every valid pixel is in exactly one bin of each level, no invalid pixel anywhere
    assert torch.equal(ctx[:, 0], mask)
    assert torch.equal(ctx[:, 1:3].sum(1), mask.long())
    assert torch.equal(ctx[:, 3:7].sum(1), mask.long())


def test_single_pixel_contexts_are_dropped():
    t = torch.tensor([[[0.0, 0.0, 0.0, 10.0]]])  # S=2/S=4 top bins hold only the 10
    ctx = D.context_masks(t, _full(t.shape), "hybrid")
    assert ctx.sum((2, 3)).flatten().tolist() == [4, 3, 0, 3, 0, 0, 0]


# ---------------------------------------------------------------- normalizations, exact values

def test_global_normalization_by_hand():
    _, t = _ramp16()
    n, ctx = D.normalize(t, _full(t.shape), "global")
    # lower median of 0..15 = 7; MAD = (7+6+...+0 + 1+...+8) / 16 = (28 + 36) / 16 = 4
    assert ctx.shape == n.shape == (1, 1, 4, 4)
    assert torch.allclose(n[0, 0].flatten(), (torch.arange(16.0) - 7) / 4)


def test_normalize_contexts_and_constant_maps():
    s, t, mask = _random_pair(seed=14)
    n_own, ctx_own = D.normalize(t, mask, "hybrid")  # contexts from t itself
    n_t, ctx_t = D.normalize(t, mask, "hybrid", teacher=t)
    assert torch.equal(n_own, n_t) and torch.equal(ctx_own, ctx_t) and ctx_t.shape == (2, 7, 16, 16)
    _, ctx_s = D.normalize(t, mask, "hybrid", teacher=s)
    assert not torch.equal(ctx_s, ctx_t)  # the teacher argument decides the contexts
    n, ctx = D.normalize(torch.full_like(t, 4.0), mask, "local")
    assert ctx.shape == (2, 4, 16, 16) and bool((n == 0).all())  # constant -> 0, not 0/0
    assert bool((n_t[~ctx_t] == 0).all())


@pytest.mark.parametrize("kind, expected", [
    # S=1 context (16 px): t: med 7, MAD 4 (above). s: med 7, MAD (28 + 28 + |31-7|) / 16 = 5.
    #   i < 15: |(i-7)/5 - (i-7)/4| = |i-7|/20; sum over i<15 of |i-7| = 28 + 28 = 56 -> 2.8.
    #   i = 15: |24/5 - 8/4| = 2.8.  global = (2.8 + 2.8) / 16 = 0.35
    #   (the mean-of-two-middles median 7.5 would give 5.65 / 16 = 0.353125)
    ("global", 0.35),
    # S=2 bin 8..15: t med 11 (lower), MAD (3+2+1+0+1+2+3+4)/8 = 2; s med 11, MAD (12+20)/8 = 4.
    #   i in 8..14: |i-11|/4 (sum 6/4 = 1.5); i = 15: |20/4 - 4/2| = 3.   S=2 bin 0..7: 0.
    # S=4 bin 12..15: t med 13, MAD (1+0+1+2)/4 = 1; s med 13, MAD (1+0+1+18)/4 = 5.
    #   i in 12..14: |(i-13)/5 - (i-13)| = 0.8|i-13| (sum 1.6); i = 15: |18/5 - 2| = 1.6.
    # every pixel is in 3 contexts: l_i = (sum of its 3 diffs) / 3
    #   i 0..7: 28/20 = 1.4; i 8..11: 10/20 + 6/4 = 2.0; i 12..14: 18/20 + 1.5 + 1.6 = 4.0;
    #   i 15: 2.8 + 3 + 1.6 = 7.4.  hybrid = (1.4 + 2 + 4 + 7.4) / 3 / 16 = 14.8 / 48
    ("hybrid", 14.8 / 48),
    # only the S=4 contexts: (1.6 + 1.6) / 16 = 0.2
    ("local", 0.2),
    # mean |s - t| = 16 / 16
    ("none", 1.0),
])
def test_dis_loss_by_hand(kind, expected):
    s, t = _ramp16()
    loss = D.dis_loss(s, t, _full(t.shape), kind=kind)
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_dis_loss_by_hand_on_8x8_with_mask():
    # 8x8, only the 4 pixels of the top-left 2x2 block are valid: t = [0, 1, 8, 9], s = [0, 2, 8, 9].
    t = torch.arange(64, dtype=torch.float32).view(1, 8, 8)
    s = t.clone()
    s[0, 0, 1] = 2.0
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, :2, :2] = True
    t[~mask], s[~mask] = 1e9, float("nan")  # garbage outside the mask
    # global: t med 1 (lower of 0,1,8,9), MAD (1+0+7+8)/4 = 4; s med 2, MAD (2+0+6+7)/4 = 3.75
    #   N_t = [-0.25, 0, 1.75, 2]; N_s = [-0.5333.., 0, 1.6, 1.8666..]
    #   |diff| = [0.28333.., 0, 0.15, 0.13333..] -> sum 0.56666.. -> /4 = 0.1416666..
    assert D.dis_loss(s, t, mask, "global").item() == pytest.approx(0.56666666 / 4, abs=1e-6)
    # local: range [0, 9], width 2.25: bins {0, 1}, {}, {}, {8, 9}. {0, 1}: t med 0, MAD 0.5,
    #   N_t = [0, 2]; s {0, 2}: med 0, MAD 1, N_s = [0, 2] -> 0. {8, 9} identical -> 0.
    assert D.dis_loss(s, t, mask, "local").item() == pytest.approx(0.0, abs=1e-7)
    # hybrid: S=2 bins {0, 1} and {8, 9} (width 4.5) also give 0, so each pixel averages its global
    #   diff with two zeros: 0.56666.. / 3 / 4
    assert D.dis_loss(s, t, mask, "hybrid").item() == pytest.approx(0.56666666 / 12, abs=1e-6)


# ---------------------------------------------------------------- invariances and batching

@pytest.mark.parametrize("kind", NORMALIZING)
@pytest.mark.parametrize("which", ["student", "teacher"])
def test_loss_invariant_to_positive_scale_and_shift(kind, which):
    s, t, mask = _random_pair(seed=1)
    base = D.dis_loss(s, t, mask, kind)
    for a, b in [(3.0, -7.0), (0.01, 2.5), (250.0, 1e3)]:
        s2, t2 = (a * s + b, t) if which == "student" else (s, a * t + b)
        assert torch.allclose(D.dis_loss(s2, t2, mask, kind), base, rtol=1e-4, atol=1e-5)
    assert bool((base > 0.01).all())


def test_none_is_not_invariant():
    s, t, mask = _random_pair(seed=1)
    assert not torch.allclose(D.dis_loss(2 * s + 1, t, mask, "none"), D.dis_loss(s, t, mask, "none"))


@pytest.mark.parametrize("kind", list(D.KINDS))
def test_per_sample_losses_match_single_sample_calls(kind):
    s, t, mask = _random_pair(seed=2, b=3)
    batch = D.dis_loss(s, t, mask, kind)
    grad = D.gradient_matching_loss(s, t, mask, kind)
    assert batch.shape == grad.shape == (3,)
    for i in range(3):
        one = slice(i, i + 1)
        assert torch.allclose(batch[i], D.dis_loss(s[one], t[one], mask[one], kind)[0], atol=1e-6)
        assert torch.allclose(grad[i], D.gradient_matching_loss(s[one], t[one], mask[one], kind)[0], atol=1e-5)


# ---------------------------------------------------------------- masking and NaN safety

@pytest.mark.parametrize("kind", list(D.KINDS))
@pytest.mark.parametrize("garbage", [1e9, float("nan"), float("inf"), -float("inf")])
def test_masked_pixels_never_influence_loss_or_gradient(kind, garbage):
    s, t, mask = _random_pair(seed=4)
    results = []
    for fill in (None, garbage):
        ss = s.clone() if fill is None else torch.where(mask, s, torch.tensor(fill))
        tt = t.clone() if fill is None else torch.where(mask, t, torch.tensor(fill))
        ss.requires_grad_(True)
        loss = D.dis_loss(ss, tt, mask, kind) + D.gradient_matching_loss(ss, tt, mask, kind)
        loss.sum().backward()
        results.append((loss.detach(), ss.grad))
    (l0, g0), (l1, g1) = results
    assert torch.equal(l0, l1)
    assert torch.equal(g0, g1) and bool(torch.isfinite(g1).all())
    assert bool((g1[~mask] == 0).all())


@pytest.mark.parametrize("kind", list(D.KINDS))
@pytest.mark.parametrize("case", ["all_invalid", "constant_student", "constant_both", "one_pixel"])
def test_degenerate_maps_give_defined_losses_and_finite_gradients(kind, case):
    s, t, mask = _random_pair(seed=5)
    if case == "all_invalid":
        mask = torch.zeros_like(mask)
    elif case == "constant_student":
        s = torch.full_like(s, 2.0)
    elif case == "constant_both":
        s, t = torch.full_like(s, 2.0), torch.full_like(t, 3.0)
    else:
        mask = torch.zeros_like(mask)
        mask[:, 3, 3] = True
    s = s.clone().requires_grad_(True)
    dis, grad = D.dis_loss(s, t, mask, kind), D.gradient_matching_loss(s, t, mask, kind)
    (dis.sum() + grad.sum()).backward()
    assert bool(torch.isfinite(dis).all()) and bool(torch.isfinite(grad).all())
    assert bool(torch.isfinite(s.grad).all())
    if case == "all_invalid" or (case == "one_pixel" and kind != "none"):
        assert dis.tolist() == [0.0, 0.0]
    if case in ("all_invalid", "one_pixel"):
        assert grad.tolist() == [0.0, 0.0]  # no neighbour pair
    if case == "constant_both":
        assert dis.tolist() == ([1.0, 1.0] if kind == "none" else [0.0, 0.0])
    if case == "constant_student" and kind != "none":
        assert bool((dis > 0).all())  # normalized student is 0, the teacher is not


def test_gradient_flows_to_the_student():
    s, t, mask = _random_pair(seed=6)
    s.requires_grad_(True)
    D.dis_loss(s, t, mask, "hybrid").sum().backward()
    assert float(s.grad[mask].abs().sum()) > 0


# ---------------------------------------------------------------- gradient matching

def test_gradient_matching_by_hand():
    x = torch.arange(8, dtype=torch.float32).repeat(8, 1)[None]  # [1, 8, 8], R = column index
    zero = torch.zeros_like(x)
    mask = _full(x.shape)
    # kind none, R = x. stride 1: 8 rows x 7 pairs x 1 = 56, / 64 px = 0.875
    # stride 2: cols 0,2,4,6: 4 rows x 3 pairs x 2 = 24, / 16 = 1.5
    # stride 4: cols 0,4: 2 rows x 1 pair x 4 = 8, / 4 = 2;  stride 8: one pixel, 0
    assert D.gradient_matching_loss(x, zero, mask, "none").item() == pytest.approx(4.375, abs=1e-6)
    assert D.gradient_matching_loss(x, zero, mask, "none", scales=1).item() == pytest.approx(0.875, abs=1e-6)
    # column 7 masked (and NaN): stride 1: 8 x 6 pairs = 48 / 56 px; strides 2, 4 never see col 7
    mask[..., 7] = False
    x[..., 7] = float("nan")
    expected = 48 / 56 + 1.5 + 2.0
    assert D.gradient_matching_loss(x, zero, mask, "none").item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("kind", list(D.KINDS))
def test_gradient_matching_zero_for_affine_maps(kind):
    _, t, mask = _random_pair(seed=7)
    a, b = (1.0, 0.0) if kind == "none" else (2.5, -1.0)
    assert torch.allclose(D.gradient_matching_loss(a * t + b, t, mask, kind), torch.zeros(2), atol=1e-5)
    s, _, _ = _random_pair(seed=8)
    assert bool((D.gradient_matching_loss(s, t, mask, kind) > 0.05).all())


def test_hybrid_gradient_residual_is_the_context_average_of_normalize():
    s, t, mask = _random_pair(seed=9, b=1, h=8, w=8)
    ns, ctx = D.normalize(s, mask, "hybrid", teacher=t)  # [1, 7, 8, 8]
    nt, _ = D.normalize(t, mask, "hybrid")
    counts = ctx.sum(1)  # [1, 8, 8]
    r = ((ns - nt) * ctx).sum(1) / counts.clamp_min(1)  # inputs are finite here, so * is fine
    valid = counts > 0
    dx = (r[:, :, 1:] - r[:, :, :-1]).abs() * (valid[:, :, 1:] & valid[:, :, :-1])
    dy = (r[:, 1:] - r[:, :-1]).abs() * (valid[:, 1:] & valid[:, :-1])
    expected = (dx.sum() + dy.sum()) / valid.sum()
    got = D.gradient_matching_loss(s, t, mask, "hybrid", scales=1)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


# ---------------------------------------------------------------- bad input

def test_bad_input_is_a_clear_value_error():
    s, t, mask = _random_pair(seed=12)
    with pytest.raises(ValueError, match="norm_sc"):
        D.dis_loss(s, t, mask, kind="median")
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        D.dis_loss(s[:, None], t, mask)
    with pytest.raises(ValueError, match="grad_scales"):
        D.gradient_matching_loss(s, t, mask, scales=0)
    with pytest.raises(ValueError, match="'disparity' or 'depth'"):
        D.evaluate_depth(s, t, mask, space="inverse")
    with pytest.raises(ValueError, match="depth_range"):
        D.evaluate_depth(s, t, mask, depth_range=(10.0, 1.0))


@pytest.mark.parametrize("kind", list(D.KINDS))
def test_combined_losses_equal_the_separate_calls(kind):
    s, t, mask = _random_pair(seed=13)
    dis, grad = D.dis_and_gradient_loss(s, t, mask, kind, scales=3)
    assert torch.equal(dis, D.dis_loss(s, t, mask, kind))
    assert torch.equal(grad, D.gradient_matching_loss(s, t, mask, kind, scales=3))
