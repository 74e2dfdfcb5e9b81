"""The eval loop: protocol agrees with an independent numpy Marigold implementation; the
command prints the table and writes JSON / CSV; bad roots exit 2; partial roots are counted."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from depthdistill.commands.eval import pair_datasets
from depthdistill.evaluation.datasets import EvalSample, open_benchmark

from test_eval_datasets import write_nyu, write_world  # noqa: E402  (tests/ is on sys.path)


def marigold_numpy(pred, gt, mask, space, depth_range):
    """Marigold's eval (script/eval/eval.py + src/util/alignment.py + metric.py), in numpy."""
    lo, hi = depth_range
    if space == "disparity":
        gt_disp = np.zeros_like(gt, dtype=np.float64)
        pos = gt > 0
        gt_disp[pos] = 1.0 / gt[pos]
        fit = mask & pos & (pred > 0)
        target = gt_disp
    else:
        fit, target = mask, gt.astype(np.float64)
    a = np.stack([pred[fit].astype(np.float64), np.ones(fit.sum())], axis=1)
    scale, shift = np.linalg.lstsq(a, target[fit], rcond=None)[0]
    aligned = pred.astype(np.float64) * scale + shift
    depth = 1.0 / np.clip(aligned, 1e-3, None) if space == "disparity" else aligned
    depth = np.clip(np.clip(depth, lo, hi), 1e-6, None)
    g, d = gt[mask].astype(np.float64), depth[mask]
    return np.mean(np.abs(d - g) / g), np.mean(np.maximum(d / g, g / d) < 1.25)


@pytest.mark.parametrize("space", ["disparity", "depth"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_protocol_matches_numpy_marigold(space, seed):
    pytest.importorskip("depthdistill.depth")
    from depthdistill.evaluation.runner import score_sample

    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.5, 12.0, (24, 32)).astype(np.float32)
    gt[rng.random(gt.shape) < 0.1] = 0.0
    truth = 1.0 / np.where(gt > 0, gt, 1.0) if space == "disparity" else gt
    pred = (3.0 * truth + 0.2 + rng.normal(0, 0.3 * truth.std(), gt.shape)).astype(np.float32)
    pred[rng.random(gt.shape) < 0.05] = -0.1  # negative outputs must not enter the disparity fit
    depth_range = (1e-3, 10.0)
    mask = (gt > depth_range[0]) & (gt < depth_range[1]) & (rng.random(gt.shape) < 0.9)
    sample = EvalSample(key="x", rgb=np.zeros((24, 32, 3), np.uint8), depth=gt, mask=mask)
    ours = score_sample(pred, sample, space, depth_range)
    ref = marigold_numpy(pred, gt, mask, space, depth_range)
    assert ours["abs_rel"] == pytest.approx(ref[0], abs=1e-6)
    assert ours["delta1"] == pytest.approx(ref[1], abs=1e-6)
    assert 0.0 < ours["abs_rel"] < 1.0  # a real, non-trivial error


def test_affine_disparity_oracle_scores_perfectly():
    pytest.importorskip("depthdistill.depth")
    from depthdistill.evaluation.runner import score_sample

    gt = np.random.default_rng(3).uniform(1.0, 9.0, (20, 20)).astype(np.float32)
    sample = EvalSample(key="x", rgb=np.zeros((20, 20, 3), np.uint8), depth=gt, mask=np.ones_like(gt, bool))
    scores = score_sample(5.0 / gt + 0.5, sample, "disparity", (1e-3, 10.0))
    assert scores["abs_rel"] < 1e-5 and scores["delta1"] == 1.0 and scores["edge_f1"] == pytest.approx(1.0)
    assert np.isnan(scores["thin_abs_rel"])  # no thin mask: undefined, not 0
    empty = EvalSample(key="y", rgb=sample.rgb, depth=gt, mask=np.zeros_like(gt, bool))
    assert score_sample(gt, empty, "disparity", (1e-3, 10.0)) is None


class OraclePredictor:
    """Duck-typed predictor: returns an affine transform of the GT disparity (resized maps)."""

    spec, space = "oracle", "disparity"

    def __init__(self, gts):
        self.gts = gts

    def predict(self, images):
        return [2.0 / self.gts.pop(0) + 1.0 for _ in images]


def test_evaluate_dataset_means_over_images_and_counts_skips(tmp_path):
    pytest.importorskip("depthdistill.depth")
    from depthdistill.evaluation.runner import evaluate_dataset

    write_world(tmp_path, n=3)
    (tmp_path / "depth/000001.png").unlink()
    data = open_benchmark("world", tmp_path)
    gts = [np.full((24, 32), 1.5, np.float32) for _ in range(2)]
    res = evaluate_dataset(OraclePredictor(gts), data, batch_size=2, progress=False)
    assert res.num_images == 2 and res.num_skipped == 1
    assert res.abs_rel < 1e-5 and res.delta1 == 1.0 and len(res.per_image) == 2


def test_pair_datasets():
    assert pair_datasets(["nyuv2", "world"], ["/n"]) == [("nyuv2", "/n"), ("world", "")]
    assert pair_datasets(["world", "kitti"], ["/w", "/k"]) == [("world", "/w"), ("kitti", "/k")]
    assert pair_datasets(["kitti=/k", "world"], []) == [("kitti", "/k"), ("world", "")]
    with pytest.raises(ValueError, match="--root given 0 times"):
        pair_datasets(["nyuv2"], [])
    with pytest.raises(ValueError, match="unknown data set"):
        pair_datasets(["sintel"], ["/s"])
    # like the world, middlebury needs no root (its frame ships with scikit-image)
    assert pair_datasets(["middlebury", "kitti"], ["/k"]) == [("middlebury", ""), ("kitti", "/k")]


@pytest.fixture(scope="module")
def tiny_dav2(tmp_path_factory) -> str:
    from depthdistill.models.configs import build_dav2

    folder = tmp_path_factory.mktemp("models") / "dav2-tiny-random"
    build_dav2("tiny", seed=0).save_pretrained(folder)
    return str(folder)


def test_eval_command_table_json_csv(tiny_dav2, tmp_path):
    pytest.importorskip("depthdistill.depth")
    from typer.testing import CliRunner

    from depthdistill.cli import app

    write_world(tmp_path / "w", n=3)
    write_nyu(tmp_path / "nyu", n=2)
    (tmp_path / "nyu/test/kitchen_0004/depth_0002.png").unlink()
    out = tmp_path / "res"
    res = CliRunner().invoke(app, ["eval", "--model", tiny_dav2, "--model", tiny_dav2, "--dataset", "world",
                                   "--root", str(tmp_path / "w"), "--dataset", "nyuv2", "--root",
                                   str(tmp_path / "nyu"), "--out", str(out), "--input-size", "28",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # rich wraps lines at the console width (long tmp paths)
    assert "world" in text and "nyuv2" in text and "1 images skipped" in text
    payload = json.loads((out / "results.json").read_text())
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(payload["results"]) == len(rows) == 4
    nyu = [r for r in payload["results"] if r["dataset"] == "nyuv2"][0]
    assert nyu["num_images"] == 1 and nyu["num_skipped"] == 1 and 0 <= nyu["delta1"] <= 1
    assert len((out / "per_image.jsonl").read_text().splitlines()) == 2 * (3 + 1)


def test_eval_command_missing_root_exits_2(tiny_dav2, tmp_path):
    from typer.testing import CliRunner

    from depthdistill.cli import app

    res = CliRunner().invoke(app, ["eval", "--model", tiny_dav2, "--dataset", "kitti", "--root",
                                   str(tmp_path / "nothing")])
    assert res.exit_code == 2
    assert "kitti_eigen_split_test.tar" in res.output and "proj_depth/groundtruth" in res.output


@pytest.mark.slow
def test_world_split_rendered_when_no_root(tiny_dav2, tmp_path):
    from depthdistill.config import EvalConfig, StagesConfig
    from depthdistill.evaluation.runner import run_eval

    cfg = StagesConfig(eval=EvalConfig(eval_n=4))
    (res,) = run_eval([tiny_dav2], [("world", "")], cfg, out=tmp_path, input_size=56, progress=False)
    assert res.num_images == 4 and np.isfinite(res.abs_rel)
    assert (tmp_path / "cache").is_dir()


def test_mean_and_se_by_hand():
    from depthdistill.evaluation.runner import mean_and_se

    mean, se = mean_and_se([1.0, 2.0, 3.0, float("nan")])  # NaN (undefined image) is left out
    assert mean == pytest.approx(2.0) and se == pytest.approx(1.0 / np.sqrt(3))
    assert np.isnan(mean_and_se([4.0])[1]) and mean_and_se([4.0])[0] == 4.0  # one image: no SE
    assert all(np.isnan(v) for v in mean_and_se([]))


def test_result_carries_every_metric_with_its_standard_error(tmp_path):
    from depthdistill.evaluation.runner import evaluate_dataset

    write_world(tmp_path, n=3)
    data = open_benchmark("world", tmp_path)
    gts = [np.full((24, 32), 1.5, np.float32) for _ in range(3)]
    res = evaluate_dataset(OraclePredictor(gts), data, batch_size=2, progress=False)
    summary = res.summary()
    for metric in ("abs_rel", "delta1", "edge_f1", "thin_abs_rel"):
        assert f"{metric}_se" in summary and metric in summary
    values = [r["abs_rel"] for r in res.per_image]
    assert summary["abs_rel_se"] == pytest.approx(np.std(values, ddof=1) / np.sqrt(3))


@pytest.mark.parametrize("kind", ["constant", "ramp"])
def test_baselines_look_at_no_pixel(kind):
    from depthdistill.evaluation.predictor import make_predictor
    from depthdistill.evaluation.runner import score_sample

    pred = make_predictor(f"baseline://{kind}", None)
    a, b = pred.predict([np.zeros((6, 4, 3), np.uint8), np.full((6, 4, 3), 255, np.uint8)])
    np.testing.assert_array_equal(a, b)  # the image content does not matter
    assert a.shape == (6, 4)
    if kind == "ramp":  # lower rows are nearer: disparity grows downwards, constant along a row
        assert (np.diff(a[:, 0]) > 0).all() and (a == a[:, :1]).all()
    # a scene whose disparity is exactly a vertical ramp: the ramp baseline is perfect on it
    rows = np.linspace(1.0, 3.0, 6, dtype=np.float32)[:, None].repeat(4, 1)
    sample = EvalSample(key="r", rgb=np.zeros((6, 4, 3), np.uint8), depth=1.0 / rows, mask=np.ones((6, 4), bool))
    scores = score_sample(a, sample, pred.space, (1e-3, 10.0))
    assert (scores["abs_rel"] < 1e-6) == (kind == "ramp")
    with pytest.raises(ValueError, match="unknown baseline"):
        make_predictor("baseline://median", None)


def test_middlebury_frame_metric_depth_from_its_calibration():
    pytest.importorskip("skimage")
    from depthdistill.evaluation.datasets import disparity_to_depth, load_frame

    # Z = 193.001 mm * 994.978 px / (d + 31.086 px): by hand for d = 10 px
    assert disparity_to_depth(np.array([[10.0, np.inf, np.nan]])) == pytest.approx(
        np.array([[193.001 * 994.978 / 41.086 / 1000, 0.0, 0.0]], np.float32))
    frame = load_frame()
    assert frame.rgb.shape == (500, 741, 3) and frame.depth.shape == (500, 741)
    known = frame.depth[frame.mask]
    assert 0.85 < frame.mask.mean() < 0.99  # ~7% of the frame has no ground truth
    assert 1.5 < known.min() and known.max() < 6.0  # a motorcycle 2-5 m from the camera
    data = open_benchmark("middlebury", "")
    assert len(data) == 1 and [s.key for s in data] == [frame.key]
