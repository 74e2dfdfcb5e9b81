"""make demo / make science: report builder, seed aggregation, the chain's failure handling."""

from __future__ import annotations

import json
import time
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from depthdistill.demo import chain, report, science, science_tables, tables

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


# ----------------------------------------------------------------------------- tables


def test_aggregate_mean_and_sample_std_exact():
    s = tables.aggregate([0.1, 0.2, 0.3])
    assert s.n == 3 and s.failed == 0
    assert s.mean == pytest.approx(0.2, abs=1e-12)
    assert s.spread == pytest.approx(0.1, abs=1e-12)  # sample std (ddof=1), not population (0.0816)
    assert s.format() == "0.200 ± 0.100"


def test_aggregate_leaves_out_non_finite_and_says_so():
    s = tables.aggregate([1.0, float("nan"), 3.0, float("inf")])
    assert (s.mean, s.n, s.failed) == (2.0, 2, 2)
    assert s.spread == pytest.approx(math.sqrt(2.0))
    assert s.format(2) == "2.00 ± 1.41 (2 failed)"
    assert tables.aggregate([0.5]).format() == "0.500 (1 run)"
    assert tables.aggregate([float("nan")]).format() == "failed (1 runs)"


def test_group_stats_groups_in_order():
    rows = [{"variant": "b", "abs_rel": 0.4}, {"variant": "a", "abs_rel": 0.1}, {"variant": "b", "abs_rel": 0.2}]
    g = tables.group_stats(rows, "variant", ("abs_rel", "delta1"))
    assert list(g) == ["b", "a"]
    assert g["b"]["abs_rel"].mean == pytest.approx(0.3)
    assert g["a"]["delta1"].n == 0  # missing metric: nothing averaged


def test_markdown_table_checks_width():
    assert tables.markdown_table(["a", "b"], [[1, "x|y"]]).splitlines() == ["| a | b |", "|---|---|", "| 1 | x\\|y |"]
    with pytest.raises(ValueError, match="2 columns"):
        tables.markdown_table(["a", "b"], [[1]])


# ----------------------------------------------------------------------------- report


RESULTS = [
    {"model": "teacher:dav2", "dataset": "world", "abs_rel": 0.1234, "delta1": 0.8766, "num_images": 7},
    {"model": "/r/train-baseline/student", "dataset": "world", "abs_rel": 0.25, "delta1": 0.5, "num_images": 7},
]
LABELS = {"teacher:dav2": "teacher dav2", "/r/train-baseline/student": "baseline student"}


def test_eval_table_has_exactly_the_json_numbers():
    header, rows = report.eval_table(RESULTS, LABELS)
    assert header == ["model", "world: AbsRel ↓ / δ1 ↑"]
    assert rows == [["teacher dav2", "0.123 / 0.877 (7 images)"], ["baseline student", "0.250 / 0.500 (7 images)"]]


def test_align_to_gt_undoes_an_affine_disparity():
    gt = np.array([[1.0, 2.0], [4.0, 8.0]])
    valid = np.ones_like(gt, dtype=bool)
    pred = 3.0 * (1.0 / gt) + 0.5  # an affine map of the true disparity
    np.testing.assert_allclose(report.align_to_gt(pred, gt, valid, "disparity", (1e-3, 80.0)), 1.0 / gt, atol=1e-9)


def _write_events(tb: Path, series: dict[str, list[tuple[int, float]]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tb))
    for tag, pts in series.items():
        for step, v in pts:
            w.add_scalar(tag, v, step)
    w.close()


def _fake_demo(out: Path) -> None:
    """A finished demo's outputs made by hand: demo.json, eval JSON, TB events, eval split, predictions."""
    run = out / "train-baseline"
    _write_events(run / "tb", {"loss/total": [(1, 2.0), (2, 1.5), (3, 1.0)], "loss/sc": [(1, 1.0), (2, 0.8), (3, 0.6)],
                               "eval/abs_rel": [(2, 0.4), (3, 0.3)], "eval/delta1": [(2, 0.6), (3, 0.7)],
                               "train/median_output": [(1, 1.0), (2, 1.1), (3, 1.2)]})
    (out / "eval").mkdir(parents=True)
    results = [dict(r, model=str(run / "student") if "train" in r["model"] else r["model"]) for r in RESULTS]
    (out / "eval" / "results.json").write_text(json.dumps({"results": results}))
    root = out / "eval-world"
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 5.0, (12, 16))
    for sub, arr in (("rgb", rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)),
                     ("depth", (depth * 1000).astype(np.uint16)), ("mask", np.full((12, 16), 255, np.uint8))):
        (root / sub).mkdir(parents=True)
        Image.fromarray(arr).save(root / sub / "000000.png")
    pdir = out / "predict" / "0-teacher-dav2"
    pdir.mkdir(parents=True)
    np.save(pdir / "000000.npy", (2.0 / depth).astype(np.float32))
    (pdir / "000000.depth16.json").write_text(json.dumps({"space": "disparity"}))
    demo = {"config": "stages.yaml", "out": str(out), "steps": 3, "store": "/s", "wall_s": 90.0,
            "eval_models": {"teacher:dav2": "teacher dav2", str(run / "student"): "baseline student"},
            "students": {"baseline": {"label": "baseline student", "about": "L_sc global", "set": {"train.w_lg": 0.0},
                                      "config": "c.yaml", "run": str(run)}},
            "predict_dirs": {"teacher dav2": str(pdir)},
            "records": [{"name": "eval", "command": "depthdistill eval --model teacher:dav2", "seconds": 12.0}]}
    (out / "demo.json").write_text(json.dumps(demo))


def test_build_report_reads_every_number_from_the_outputs(tmp_path):
    _fake_demo(tmp_path)
    text = report.build_report(tmp_path).read_text()
    assert "| teacher dav2 | 0.123 / 0.877 (7 images) |" in text
    assert "| baseline student | 0.250 / 0.500 (7 images) |" in text
    assert "0.400 (step 2)" in text and "0.300 (step 3)" in text  # first / last trainer eval from TB
    assert "`depthdistill eval --model teacher:dav2`" in text  # the command that made the table
    assert "**90 s** (1.5 min)" in text
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert Image.open(tmp_path / "pictures.png").size[0] > 100
    assert report.headline(tmp_path).startswith("teacher dav2 0.123/0.877; baseline student 0.250/0.500")


def test_read_scalars_keeps_the_latest_value_of_a_rewritten_step(tmp_path):
    _write_events(tmp_path / "a", {"eval/abs_rel": [(1, 0.5), (2, 0.4)]})
    # Event files are read in name order: <time s>.<host>.<pid>.<writer count>. Within one second
    # and one process a count of 10 sorts before 9, so the resumed run's file gets a later second.
    time.sleep(1.05)
    _write_events(tmp_path / "a", {"eval/abs_rel": [(2, 0.3), (3, 0.2)]})  # a resumed run rewrites step 2
    assert report.read_scalars(tmp_path / "a")["eval/abs_rel"] == [(1, 0.5), (2, pytest.approx(0.3)), (3, pytest.approx(0.2))]


# ----------------------------------------------------------------------------- chain


def test_run_steps_stops_at_the_failing_step_and_names_it(tmp_path):
    marker = tmp_path / "never.txt"
    steps = [chain.Step("first", (PY, "-c", "print('fine')"), tmp_path / "1.log"),
             chain.Step("broken", (PY, "-c", "import sys; print('boom: bad key'); sys.exit(3)"), tmp_path / "2.log"),
             chain.Step("after", (PY, "-c", f"open({str(marker)!r}, 'w')"), tmp_path / "3.log")]
    seen = []
    with pytest.raises(chain.StepFailedError, match="step 'broken' failed \\(exit 3\\)") as info:
        chain.run_steps(steps, echo=False, on_record=lambda r: seen.append(r.name))
    assert info.value.step == "broken" and "boom: bad key" in str(info.value)
    assert seen == ["first"] and not marker.exists()
    assert (tmp_path / "1.log").read_text().strip() == "fine"


def test_run_parallel_names_the_failing_step(tmp_path):
    steps = [chain.Step("ok", (PY, "-c", "print(1)"), tmp_path / "a.log"),
             chain.Step("bad", (PY, "-c", "raise SystemExit(5)"), tmp_path / "b.log")]
    with pytest.raises(chain.StepFailedError) as info:
        chain.run_parallel(steps, echo=False)
    assert (info.value.step, info.value.returncode) == ("bad", 5)
    records = chain.run_parallel(steps[:1], echo=False)
    assert [r.name for r in records] == ["ok"]


def test_demo_refuses_a_bad_config_at_the_labels_step(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  stepz: 3\n")
    with pytest.raises(chain.StepFailedError) as info:
        chain.run_demo(bad, tmp_path / "run", echo=False)
    assert info.value.step == "labels"
    assert "train.stepz" in str(info.value)  # the CLI's error is in the message
    assert not (tmp_path / "run" / "train-baseline").exists()
    assert not (tmp_path / "run" / "demo.json").exists()  # no step finished


def test_derive_config_validates_overrides(tmp_path):
    from depthdistill.config import ConfigError, load_config

    out = chain.derive_config(REPO / "stages.yaml", {"train.norm_sc": "global", "train.w_lg": 0.0}, tmp_path / "a.yaml")
    cfg = load_config(out)
    assert (cfg.train.norm_sc, cfg.train.w_lg, cfg.train.norm_lg) == ("global", 0.0, "hybrid")
    with pytest.raises(ConfigError, match="train.norm_sc"):
        chain.derive_config(REPO / "stages.yaml", {"train.norm_sc": "bogus"}, tmp_path / "b.yaml")


def test_demo_students_file_is_valid():
    spec = chain.read_students(chain.DEFAULT_STUDENTS)
    assert set(spec["students"]) == {"baseline", "cross-context"}
    assert spec["students"]["baseline"]["set"]["train.norm_sc"] == "global"


# ----------------------------------------------------------------------------- science


def test_science_variants_and_shared_runs(tmp_path):
    base = yaml.safe_load((REPO / "stages.yaml").read_text())
    vs = science.variants({"dav2": 0.7, "genpercept": 0.3}, "hybrid", "hybrid")
    assert [sum(v.table == t for v in vs) for t in ("table1", "table2", "table4")] == [8, 4, 3]
    by = {(v.table, v.name): dict(v.overrides) for v in vs}
    lg_none = by[("table1", "none|local-global only")]
    assert (lg_none["train.w_sc"], lg_none["train.w_lg"], lg_none["train.norm_lg"]) == (0.0, 1.0, "none")
    assert [v.store for v in vs if v.table == "table2"] == ["nocrop", "crop", "nocrop", "crop"]
    store = Path("/store")
    sc_hybrid = science.derive(base, by[("table1", "hybrid|shared-context only")], 0, 10)
    plus_sc = science.derive(base, by[("table2", "+ shared context (random crop)")], 0, 10)
    assert science.run_key(store, sc_hybrid) == science.run_key(store, plus_sc)  # one training for both cells
    assert science.run_key(store, science.derive(base, by[("table2", "both")], 0, 10)) != science.run_key(store, plus_sc)
    single = science.derive(base, by[("table4", "student of genpercept only")], 2, 10)
    assert [t["weight"] for t in single["teachers"]] == [0.0, 1.0]
    assert (single["train"]["seed"], single["train"]["eval_images"]) == (2, 0)


def test_science_table_writer_exact_mean_and_spread(tmp_path):
    s = science.Settings(config=Path("stages.yaml"), out=tmp_path, docs=tmp_path / "docs", steps=5, seeds=3)
    rows = [{"table": "table2", "variant": "both", "seed": i, "abs_rel": v, "delta1": 0.5} for i, v in
            enumerate([0.1, 0.2, 0.3])]
    rows += [{"table": "table2", "variant": "baseline (no random crop, L_sc)", "seed": i, "abs_rel": 0.5,
              "delta1": 0.4} for i in range(3)]
    text = science_tables.write_table("table2", rows, {}, s, {"crop": "/a"}, 60.0).read_text()
    assert "| both | 0.200 ± 0.100 | 0.500 ± 0.000 |" in text
    assert "| baseline (no random crop, L_sc) | 0.500 ± 0.000 | 0.400 ± 0.000 |" in text
    assert "agrees with the paper" in text
    fig = {"dav2": [{"global_ls_abs_rel": 0.3, "local_ls_abs_rel": 0.2, "global_ls_delta1": 0.5, "local_ls_delta1": 0.6,
                     "card_crop_global_abs_rel": 0.3, "card_crop_local_abs_rel": 0.25}]}
    text = science_tables.write_fig2(fig, s, 6.0).read_text()
    assert "| dav2 | 0.300 (1 run) | 0.200 (1 run) |" in text and "agrees with the paper" in text


def test_science_rejects_unknown_table():
    with pytest.raises(SystemExit):
        science.parse_args(["--only", "table9"])
    assert science.parse_args(["--quick"]).steps == 2


# ----------------------------------------------------------------------------- end to end (slow)


def _tiny_random_teachers(folder: Path) -> dict:
    """Both teacher kinds, randomly initialised and saved as save_pretrained folders (no assets needed)."""
    import torch

    from depthdistill.models import tiny_teachers as tt
    from depthdistill.models.genpercept import save_genpercept_folder
    from depthdistill.models.make_teachers import save_dav2
    from depthdistill.models.prompt_embedding import tiny_prompt_embedding

    torch.manual_seed(0)
    save_dav2(tt.build_dav2_tiny(112), folder / "dav2", 112)
    unet, vae = tt.build_genpercept_tiny(112)
    save_genpercept_folder(unet, vae, tiny_prompt_embedding(unet.config.cross_attention_dim, seed=0), folder / "gp")
    return {"dav2": str(folder / "dav2"), "genpercept": str(folder / "gp")}


@pytest.mark.slow
def test_demo_chain_end_to_end_tiny(tmp_path):
    """n=4 images, 2 steps: labels -> validate -> 2 students -> eval -> predict -> report."""
    models = _tiny_random_teachers(tmp_path / "teachers")
    base = yaml.safe_load((REPO / "stages.yaml").read_text())
    for t in base["teachers"]:
        t["model"] = models[t["name"]]
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    cfg = chain.derive_config(tmp_path / "base.yaml", {"eval.eval_n": 3}, tmp_path / "stages.yaml")
    students = tmp_path / "students.yaml"
    spec = chain.read_students(chain.DEFAULT_STUDENTS)
    students.write_text(yaml.safe_dump({**spec, "steps": 2, "eval_every": 1, "predict_images": 2}))
    plan = chain.run_demo(cfg, tmp_path / "run", students_file=students, images="world://unlabeled?n=4", echo=False)
    text = (tmp_path / "run" / "report.md").read_text()
    results = json.loads((tmp_path / "run" / "eval" / "results.json").read_text())["results"]
    assert len(results) == 4 and all(r["num_images"] == 3 for r in results)
    for r in results:
        assert f"{tables.fmt(r['abs_rel'])} / {tables.fmt(r['delta1'])}" in text
    assert [r["name"] for r in plan.records][:2] == ["labels", "shards validate"]
    assert plan.records[-1]["name"] == "report"
    assert (tmp_path / "run" / "pictures.png").is_file()


@pytest.mark.slow
def test_science_quick_path_end_to_end(tmp_path):
    """--quick (1 seed, 2 steps) on 4 images: Fig. 2 and Table 4 written with measured numbers."""
    models = _tiny_random_teachers(tmp_path / "teachers")
    base = yaml.safe_load((REPO / "stages.yaml").read_text())
    for t in base["teachers"]:
        t["model"] = models[t["name"]]
    cfg = tmp_path / "stages.yaml"
    cfg.write_text(yaml.safe_dump(base))
    rc = science.main(["--quick", "--config", str(cfg), "--out", str(tmp_path / "sci"), "--docs", str(tmp_path / "docs"),
                       "--images", "world://unlabeled?n=4", "--eval-n", "2", "--only", "fig2,table4"])
    assert rc == 0
    rows = json.loads((tmp_path / "sci" / "runs.json").read_text())
    assert [r["variant"] for r in rows] == ["student of dav2 only", "student of genpercept only",
                                            "multi-teacher student (0.7/0.3)"]
    text = (tmp_path / "docs" / "table4.md").read_text()
    for r in rows:
        assert math.isfinite(r["abs_rel"]) and f"| {r['variant']} | {r['abs_rel']:.3f} (1 run) |" in text
    assert "| dav2 |" in (tmp_path / "docs" / "fig2.md").read_text()
    assert not (tmp_path / "docs" / "table1.md").exists()
