"""Least-squares alignment and the Marigold evaluation protocol of depthdistill.depth: exact
values on hand-made maps and agreement with an independent numpy implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depthdistill import depth as D


def _full(shape) -> torch.Tensor:
    return torch.ones(shape, dtype=torch.bool)

# ---------------------------------------------------------------- alignment and metrics

def test_align_recovers_known_scale_and_shift():
    g = torch.Generator().manual_seed(10)
    pred = torch.rand(3, 12, 12, generator=g)
    mask = torch.rand(3, 12, 12, generator=g) > 0.3
    scale_true = torch.tensor([3.0, 0.5, -2.0])
    shift_true = torch.tensor([-2.0, 10.0, 0.25])
    target = pred * scale_true[:, None, None] + shift_true[:, None, None]
    target = torch.where(mask, target, torch.tensor(float("nan")))  # garbage outside the mask
    pred = torch.where(mask, pred, torch.tensor(float("inf")))
    aligned, scale, shift = D.align_scale_shift(pred, target, mask)
    assert scale.dtype == torch.float64
    assert torch.allclose(scale, scale_true.double(), atol=1e-6)
    assert torch.allclose(shift, shift_true.double(), atol=1e-6)
    assert torch.allclose(aligned[mask], target[mask], atol=1e-5)


def test_align_degenerate_systems():
    pred = torch.tensor([[[2.0, 2.0, 2.0, 2.0]], [[1.0, 2.0, 3.0, 4.0]]])  # [2, 1, 4]
    target = torch.tensor([[[1.0, 2.0, 3.0, 6.0]], [[5.0, 5.0, 5.0, 5.0]]])
    mask = torch.tensor([[[True] * 4], [[False] * 4]])
    aligned, scale, shift = D.align_scale_shift(pred, target, mask)
    # constant prediction: scale 1, shift = mean(t - p) = (-1 + 0 + 1 + 4) / 4 = 1
    # empty mask: identity (scale 1, shift 0)
    assert scale.tolist() == [1.0, 1.0] and shift.tolist() == [1.0, 0.0]
    assert aligned[0].flatten().tolist() == [3.0, 3.0, 3.0, 3.0]
    assert torch.equal(aligned[1], pred[1])


def test_abs_rel_and_delta1_by_hand():
    pred = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 1.25, -1.0]]])
    gt = torch.tensor([[[1.0, 1.0, 4.0, 4.0, 1.0, 1.0]]])
    mask = torch.tensor([[[True, True, True, True, False, False]]])
    # AbsRel = (0/1 + 1/1 + 1/4 + 0/4) / 4 = 0.3125; ratios 1, 2, 4/3, 1 -> delta1 = 2 / 4
    assert D.abs_rel(pred, gt, mask).item() == pytest.approx(0.3125)
    assert D.delta1(pred, gt, mask).item() == pytest.approx(0.5)
    only_edge = torch.tensor([[[False, False, False, False, True, False]]])
    assert D.delta1(pred, gt, only_edge).item() == 0.0  # ratio exactly 1.25: strict <
    only_negative = torch.tensor([[[False, False, False, False, False, True]]])
    assert D.delta1(pred, gt, only_negative).item() == 0.0  # max(-1, -1) < 1.25 must not count
    assert math.isnan(D.abs_rel(pred, gt, torch.zeros_like(mask)).item())


def test_evaluate_depth_by_hand():
    gt = torch.tensor([[[1.0, 2.0, 4.0, 5.0]]])
    mask = _full(gt.shape)
    out = D.evaluate_depth(2.0 / gt + 1.0, gt, mask, "disparity", (1e-3, 10.0))
    # disparity 2/d + 1 aligns back to 1/d with scale 0.5, shift -0.5: exact depth
    assert out["scale"].item() == pytest.approx(0.5) and out["shift"].item() == pytest.approx(-0.5)
    assert out["abs_rel"].item() == pytest.approx(0.0, abs=1e-7) and out["delta1"].item() == 1.0
    out = D.evaluate_depth(3.0 * gt - 1.0, gt, mask, "depth", (1e-3, 10.0))
    assert out["abs_rel"].item() == pytest.approx(0.0, abs=1e-7) and out["delta1"].item() == 1.0
    # depth range clip: the fit is exact (pred = gt), but the range (1e-3, 3) clips 4 -> 3 and
    # 5 -> 3: AbsRel = (0 + 0 + 1/4 + 2/5) / 4 = 0.1625; ratios 1, 1, 4/3, 5/3 -> delta1 0.5
    out = D.evaluate_depth(gt.clone(), gt, mask, "depth", (1e-3, 3.0))
    assert out["abs_rel"].item() == pytest.approx(0.1625) and out["delta1"].item() == 0.5


def _marigold_numpy(pred, gt, mask, space, lo, hi):
    """Independent reference: the Marigold eval script's steps, one image at a time, numpy."""
    rows = []
    for p, g, m in zip(pred.astype(np.float64), gt.astype(np.float64), mask):
        m = m & np.isfinite(g) & (g > 0)
        if space == "disparity":
            g_disp = np.zeros_like(g)
            g_disp[g > 0] = 1.0 / g[g > 0]
            fit = m & (p > 0)
            target = g_disp[fit]
        else:
            fit, target = m, g[m]
        a = np.stack([p[fit], np.ones(fit.sum())], axis=1)
        (scale, shift), *_ = np.linalg.lstsq(a, target, rcond=None)
        out = p * scale + shift
        if space == "disparity":
            out = 1.0 / np.clip(out, 1e-3, None)
        out = np.clip(np.clip(out, lo, hi), 1e-6, None)
        abs_rel = np.sum(np.abs(out[m] - g[m]) / g[m]) / m.sum()
        ratio = np.maximum(out[m] / g[m], g[m] / out[m])
        rows.append((abs_rel, np.mean(ratio < 1.25)))
    return np.array(rows)


@pytest.mark.parametrize("space, lo, hi", [("disparity", 1e-3, 10.0), ("depth", 1e-3, 10.0),
                                           ("disparity", 1e-5, float("inf"))])
def test_evaluate_depth_matches_an_independent_numpy_marigold(space, lo, hi):
    rng = np.random.default_rng(11)
    b, h, w = 4, 24, 32
    gt = rng.uniform(0.5, 12.0, (b, h, w))
    gt[:, :2] = 0.0  # missing GT
    truth = 1.0 / np.where(gt > 0, gt, 1.0) if space == "disparity" else gt
    pred = 2.0 * truth + 0.3 + rng.normal(0, 0.1 if space == "disparity" else 2.0, (b, h, w))
    pred[:, -1] = -0.5  # non-positive predictions (excluded from the disparity fit)
    mask = (gt > lo) & (gt < hi)  # the dataset's evaluation mask (strict range)
    mask[:, :, :3] = False
    pred[~mask & (gt == 0)] = np.nan  # masked garbage must not reach the fit or the metrics
    pred, gt = pred.astype(np.float32), gt.astype(np.float32)
    ref = _marigold_numpy(pred, gt, mask, space, lo, hi)
    out = D.evaluate_depth(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(mask),
                           space, (lo, hi))
    assert np.allclose(out["abs_rel"].numpy(), ref[:, 0], atol=1e-6, rtol=0)
    assert np.allclose(out["delta1"].numpy(), ref[:, 1], atol=1e-6, rtol=0)
    assert ref[:, 0].mean() > 0.02 and 0.05 < ref[:, 1].mean() < 1  # not a trivial case


def test_edge_f1_by_hand():
    # a step from 1 m to 2 m between columns 3 and 4 of an 8x8 map
    gt = torch.ones(1, 8, 8)
    gt[..., 4:] = 2.0
    mask = torch.ones(1, 8, 8, dtype=torch.bool)
    edges = D.depth_edges(gt, mask)
    assert edges[0, :, 4].all() and edges.sum() == 8  # the right pixel of each jumping pair
    assert D.edge_f1(gt.clone(), gt, mask)[0] == 1.0
    shifted = torch.ones(1, 8, 8)
    shifted[..., 5:] = 2.0  # one pixel off: within the tolerance
    assert D.edge_f1(shifted, gt, mask)[0] == 1.0
    far = torch.ones(1, 8, 8)
    far[..., 7:] = 2.0  # three pixels off: no edge matches
    assert D.edge_f1(far, gt, mask)[0] == 0.0
    blurred = torch.linspace(1.0, 1.2, 8).expand(1, 8, 8).contiguous()  # smooth: finds no edge
    assert D.edge_f1(blurred, gt, mask)[0] == 0.0
    assert torch.isnan(D.edge_f1(gt, torch.ones(1, 8, 8), mask))[0]  # no true edge: undefined
    cut = mask.clone()
    cut[..., 4] = False  # an edge whose pair is not valid is not an edge
    assert D.depth_edges(gt, cut).sum() == 0


def test_edge_f1_pooled_finds_a_spread_jump():
    """A jump spread over 4 pixels (a coarse prediction upsampled) is under EDGE_JUMP per pixel at
    full resolution, but one clean step once both maps are pooled by 4."""
    gt = torch.ones(1, 16, 32)
    gt[..., 16:] = 1.3
    mask = torch.ones(1, 16, 32, dtype=torch.bool)
    smooth = torch.ones(1, 16, 32)
    smooth[..., 12:20] = torch.linspace(1.0, 1.3, 10)[1:9]  # 8 pixels of ramp: 3.3 % per pixel
    smooth[..., 20:] = 1.3
    assert D.edge_f1(smooth, gt, mask)[0] == 0.0  # at full resolution the spread jump is missed
    assert D.edge_f1(smooth, gt, mask, pool=4)[0] == 1.0  # pooled, it is the same edge
    assert D.edge_pool((384, 512)) == 4 and D.edge_pool((500, 741)) == 5 and D.edge_pool((24, 32)) == 1
    with_hole = mask.clone()
    with_hole[0, 0, 0] = False  # a cell with an invalid pixel is left out of the pooled mask
    _, pooled = D._pool_depth(gt, with_hole, 4)
    assert not pooled[0, 0, 0] and pooled.sum() == pooled.numel() - 1


def test_evaluate_depth_thin_abs_rel_scores_only_thin_pixels():
    gt = torch.linspace(2.0, 6.0, 6).view(1, 6, 1).expand(1, 6, 6).clone()  # a floor receding upwards
    gt[..., 2] = 1.0  # a thin pole at column 2, nearer
    thin = torch.zeros(1, 6, 6, dtype=torch.bool)
    thin[..., 2] = True
    mask = torch.ones(1, 6, 6, dtype=torch.bool)
    pred = 1.0 / gt  # perfect disparity ...
    pred[..., 2] = 0.5  # ... except the pole, seen half as near (the blur of a coarse model)
    out = D.evaluate_depth(pred, gt, mask, "disparity", (1e-3, 10.0), thin=thin)
    d = 1.0 / (out["scale"][0] * pred.double() + out["shift"][0]).clamp_min(1e-3)
    expected = ((d - gt).abs() / gt)[thin].mean()
    assert out["thin_abs_rel"][0] == pytest.approx(float(expected), rel=1e-9)
    assert out["thin_abs_rel"][0] > out["abs_rel"][0]  # the error sits on the thin pixels
    no_thin = D.evaluate_depth(pred, gt, mask, "disparity", (1e-3, 10.0))
    assert torch.isnan(no_thin["thin_abs_rel"][0]) and no_thin["abs_rel"][0] == out["abs_rel"][0]
