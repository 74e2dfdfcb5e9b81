"""The synthetic world: exact z-depth, split determinism and disjointness, masks, export, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from depthdistill.world import (SPLITS, Box, Cylinder, Light, Material, Plane, Scene, Sphere, export_split,
                                make_camera, raycast, render, render_scene, sample_scene)
from depthdistill.world.camera import camera_directions, project
from depthdistill.world.export import depth_to_mm
from depthdistill.world.raycast import _lighting, _shadowed
from depthdistill.world.sheet import colorize_depth, contact_sheet, turbo_lut
from depthdistill.world.textures import pattern_mix, value_noise

SUN = Light("sun", (0.3, 1.0, 0.2))


def _scene(*prims, kind="outdoor", light=SUN, max_depth=60.0) -> Scene:
    return Scene(kind, tuple(prims), light, max_depth=max_depth)


# ------------------------------------------------------------------ exact depth

def test_floor_depth_matches_analytic_z_depth():
    h, pitch = 1.5, -20.0
    cam = make_camera(60, 80, hfov_deg=70, position=(2.0, h, -3.0), yaw_deg=37, pitch_deg=pitch)
    hits = raycast(_scene(Plane((0, 1, 0), 0.0)), cam)
    k = cam.intrinsics
    y = (np.arange(60) - k[1, 2]) / k[1, 1]  # [H] camera-frame y of each row (z = 1)
    phi = math.radians(pitch)
    denom = np.cos(phi) * y - np.sin(phi)  # the floor is hit where the ray goes down
    expected = np.where(denom > 0, h / np.where(denom > 0, denom, 1), np.inf)  # [H]; same along a row
    assert np.isfinite(expected).sum() > 30  # the horizon crosses the image: both cases tested
    np.testing.assert_allclose(hits.depth, np.broadcast_to(expected[:, None], (60, 80)), rtol=2e-5)
    assert np.array_equal(hits.prim == 0, np.isfinite(hits.depth))


def test_sphere_centre_pixel_depth_and_silhouette():
    dist, r = 5.0, 1.0
    cam = make_camera(101, 121, hfov_deg=60, position=(0.0, 1.0, 0.0), yaw_deg=0, pitch_deg=0)
    hits = raycast(_scene(Sphere((0.0, 1.0, dist), r)), cam)
    assert hits.depth[50, 60] == pytest.approx(dist - r, rel=1e-6)
    rays = camera_directions(cam)  # [H, W, 3], z = 1
    cos_a = 1.0 / np.linalg.norm(rays, axis=-1)  # cosine of the angle to the optical axis
    angle = np.arccos(cos_a)
    edge = math.asin(r / dist)
    pixel_angle = 1.0 / cam.intrinsics[0, 0]
    inside, outside = angle < edge - pixel_angle, angle > edge + pixel_angle
    assert np.isfinite(hits.depth[inside]).all() and np.isinf(hits.depth[outside]).all()
    sin_a = np.sin(angle[inside])
    ray_length = dist * cos_a[inside] - np.sqrt(r * r - dist * dist * sin_a * sin_a)  # law of cosines
    np.testing.assert_allclose(hits.depth[inside], ray_length * cos_a[inside], rtol=1e-5)  # z, not length


def test_box_face_and_cylinder_side_depth():
    cam = make_camera(41, 61, hfov_deg=60, position=(0.0, 1.0, 0.0), yaw_deg=0, pitch_deg=0)
    box = Box((0.0, 1.0, 6.0), (1.0, 1.0, 1.0))
    hits = raycast(_scene(box), cam)
    uv, _ = project(cam, np.array([[-0.9, 0.1, 5.0], [0.9, 1.9, 5.0]]))  # well inside the front face
    (u0, v1), (u1, v0) = np.ceil(uv[0]).astype(int), np.floor(uv[1]).astype(int)
    assert (hits.depth[v0:v1 + 1, u0:u1 + 1] == pytest.approx(5.0, rel=1e-6))
    turned = raycast(_scene(Box((0.0, 1.0, 6.0), (1.0, 1.0, 1.0), yaw_deg=45.0)), cam)
    assert turned.depth[20, 30] == pytest.approx(6.0 - math.sqrt(2), rel=1e-5)  # the edge points at us
    cyl = raycast(_scene(Cylinder((0.0, 0.0, 6.0), 0.5, 3.0)), cam)
    assert cyl.depth[20, 30] == pytest.approx(5.5, rel=1e-6)
    assert np.isinf(cyl.depth[20, 0])


def test_screen_rect_culling_matches_brute_force():
    scene, cam = sample_scene("eval", 2, height=48, width=64)
    hits = raycast(scene, cam)
    dirs = hits.dirs
    brute = np.stack([p.intersect(cam.position.astype(np.float32), dirs) for p in scene.primitives])  # [P, H, W]
    np.testing.assert_array_equal(hits.depth, brute.min(axis=0))
    hit = np.isfinite(hits.depth)
    assert np.array_equal(hits.prim[hit], brute.argmin(axis=0)[hit])


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_shadow_culling_matches_brute_force(index):
    scene, cam = sample_scene("unlabeled", index, height=48, width=64)
    rng = np.random.default_rng(index)
    origins = rng.uniform([-8, 0.01, -8], [8, 3, 12], size=(4000, 3)).astype(np.float32)
    if scene.light.kind == "sun":
        to_light = np.broadcast_to(np.float32(scene.light.vector) / np.linalg.norm(scene.light.vector), origins.shape)
        t_max = np.full(len(origins), np.inf, np.float32)
    else:
        rel = np.float32(scene.light.vector) - origins
        t_max = np.linalg.norm(rel, axis=1)
        to_light = rel / t_max[:, None]
    to_light = np.ascontiguousarray(to_light)
    fast = _shadowed(scene, origins, to_light, t_max)
    brute = np.zeros(len(origins), bool)
    for p in scene.primitives:
        if p.casts_shadow:
            brute |= p.intersect(origins, to_light) < t_max
    assert brute.any() and not brute.all()
    np.testing.assert_array_equal(fast, brute)


def test_cast_shadow_darkens_floor_under_a_box():
    scene = _scene(Plane((0, 1, 0), 0.0), Box((0.0, 1.0, 0.0), (0.5, 0.1, 0.5)), light=Light("sun", (0, 1, 0), ambient=0.2))
    points = np.float32([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    normals = np.float32([[0, 1, 0], [0, 1, 0]])
    light = _lighting(scene, points, normals)
    assert light[0] == pytest.approx(0.2, rel=1e-6)  # ambient only: the box blocks the sun
    assert light[1] == pytest.approx(1.2, rel=1e-6)  # ambient + full Lambert


# ------------------------------------------------------------------ masks

def test_sky_invalid_and_far_ground_clipped_at_max_depth():
    cam = make_camera(60, 80, hfov_deg=70, position=(0.0, 1.5, 0.0), yaw_deg=0, pitch_deg=0)
    s = render_scene(_scene(Plane((0, 1, 0), 0.0), max_depth=20.0), cam)
    hits = raycast(_scene(Plane((0, 1, 0), 0.0)), cam)
    np.testing.assert_array_equal(s.valid, hits.depth <= 20.0)
    assert not s.valid[:30].any() and s.valid[-1].all()  # above the horizon: sky, invalid
    assert (s.depth[~s.valid] == 0).all() and s.depth.dtype == np.float32
    sky = s.rgb[0, 0].astype(int)
    assert sky[2] > sky[0]  # painted blue-ish sky, not black


def test_render_outdoor_marks_sky_invalid_and_keeps_depth_under_60m():
    kinds = {}
    for i in range(8):
        scene, _ = sample_scene("eval", i, height=48, width=64)
        kinds.setdefault(scene.kind, i)
    assert set(kinds) == {"indoor", "outdoor"}
    out = render("eval", kinds["outdoor"], height=96, width=128)
    room = render("eval", kinds["indoor"], height=96, width=128)
    assert out.scene == "outdoor" and 0.2 < out.valid.mean() < 1.0
    assert not out.valid[0].all()  # the top row looks into the sky somewhere
    assert room.valid.all()  # a closed room: every ray hits a surface
    for s in (out, room):
        assert s.depth[s.valid].max() <= 60.0 and (s.depth[s.valid] > 0).all()
        assert (s.depth[~s.valid] == 0).all()


def test_thin_mask_marks_poles_only():
    cam = make_camera(48, 64, hfov_deg=60, position=(0.0, 1.0, 0.0), yaw_deg=0, pitch_deg=0)
    s = render_scene(_scene(Plane((0, 1, 0), 0.0), Cylinder((0.0, 0.0, 4.0), 0.05, 3.0, thin=True),
                            Sphere((-1.0, 1.0, 5.0), 0.5)), cam)
    hits = raycast(_scene(Plane((0, 1, 0), 0.0), Cylinder((0.0, 0.0, 4.0), 0.05, 3.0, thin=True),
                          Sphere((-1.0, 1.0, 5.0), 0.5)), cam)
    np.testing.assert_array_equal(s.thin, hits.prim == 1)
    assert 0 < s.thin.sum() < 3 * 48  # a pole a pixel or two wide


@pytest.mark.parametrize("split", SPLITS)
def test_every_scene_has_visible_thin_structures(split):
    for i in range(3):
        s = render(split, i, height=192, width=256)
        assert s.thin.any(), (split, i)
        assert not (s.thin & ~s.valid).any()
        assert s.thin.mean() < 0.1


# ------------------------------------------------------------------ splits

def test_same_triple_renders_identical_arrays():
    a, b = render("unlabeled", 5, seed=3, height=48, width=64), render("unlabeled", 5, seed=3, height=48, width=64)
    for field in ("rgb", "depth", "valid", "thin", "intrinsics"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    c = render("unlabeled", 5, seed=4, height=48, width=64)
    assert not np.array_equal(a.rgb, c.rgb)


def test_splits_are_disjoint():
    samples = {(sp, i): render(sp, i, height=48, width=64) for sp in SPLITS for i in range(4)}
    params = {key: sample_scene(*key, height=48, width=64)[0].params for key in samples}
    keys = list(samples)
    for x in range(len(keys)):
        for y in range(x + 1, len(keys)):
            a, b = keys[x], keys[y]
            assert not np.array_equal(samples[a].rgb, samples[b].rgb), (a, b)
            assert not np.array_equal(samples[a].depth, samples[b].depth), (a, b)
            assert params[a]["camera"] != params[b]["camera"] or params[a]["yaw"] != params[b]["yaw"], (a, b)


def test_shapes_and_dtypes_at_odd_size():
    s = render("teacher-train", 1, height=97, width=131)
    assert s.rgb.shape == (97, 131, 3) and s.rgb.dtype == np.uint8
    assert s.depth.shape == (97, 131) and s.depth.dtype == np.float32
    assert s.valid.shape == s.thin.shape == (97, 131) and s.valid.dtype == s.thin.dtype == bool
    assert s.intrinsics.shape == (3, 3) and s.intrinsics.dtype == np.float32
    assert s.intrinsics[0, 2] == pytest.approx(65.0) and s.intrinsics[1, 2] == pytest.approx(48.0)
    assert s.scene in ("indoor", "outdoor") and (s.split, s.index) == ("teacher-train", 1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(split="train", index=0), "split 'train' is unknown"),
    (dict(split="eval", index=-1), "index -1"),
    (dict(split="eval", index=0, height=8), "too small"),
])
def test_bad_render_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        render(**kwargs)


# ------------------------------------------------------------------ textures

def test_textures_exact_values():
    uv = np.float32([[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [-0.25, 0.25]])
    checker = pattern_mix(Material("checker", scale=0.5), uv)
    np.testing.assert_array_equal(checker, [0, 1, 0, 1])
    stripes = pattern_mix(Material("stripes", scale=1.0), uv)
    np.testing.assert_array_equal(stripes, [1, 0, 0, 0])
    n = value_noise(np.float32([0.0, 1.0, 0.5]), np.float32([0.0, 0.0, 0.0]), seed=1)
    assert ((0 <= n) & (n <= 1)).all()
    assert n[2] == pytest.approx((n[0] + n[1]) / 2, abs=1e-6)  # smoothstep midpoint on a lattice edge


# ------------------------------------------------------------------ export and sheet

def test_export_eval_layout_and_depth_round_trip(tmp_path):
    out = export_split("eval", 3, tmp_path / "w", height=97, width=131, progress=False)
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["split"], meta["n"], meta["height"], meta["width"]) == ("eval", 3, 97, 131)
    for i, row in enumerate(meta["images"]):
        s = render("eval", i, height=97, width=131)
        name = f"{i:06d}.png"
        assert row["scene"] == s.scene
        np.testing.assert_allclose(row["intrinsics"], s.intrinsics, rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(Image.open(out / "rgb" / name)), s.rgb)
        mm = np.asarray(Image.open(out / "depth" / name))
        assert mm.dtype == np.uint16
        assert np.abs(mm[s.valid] / 1000.0 - s.depth[s.valid]).max() <= 1e-3
        assert (mm[~s.valid] == 0).all() and (mm[s.valid] > 0).all()
        np.testing.assert_array_equal(np.asarray(Image.open(out / "mask" / name)) > 127, s.valid)
        np.testing.assert_array_equal(np.asarray(Image.open(out / "thin" / name)) > 127, s.thin)


def test_export_unlabeled_jpg_writes_rgb_only(tmp_path):
    out = export_split("unlabeled", 2, tmp_path, height=48, width=64, fmt="jpg", progress=False)
    assert sorted(p.name for p in (out / "rgb").iterdir()) == ["000000.jpg", "000001.jpg"]
    assert not (out / "depth").exists()
    with pytest.raises(ValueError, match="--fmt"):
        export_split("unlabeled", 2, tmp_path, fmt="bmp")


def test_export_is_the_same_for_any_worker_count(tmp_path):
    one = export_split("unlabeled", 8, tmp_path / "a", height=32, width=48, num_workers=1, progress=False, with_depth=True)
    two = export_split("unlabeled", 8, tmp_path / "b", height=32, width=48, num_workers=2, progress=False, with_depth=True)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert len(files) == 8 * 4 + 1
    for rel in files:
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel


def test_depth_to_mm_rounds_and_zeroes_invalid():
    depth = np.float32([[1.2344, 59.9996], [0.0004, 3.0]])
    valid = np.array([[True, True], [True, False]])
    np.testing.assert_array_equal(depth_to_mm(depth, valid), [[1234, 60000], [0, 0]])


def test_colorize_depth_near_red_far_blue_invalid_black():
    depth = np.float32([[1.0, 2.0, 50.0, 9.0]])
    valid = np.array([[True, True, True, False]])
    rgb = colorize_depth(depth, valid)
    lut = turbo_lut()
    assert (rgb[0, 3] == 0).all()
    np.testing.assert_array_equal(rgb[0, 0], lut[255])
    np.testing.assert_array_equal(rgb[0, 2], lut[0])


def test_contact_sheet_size(tmp_path):
    path = contact_sheet("eval", 4, tmp_path / "sheet.png", height=48, width=64, columns=3, tile_width=64)
    img = Image.open(path)
    assert img.size == (3 * (64 + 2 + 64) + 2 * 8, 2 * 48 + 8)


def test_cli_export_and_bad_split(tmp_path):
    from typer.testing import CliRunner

    from depthdistill.commands.world import app

    runner = CliRunner()
    res = runner.invoke(app, ["export", "--split", "eval", "--n", "2", "--out", str(tmp_path / "x"),
                              "--height", "32", "--width", "48"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "x" / "depth" / "000001.png").is_file()
    bad = runner.invoke(app, ["export", "--split", "nope", "--n", "2", "--out", str(tmp_path / "y")])
    assert bad.exit_code == 2 and "unknown" in bad.output
