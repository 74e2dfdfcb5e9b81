"""View planning, cutting, resize and footprint cropping (depthdistill/views.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from depthdistill.views import (
    ImageTooSmallError,
    SquareBox,
    ViewPlan,
    choose_grid,
    crop_footprint,
    cut_view,
    footprint_hw,
    grid_offsets,
    plan_view,
    resize,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = dict(view_size=112, crop_min=129, patch_size=112, max_grid=3, min_overlap=0.25)
PAPER = dict(view_size=560, crop_min=644, patch_size=560, max_grid=3, min_overlap=0.25)


def _overlap_ok(boxes: list[SquareBox], side: int, min_overlap: float) -> bool:
    """Independent check on boxes: neighbours (in x and y) overlap by >= min_overlap * side."""
    xs = sorted({b.x0 for b in boxes})
    ys = sorted({b.y0 for b in boxes})
    gaps = [b - a for a, b in zip(xs, xs[1:])] + [b - a for a, b in zip(ys, ys[1:])]
    return all(side - g >= min_overlap * side - 1e-9 for g in gaps)


def _boxes_for(crop: SquareBox, side: int, k: int) -> list[SquareBox]:
    offs = grid_offsets(crop.side - side, k)
    return [SquareBox(crop.x0 + ox, crop.y0 + oy, side) for oy in offs for ox in offs]


# ----------------------------------------------------------------------------- determinism


def test_same_plan_in_fresh_process_with_other_hash_seed():
    plan = plan_view("scene/0042.png", (384, 512), 3, 7, **DEFAULTS)
    code = ("import json; from depthdistill.views import plan_view; "
            "print(json.dumps(plan_view('scene/0042.png', (384, 512), 3, 7, view_size=112, "
            "crop_min=129, patch_size=112, max_grid=3, min_overlap=0.25).to_dict()))")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert json.loads(out.stdout) == plan.to_dict()


def test_same_inputs_same_plan_and_known_values():
    a = plan_view("img", (384, 512), 0, 0, **DEFAULTS)
    assert a == plan_view("img", (384, 512), 0, 0, **DEFAULTS)
    # golden values: they change only if the RNG derivation changes, which would silently
    # re-plan (and re-label) every existing label store. Regenerate by printing these plans.
    assert a.crop == SquareBox(92, 195, 168)
    assert plan_view("img", (384, 512), 1, 0, **DEFAULTS).crop == SquareBox(7, 39, 330)
    assert plan_view("img", (384, 512), 0, 1, **DEFAULTS).crop == SquareBox(7, 0, 374)


def test_different_seeds_indices_and_ids_give_different_boxes():
    base = [plan_view(f"img{i}", (384, 512), 0, 0, **DEFAULTS).crop for i in range(50)]
    by_seed = [plan_view(f"img{i}", (384, 512), 0, 1, **DEFAULTS).crop for i in range(50)]
    by_view = [plan_view(f"img{i}", (384, 512), 1, 0, **DEFAULTS).crop for i in range(50)]
    assert sum(a != b for a, b in zip(base, by_seed)) >= 45
    assert sum(a != b for a, b in zip(base, by_view)) >= 45
    assert len(set(base)) >= 45


def test_crop_side_and_position_are_spread_over_their_ranges():
    crops = [plan_view(f"i{i}", (384, 512), 0, 0, **DEFAULTS).crop for i in range(2000)]
    sides = np.array([c.side for c in crops])
    assert 129 <= sides.min() < 135
    assert sides.max() > 378 and sides.max() <= 384
    assert abs(sides.mean() - (129 + 384) / 2) < 6  # uniform: mean within a few px
    rel_x = np.array([c.x0 / (512 - c.side) for c in crops])
    assert rel_x.min() < 0.02 and rel_x.max() > 0.98 and abs(rel_x.mean() - 0.5) < 0.03


# ----------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("params", [DEFAULTS, PAPER], ids=["embedded", "paper"])
def test_boxes_inside_image_for_random_shapes(params):
    rng = np.random.default_rng(0)
    vs = params["view_size"]
    shapes = [(vs, vs), (vs, 5000), (5000, vs), (vs + 3, vs + 1)]
    shapes += [tuple(int(v) for v in rng.integers(vs, 8 * vs, size=2)) for _ in range(300)]
    for n, (h, w) in enumerate(shapes):
        plan = plan_view(f"x{n}", (h, w), n % 3, 1, **params)
        c = plan.crop
        assert 0 <= c.x0 and c.x1 <= w and 0 <= c.y0 and c.y1 <= h
        assert c.side == min(h, w) or params["crop_min"] <= c.side <= min(h, w)
        assert len(plan.patches) == len(plan.footprints) == plan.grid ** 2
        for p in plan.patches:
            assert c.x0 <= p.x0 and p.x1 <= c.x1 and c.y0 <= p.y0 and p.y1 <= c.y1
            assert 0 <= p.x0 and p.x1 <= w and 0 <= p.y0 and p.y1 <= h


@pytest.mark.parametrize("params", [DEFAULTS, PAPER, dict(DEFAULTS, min_overlap=0.5, max_grid=4)],
                         ids=["embedded", "paper", "half-overlap-k4"])
def test_patches_cover_crop_with_overlap_and_k_is_minimal(params):
    vs, ps, kmax, m = params["view_size"], params["patch_size"], params["max_grid"], params["min_overlap"]
    for side in range(vs, 4 * params["crop_min"], 1 if vs < 200 else 7):
        # crop_min = side pins the crop to the whole (square) image
        plan = plan_view("cover", (side, side), 0, 0, **dict(params, crop_min=side))
        c, p, k = plan.crop, plan.patch_side, plan.grid
        assert c.side == side
        covered = np.zeros((side, side), bool)
        for b in plan.patches:
            assert b.side == p
            covered[b.y0:b.y1, b.x0:b.x1] = True
        assert covered.all(), side
        # first patch at the crop's top-left, last ending exactly at its bottom-right
        assert plan.patches[0][:2] == (c.x0, c.y0) and (plan.patches[-1].x1, plan.patches[-1].y1) == (c.x1, c.y1)
        assert _overlap_ok(list(plan.patches), p, m), side
        if side <= ps:
            assert (k, p) == (1, side)
        elif p == ps:  # k minimal: k - 1 patches of the nominal side fail
            assert k >= 2 and (k == 2 or not _overlap_ok(_boxes_for(c, ps, k - 1), ps, m))
        else:  # grow case: max_grid used, p minimal
            assert k == kmax and not _overlap_ok(_boxes_for(c, p - 1, k), p - 1, m), side


def test_grid_thresholds_embedded_and_paper():
    # k=2 holds while s - 112 <= 84; k=3 while ceil((s - 112) / 2) <= 84; then the side grows
    assert choose_grid(196, 112, 3, 0.25) == (2, 112)
    assert choose_grid(197, 112, 3, 0.25) == (3, 112)
    assert choose_grid(280, 112, 3, 0.25) == (3, 112)
    assert choose_grid(281, 112, 3, 0.25) == (3, 113)
    assert choose_grid(384, 112, 3, 0.25) == (3, 154)  # (384-154)/2 = 115 <= 115.5; 153 fails
    assert choose_grid(1400, 560, 3, 0.25) == (3, 560)
    assert choose_grid(1500, 560, 3, 0.25) == (3, 600)
    assert choose_grid(300, 112, 1, 0.25) == (1, 300)  # no grid allowed: the crop itself


def test_grow_case_records_native_and_input_sides():
    plan = plan_view("big", (384, 384), 0, 0, **dict(DEFAULTS, crop_min=384))
    assert plan.crop == SquareBox(0, 0, 384)
    assert (plan.grid, plan.patch_side, plan.patch_input_size) == (3, 154, 112)
    assert [b.x0 for b in plan.patches[:3]] == [0, 115, 230]


def test_footprints_map_back_to_patch_boxes():
    for i in range(200):
        plan = plan_view(f"f{i}", (384, 512), 0, 0, **DEFAULTS)
        c = plan.crop
        s = c.side / plan.view_size
        for box, (x0, y0, x1, y1) in zip(plan.patches, plan.footprints):
            got = (c.x0 + x0 * s, c.y0 + y0 * s, c.x0 + x1 * s, c.y0 + y1 * s)
            assert np.allclose(got, (box.x0, box.y0, box.x1, box.y1), atol=1e-6)
            assert 0 <= x0 < x1 <= plan.view_size + 1e-9 and 0 <= y0 < y1 <= plan.view_size + 1e-9
        assert plan.footprints[-1][2] == pytest.approx(plan.view_size)


def test_small_images_use_short_side_or_raise():
    plan = plan_view("small", (120, 300), 0, 0, **DEFAULTS)  # short side 120 < crop_min 129
    assert plan.crop.side == 120 and plan.crop.y0 == 0 and 0 <= plan.crop.x0 <= 180
    assert (plan.grid, plan.patch_side) == (2, 112)
    exact = plan_view("exact", (112, 112), 0, 0, **DEFAULTS)
    assert exact.crop == SquareBox(0, 0, 112) and (exact.grid, exact.patch_side) == (1, 112)
    with pytest.raises(ImageTooSmallError, match=r"100x300.*short side 100.*view_size=112"):
        plan_view("tiny", (100, 300), 0, 0, **DEFAULTS)
    assert issubclass(ImageTooSmallError, ValueError)


def test_bad_parameters_name_the_key():
    with pytest.raises(ValueError, match="views.min_overlap"):
        plan_view("a", (384, 512), 0, 0, **dict(DEFAULTS, min_overlap=1.0))
    with pytest.raises(ValueError, match="views.crop_min"):
        plan_view("a", (384, 512), 0, 0, **dict(DEFAULTS, crop_min=64))


def test_to_dict_from_dict_json_round_trip():
    plan = plan_view("round/trip.jpg", (384, 512), 2, 9, **DEFAULTS)
    back = ViewPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert back == plan and isinstance(back.crop, SquareBox) and isinstance(back.patches[0], SquareBox)
    bad = plan.to_dict()
    del bad["footprints"]
    with pytest.raises(ValueError, match="footprints"):
        ViewPlan.from_dict(bad)


# ----------------------------------------------------------------------------- pixels


def _gradient_image(h: int, w: int) -> np.ndarray:
    """R = x, G = y, B = 77: a linear image (needs h, w <= 256)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx, yy, np.full_like(xx, 77)], axis=-1).astype(np.uint8)  # [H, W, 3]


def test_cut_view_on_gradient_image():
    img = _gradient_image(200, 256)
    plan = plan_view("grad", (200, 256), 0, 4, **DEFAULTS)
    view, patches = cut_view(img, plan)
    c, v = plan.crop, plan.view_size
    assert view.shape == (v, v, 3) and view.dtype == np.uint8
    assert patches.shape == (plan.grid ** 2, 112, 112, 3) and patches.dtype == np.uint8
    # view pixel j samples native x = x0 + (j + 0.5) * s / V - 0.5 (linear, away from the border)
    centres = (np.arange(v) + 0.5) * c.side / v - 0.5
    inner = slice(3, v - 3)
    assert np.abs(view[0, inner, 0].astype(float) - (c.x0 + centres)[inner]).max() <= 0.5 + 1e-6
    assert np.abs(view[inner, 5, 1].astype(float) - (c.y0 + centres)[inner]).max() <= 0.5 + 1e-6
    assert (view[..., 2] == 77).all()
    np.testing.assert_array_equal(view, resize(img[c.y0:c.y1, c.x0:c.x1], (v, v)))
    if plan.patch_side == plan.patch_input_size:
        for b, patch in zip(plan.patches, patches):
            np.testing.assert_array_equal(patch, img[b.y0:b.y1, b.x0:b.x1])


def test_cut_view_grow_case_downscales_patches_and_checks_shape():
    img = _gradient_image(256, 256)
    plan = plan_view("g", (256, 256), 0, 0, **dict(DEFAULTS, crop_min=256, max_grid=2))
    assert plan.patch_side > plan.patch_input_size  # 256 needs p >= 256/1.75 -> grows
    view, patches = cut_view(img, plan)
    assert patches.shape == (4, 112, 112, 3)
    last = plan.patches[-1]
    centres = (np.arange(112) + 0.5) * last.side / 112 - 0.5
    assert np.abs(patches[-1, 50, 3:-3, 0] - (last.x0 + centres)[3:-3]).max() <= 0.5 + 1e-6
    with pytest.raises(ValueError, match="re-plan"):
        cut_view(img[:200], plan)


def test_resize_constant_identity_and_uint8_round_trip():
    const = np.full((97, 131, 3), 200, np.uint8)
    assert (resize(const, (40, 23)) == 200).all() and (resize(const, (300, 410)) == 200).all()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    same = resize(img, (64, 80))
    np.testing.assert_array_equal(same, img)
    assert same is not img
    # a smooth image survives up (x2) then down (x2) within a grey level or two
    yy, xx = np.mgrid[0:64, 0:80]
    smooth = np.stack([xx * 3, yy * 2 + 40, 128 + 60 * np.sin(xx / 9.0)], -1).round().astype(np.uint8)
    back = resize(resize(smooth, (128, 160)), (64, 80))
    err = np.abs(back.astype(int) - smooth)
    assert back.dtype == np.uint8 and err[2:-2, 2:-2].max() <= 1 and err.mean() < 0.5
    gray = resize(img[..., 0], (32, 40))
    assert gray.shape == (32, 40) and gray.dtype == np.uint8
    # uint8 result is the rounded float result on the same pixels
    t = torch.from_numpy(img).permute(2, 0, 1).float()  # [3, H, W]
    ref = resize(t, (32, 40)).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(resize(img, (32, 40)), ref)


def test_resize_torch_maps_keep_shape_dtype_and_antialias():
    x = torch.full((2, 3, 50, 60), 1.5, dtype=torch.float64)
    out = resize(x, (7, 9))
    assert out.shape == (2, 3, 7, 9) and out.dtype == torch.float64
    assert torch.allclose(out, torch.full_like(out, 1.5))
    # antialiased: a 1-px checkerboard shrunk 4x averages to ~0.5 (plain bilinear would alias)
    cb = (torch.arange(64)[:, None] + torch.arange(64)[None]) % 2  # [64, 64]
    shrunk = resize(cb.float(), (16, 16))
    assert (shrunk - 0.5).abs().max() < 0.05
    with pytest.raises(ValueError, match="uint8"):
        resize(np.zeros((4, 4), np.float32), (2, 2))
    with pytest.raises(ValueError, match="floating"):
        resize(torch.zeros(4, 4, dtype=torch.int64), (2, 2))


def _native_ramp(h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    return 0.01 * xx + 0.02 * yy + 1.0  # [H, W]


@pytest.mark.parametrize("image_id", ["ramp0", "ramp1", "ramp2"])
def test_crop_footprint_matches_resized_native_patch_on_ramp(image_id):
    ramp = _native_ramp(384, 512)
    plan = plan_view(image_id, (384, 512), 0, 0, **DEFAULTS)
    c = plan.crop
    view_map = resize(ramp[c.y0:c.y1, c.x0:c.x1], (plan.view_size, plan.view_size))  # [V, V]
    per_native_px = 0.02
    for box, fp in zip(plan.patches, plan.footprints):
        hw = footprint_hw(fp)
        student = crop_footprint(view_map, fp, hw)  # [h, w]
        teacher = resize(ramp[box.y0:box.y1, box.x0:box.x1], hw)  # [h, w]
        assert student.shape == teacher.shape == hw
        inner = (slice(2, -2), slice(2, -2))
        # torch's antialias window rounding biases a linear ramp by <~0.08 native px per resize
        # (two resizes differ here); borders add the clamped kernels of the view map
        assert (student[inner] - teacher[inner]).abs().max() < 0.25 * per_native_px
        assert (student - teacher).abs().max() < 0.6 * per_native_px
        # a footprint shifted by 2 view px is clearly wrong (the test can fail)
        x0, y0, x1, y1 = fp
        shifted = crop_footprint(view_map, (x0 + 2, y0, x1 + 2, y1), hw)
        assert (shifted[inner] - teacher[inner]).abs().min() > 0.5 * per_native_px


def test_crop_footprint_batched_leading_dims_and_gradients():
    maps = torch.randn(3, 2, 20, 20, requires_grad=True)  # [N, C, V, V]
    fps = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0], [0.0, 0.0, 20.0, 20.0]])
    out = crop_footprint(maps, fps, (10, 10))  # [N, C, 10, 10]
    assert out.shape == (3, 2, 10, 10)
    # integer-aligned footprints at scale 1 are exact slices
    torch.testing.assert_close(out[0], maps[0, :, 0:10, 0:10])
    torch.testing.assert_close(out[1], maps[1, :, 5:15, 5:15])
    # the whole map shrunk 2x averages 2x2 blocks (supersampled, no aliasing)
    torch.testing.assert_close(out[2], torch.nn.functional.avg_pool2d(maps[2], 2))
    single = crop_footprint(maps, (5.0, 5.0, 15.0, 15.0), (10, 10))
    torch.testing.assert_close(single[1], out[1])
    out.sum().backward()
    assert maps.grad is not None and maps.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        crop_footprint(maps, fps[:2], (10, 10))
