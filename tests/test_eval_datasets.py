"""Benchmark loaders on tiny fixtures written in exactly the Marigold evaluation layout."""

from __future__ import annotations

import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthdistill.evaluation.datasets import (
    KB_CROP_HW, DatasetLayoutError, kitti_eigen_mask, open_benchmark)


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_nyu(root: Path, n: int = 2, list_file: bool = True) -> list[np.ndarray]:
    depths, lines = [], []
    for i in range(n):
        rel = f"test/kitchen_0004/{{}}_{i + 1:04d}.png"
        mm = np.full((480, 640), 2500 + 100 * i, dtype=np.uint16)
        mm[100, 100] = 0  # invalid
        mm[200, 200] = 12000  # beyond 10 m: out of range
        _png(root / rel.format("rgb"), _rgb(480, 640, i))
        _png(root / rel.format("depth"), mm)
        _png(root / rel.format("filled"), np.full((480, 640), 7000, np.uint16))  # must not be used
        lines.append(" ".join(rel.format(k) for k in ("rgb", "depth", "filled")))
        depths.append(mm)
    if list_file:
        (root / "filename_list_test.txt").write_text("\n".join(lines) + "\n")
    return depths


def write_kitti(root: Path) -> None:
    h, w = 375, 1242
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[h - 352, (w - 1216) // 2] = (255, 1, 2)  # lands at [0, 0] after the KB crop
    depth = np.zeros((h, w), np.uint16)
    depth[-352:, :] = int(20.5 * 256)
    depth[-1, 600] = int(90 * 256)  # beyond 80 m
    _png(root / "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png", rgb)
    _png(root / "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png", depth)
    _png(root / "2011_09_26/2011_09_26_drive_0009_sync/image_02/data/0000000010.png", rgb)
    (root / "eigen_test_files_with_gt.txt").write_text(
        "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png "
        "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png 721.5377\n"
        "2011_09_26/2011_09_26_drive_0009_sync/image_02/data/0000000010.png None 721.5377\n")


def write_eth3d(root: Path) -> np.ndarray:
    depth = np.linspace(1.0, 30.0, 24 * 36, dtype=np.float32).reshape(24, 36)
    depth[0, :5] = np.inf
    rgb_rel = "rgb/office/images/dslr_images/DSC_0219.JPG"
    (root / rgb_rel).parent.mkdir(parents=True)
    Image.fromarray(_rgb(24, 36, 3)).save(root / rgb_rel, format="JPEG")
    d = root / "depth/office_dslr_depth/office/ground_truth_depth/dslr_images/DSC_0219.JPG"
    d.parent.mkdir(parents=True)
    d.write_bytes(depth.tobytes())
    return depth


def write_scannet(root: Path) -> None:
    (root / "scene0406_02/color").mkdir(parents=True)
    Image.fromarray(_rgb(48, 64, 4)).save(root / "scene0406_02/color/000300.jpg")
    mm = np.full((48, 64), 3210, np.uint16)
    mm[:, :8] = 0
    _png(root / "scene0406_02/depth/000300.png", mm)


def write_diode(root: Path) -> np.ndarray:
    stem = root / "indoors/scene_00021/scan_00189/00021_00189_indoors_200_010"
    _png(stem.with_suffix(".png"), _rgb(32, 40, 5))
    depth = np.full((32, 40, 1), 5.0, np.float32)
    depth[0, 0, 0] = 400.0  # out of range, yet DIODE's mask file alone decides
    mask = np.zeros((32, 40), bool)
    mask[:, 10:] = True
    np.save(str(stem) + "_depth.npy", depth)
    np.save(str(stem) + "_depth_mask.npy", mask)
    return mask


def write_world(root: Path, n: int = 2) -> None:
    for i in range(n):
        _png(root / f"rgb/{i:06d}.png", _rgb(24, 32, i))
        mm = np.full((24, 32), 1500, np.uint16)
        mm[0, 0] = 0
        _png(root / f"depth/{i:06d}.png", mm)
        mask = np.full((24, 32), 255, np.uint8)
        mask[:, :4] = 0
        _png(root / f"mask/{i:06d}.png", mask)
    (root / "meta.json").write_text(json.dumps({"split": "eval", "n": n}))


def test_nyu_eigen_crop_mm_and_raw_depth(tmp_path):
    depths = write_nyu(tmp_path)
    data = open_benchmark("nyuv2", tmp_path)
    assert data.list_file == "filename_list_test.txt" and len(data) == 2
    samples = list(data)
    s = samples[1]
    assert s.rgb.shape == (480, 640, 3) and s.rgb.dtype == np.uint8
    np.testing.assert_allclose(s.depth[300, 300], depths[1][300, 300] / 1000.0)  # raw, not filled
    expected = np.zeros((480, 640), bool)
    expected[45:471, 41:601] = True
    expected[100, 100] = expected[200, 200] = False
    np.testing.assert_array_equal(s.mask, expected)


def test_nyu_without_list_file_finds_the_same_pairs(tmp_path):
    write_nyu(tmp_path, list_file=False)
    data = open_benchmark("nyuv2", tmp_path)
    assert data.list_file is None
    assert [r[0] for r in data.rows] == ["test/kitchen_0004/rgb_0001.png", "test/kitchen_0004/rgb_0002.png"]


def test_kitti_kb_crop_eigen_mask_and_none_rows(tmp_path):
    write_kitti(tmp_path)
    data = open_benchmark("kitti", tmp_path)
    assert len(data) == 1 and not data.skipped  # the "None" row has no GT and is not listed
    (s,) = list(data)
    assert s.rgb.shape == (*KB_CROP_HW, 3) and s.depth.shape == KB_CROP_HW
    assert tuple(s.rgb[0, 0]) == (255, 1, 2)
    assert s.depth[200, 600] == pytest.approx(20.5)
    rows = np.where(s.mask.any(axis=1))[0]
    cols = np.where(s.mask.any(axis=0))[0]
    assert (rows[0], rows[-1]) == (int(0.3324324 * 352), int(0.91351351 * 352) - 1)
    assert (cols[0], cols[-1]) == (int(0.0359477 * 1216), int(0.96405229 * 1216) - 1)
    assert s.depth[-1, 600 - 13] == pytest.approx(90.0) and not s.mask[-1, 600 - 13]  # left margin 13
    np.testing.assert_array_equal(s.mask, kitti_eigen_mask(KB_CROP_HW) & (s.depth > 1e-5) & (s.depth < 80))


def test_eth3d_raw_float_inf_invalid(tmp_path):
    depth = write_eth3d(tmp_path)
    (s,) = list(open_benchmark("eth3d", tmp_path))
    assert s.depth.shape == (24, 36)
    np.testing.assert_allclose(s.depth[1:], depth[1:])
    assert not s.mask[0, :5].any() and s.mask[1:].all()
    assert open_benchmark("eth3d", tmp_path).depth_range == (1e-5, math.inf)


def test_scannet_mm(tmp_path):
    write_scannet(tmp_path)
    (s,) = list(open_benchmark("scannet", tmp_path))
    assert s.depth[5, 20] == pytest.approx(3.21)
    assert not s.mask[:, :8].any() and s.mask[:, 8:].all()


def test_diode_mask_file_only(tmp_path):
    mask = write_diode(tmp_path)
    (s,) = list(open_benchmark("diode", tmp_path))
    assert s.depth.shape == (32, 40)
    np.testing.assert_array_equal(s.mask, mask)


def test_world_export_layout(tmp_path):
    write_world(tmp_path)
    data = open_benchmark("world", tmp_path)
    s = next(iter(data))
    assert s.depth[5, 5] == pytest.approx(1.5)
    assert not s.mask[:, :4].any() and not s.mask[0, 0] and s.mask[1:, 4:].all()


def test_tar_root_reads_like_the_folder(tmp_path):
    write_nyu(tmp_path / "src")
    tar_path = tmp_path / "nyu_labeled_extracted.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(tmp_path / "src", arcname=".")  # Marigold's tars hold "./test/..." members
    a = list(open_benchmark("nyuv2", tar_path))
    b = list(open_benchmark("nyuv2", tmp_path / "src"))
    assert len(a) == 2
    for x, y in zip(a, b):
        assert x.key == y.key
        np.testing.assert_array_equal(x.depth, y.depth)
        np.testing.assert_array_equal(x.mask, y.mask)


@pytest.mark.parametrize("name", ["nyuv2", "kitti", "eth3d", "scannet", "diode", "world"])
def test_missing_or_mislaid_root_names_layout_and_source(tmp_path, name):
    with pytest.raises(DatasetLayoutError, match="does not exist") as info:
        open_benchmark(name, tmp_path / "nope")
    assert "layout" in str(info.value) and "Get it from" in str(info.value)
    (tmp_path / "wrong").mkdir()
    _png(tmp_path / "wrong/some.png", _rgb(8, 8, 0))
    with pytest.raises(DatasetLayoutError, match="no .* pairs"):
        open_benchmark(name, tmp_path / "wrong")


def test_partial_root_evaluates_what_exists(tmp_path):
    write_nyu(tmp_path, n=3)
    (tmp_path / "test/kitchen_0004/depth_0002.png").unlink()
    (tmp_path / "test/kitchen_0004/rgb_0003.png").write_bytes(b"not a png")
    data = open_benchmark("nyuv2", tmp_path)
    assert len(data) == 2 and len(data.skipped) == 1 and "depth_0002" in data.skipped[0][1]
    samples = list(data)
    assert [s.key for s in samples] == ["test/kitchen_0004/rgb_0001.png"]
    assert len(data.skipped) == 2 and data.skipped[1][0].endswith("rgb_0003.png")


def test_unknown_name(tmp_path):
    with pytest.raises(DatasetLayoutError, match="unknown data set"):
        open_benchmark("sintel", tmp_path)
