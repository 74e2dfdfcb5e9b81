"""The predict writer and DepthPredictor on a tiny random DAv2 saved to a folder (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthdistill.config import StagesConfig
from depthdistill.evaluation.predict import (
    collect_images, colorize, decode_uint16, encode_uint16, inferno, make_sheet, predict_images)


@pytest.fixture(scope="module")
def tiny_dav2(tmp_path_factory) -> str:
    from depthdistill.models.configs import build_dav2

    folder = tmp_path_factory.mktemp("models") / "dav2-tiny-random"
    build_dav2("tiny", seed=0).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def predictor(tiny_dav2):
    from depthdistill.evaluation.predictor import DepthPredictor

    return DepthPredictor(tiny_dav2, StagesConfig(), input_size=56, batch_size=4)


def test_uint16_round_trip_spans_full_range():
    pred = np.random.default_rng(0).normal(3.0, 2.0, (17, 23)).astype(np.float32)
    q, lo, hi = encode_uint16(pred)
    assert q.dtype == np.uint16 and q.min() == 0 and q.max() == 65535
    assert (lo, hi) == (float(pred.min()), float(pred.max()))
    np.testing.assert_allclose(decode_uint16(q, lo, hi), pred, atol=(hi - lo) / 65535)
    flat, lo2, hi2 = encode_uint16(np.full((3, 3), 2.0, np.float32))
    assert not flat.any() and lo2 == hi2 == 2.0


def test_inferno_matches_matplotlib_and_is_bright_at_one():
    x = np.linspace(0, 1, 256)
    ours = inferno(x).astype(float) / 255
    assert ours[-1].sum() > 2.5 and ours[0].sum() < 0.1  # 1 -> bright yellow, 0 -> near black
    mpl = pytest.importorskip("matplotlib")
    np.testing.assert_allclose(ours, mpl.colormaps["inferno"](x)[:, :3], atol=0.04)


def test_colorize_near_is_bright_in_both_spaces():
    ramp = np.tile(np.linspace(1.0, 10.0, 50, dtype=np.float32), (4, 1))  # [4, 50]
    bright = lambda c: c.astype(int).sum(-1)  # noqa: E731
    disp = colorize(ramp, "disparity")  # large disparity = near -> bright on the right
    depth = colorize(ramp, "depth")  # large depth = far -> dark on the right
    assert bright(disp)[0, -1] > bright(disp)[0, 0]
    assert bright(depth)[0, 0] > bright(depth)[0, -1]


def test_collect_images_recurses_and_reports_missing(tmp_path):
    (tmp_path / "a/b").mkdir(parents=True)
    for rel in ("a/x.png", "a/b/y.JPG", "a/notes.txt"):
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "z.png").write_bytes(b"")
    items, bad = collect_images([tmp_path / "a", tmp_path / "z.png", tmp_path / "gone.png"])
    assert [n for _, n in items] == ["b/y", "x", "z"]
    assert bad == [(str(tmp_path / "gone.png"), "no such file or folder")]


def test_make_sheet_rows_and_height():
    pairs = [(np.zeros((30, 40, 3), np.uint8), np.ones((30, 40, 3), np.uint8)),
             (np.zeros((60, 20, 3), np.uint8), np.ones((60, 20, 3), np.uint8))]
    sheet = make_sheet(pairs, row_height=24)
    assert sheet.shape == (2 * (24 + 4), 2 * 32 + 4, 3)


def test_predictor_any_aspect_ratio_returns_input_resolution(predictor):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((40, 90), (77, 31), (56, 56))]
    preds = predictor.predict(images)
    assert [p.shape for p in preds] == [(40, 90), (77, 31), (56, 56)]
    assert all(p.dtype == np.float32 and np.isfinite(p).all() for p in preds)
    assert predictor.space == "disparity"
    again = predictor.predict(images[1:2])[0]  # batch composition does not change a result
    np.testing.assert_allclose(again, preds[1], rtol=1e-4, atol=1e-5)


def test_predict_writes_files_and_skips_bad_images(predictor, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(src / "wide.png")
    Image.fromarray(rng.integers(0, 256, (64, 30), dtype=np.uint8)).save(src / "sub/gray.jpg")
    (src / "broken.png").write_bytes(b"\x89PNG garbage")
    summary = predict_images([src], predictor, tmp_path / "out", sheet=True, batch_size=2, progress=False)
    assert sorted(p.name for p in summary.written) == ["gray", "wide"]
    assert len(summary.bad) == 1 and summary.bad[0][0].endswith("broken.png")
    out = tmp_path / "out"
    raw = np.load(out / "wide.npy")
    assert raw.shape == (45, 70) and raw.dtype == np.float32
    q = np.asarray(Image.open(out / "wide.depth16.png"))
    meta = json.loads((out / "wide.depth16.json").read_text())
    assert q.shape == (45, 70) and q.dtype == np.uint16 and q.max() == 65535 and q.min() == 0
    np.testing.assert_allclose(decode_uint16(q, meta["min"], meta["max"]), raw,
                               atol=(meta["max"] - meta["min"]) / 65535 + 1e-7)
    assert meta["space"] == "disparity"
    assert np.asarray(Image.open(out / "sub/gray.color.png")).shape == (64, 30, 3)
    assert summary.sheet is not None and Image.open(summary.sheet).size[1] == 2 * (192 + 4)


def test_predict_command_end_to_end(tiny_dav2, tmp_path):
    from typer.testing import CliRunner

    from depthdistill.cli import app

    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    res = CliRunner().invoke(app, ["predict", str(tmp_path / "a.png"), str(tmp_path / "bad.jpg"),
                                   "--model", tiny_dav2, "--out", str(tmp_path / "o"), "--input-size", "28",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "1 images written" in res.output and "1 skipped" in res.output
    assert (tmp_path / "o/a.npy").is_file()
    res = CliRunner().invoke(app, ["predict", str(tmp_path / "a.png"), "--model", tiny_dav2,
                                   "--input-size", "30"])
    assert res.exit_code == 2 and "multiple of 14" in res.output
