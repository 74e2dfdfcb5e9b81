"""trainer/loop.py end to end on a tiny store: resume equality, faults, export, eval, CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from depthdistill.config import StagesConfig, TeacherConfig, TrainConfig, ViewsConfig
from depthdistill.trainer import checkpoint as ckpt
from depthdistill.trainer import loop
from test_trainer_data import TEACHERS, VIEW, make_store


def tiny_config(**train) -> StagesConfig:
    args = dict(student="tiny", init="random", steps=6, batch_size=2, lr_encoder=1e-4, lr_decoder=1e-3,
                warmup_steps=2, eval_images=0, eval_every=100, ckpt_every=3, shuffle_buffer=4, seed=0)
    args.update(train)
    return StagesConfig(views=ViewsConfig(**VIEW), train=TrainConfig(**args),
                        teachers=tuple(TeacherConfig(name=n, weight=w, input_size=42)
                                       for n, w in zip(TEACHERS, (0.7, 0.3))))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("loop"), num_shards=2, per_shard=4)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> str:
    """A pretrained-looking tiny DAv2 folder: L_feat's frozen encoder for random-init students."""
    from depthdistill.models.configs import build_dav2

    folder = tmp_path_factory.mktemp("reference") / "dav2-tiny-ref"
    build_dav2("tiny", seed=1).save_pretrained(folder)
    return str(folder)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return ckpt.load_checkpoint(path)["model"]


class Killed(Exception):
    pass


def test_killed_and_resumed_run_matches_straight_run(tmp_path: Path, store: Path, reference: str,
                                                     monkeypatch) -> None:
    cfg = tiny_config(feat_reference=reference, w_anchor=0.1)
    straight = loop.train(cfg, store, tmp_path / "a")
    assert straight.steps == 6 and set(straight.last_terms) >= {"sc", "lg", "feat", "grad", "anchor", "total"}

    real_log = loop.log_step

    def dying_log(writer, bar, stats, step, seconds):
        real_log(writer, bar, stats, step, seconds)
        if step == 4:  # killed after the step-3 checkpoint, before the step-6 one
            raise Killed

    monkeypatch.setattr(loop, "log_step", dying_log)
    with pytest.raises(Killed):
        loop.train(cfg, store, tmp_path / "b")
    assert ckpt.load_checkpoint(tmp_path / "b" / ckpt.LAST)["step"] == 3
    monkeypatch.setattr(loop, "log_step", real_log)
    resumed = loop.train(cfg, store, tmp_path / "b")
    assert resumed.steps == 6
    a, b = _weights(tmp_path / "a" / ckpt.LAST), _weights(tmp_path / "b" / ckpt.LAST)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    start = _weights(tmp_path / "a" / ckpt.LAST)  # training moved the weights at all
    saved = ckpt.load_checkpoint(tmp_path / "a" / ckpt.LAST)
    assert json.loads((tmp_path / "a" / "config.json").read_text())["train"]["steps"] == 6
    assert saved["config"]["train"]["steps"] == 6 and saved["data"]["ranks"][0]["batches"] == 6
    assert any(not torch.equal(start[k], saved["frozen_encoder"][k.removeprefix("backbone.")])
               for k in start if k.startswith("backbone.") and k.removeprefix("backbone.") in saved["frozen_encoder"])
    assert (tmp_path / "a" / "student" / "config.json").is_file()
    assert list((tmp_path / "a" / "tb").iterdir())


def _nan_after(monkeypatch, bad_calls: set[int]) -> None:
    real = loop.DistillationLoss.forward
    calls = {"n": 0}

    def forward(self, *args, **kw):
        total, terms = real(self, *args, **kw)
        calls["n"] += 1
        if calls["n"] in bad_calls:
            total = total * float("nan")
        return total, terms

    monkeypatch.setattr(loop.DistillationLoss, "forward", forward)


def test_single_nan_step_is_skipped(tmp_path: Path, store: Path, monkeypatch) -> None:
    _nan_after(monkeypatch, {2})
    result = loop.train(tiny_config(steps=3, w_feat=0.0), store, tmp_path)
    assert result.steps == 3 and result.skipped_steps == 1
    weights = _weights(tmp_path / ckpt.LAST)
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_three_nans_in_a_row_stop_with_last_good_checkpoint(tmp_path: Path, store: Path, monkeypatch) -> None:
    _nan_after(monkeypatch, {4, 5, 6})
    with pytest.raises(loop.TrainingDivergedError, match="3 non-finite"):
        loop.train(tiny_config(steps=6, ckpt_every=3, w_feat=0.0), store, tmp_path)
    assert ckpt.load_checkpoint(tmp_path / ckpt.LAST)["step"] == 3


def test_checkpoint_write_failure_keeps_previous(tmp_path: Path, store: Path, monkeypatch) -> None:
    real_save = torch.save
    calls = {"n": 0}

    def failing_save(obj, f, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # the step-2 write: disk full half way
            f.write(b"partial")
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", failing_save)
    result = loop.train(tiny_config(steps=2, ckpt_every=1, w_feat=0.0), store, tmp_path)
    assert result.steps == 2
    assert ckpt.load_checkpoint(tmp_path / ckpt.LAST)["step"] == 1  # the valid previous one
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_missing_teacher_in_store_is_a_clear_error(tmp_path: Path, store: Path) -> None:
    cfg = tiny_config()
    cfg = dataclasses.replace(cfg, teachers=cfg.teachers + (TeacherConfig(name="marigold", input_size=42),))
    with pytest.raises(ValueError, match="marigold"):
        loop.train(cfg, store, tmp_path)


def test_periodic_eval_keeps_best_checkpoint_and_can_export_it(tmp_path: Path, store: Path) -> None:
    from transformers import AutoModelForDepthEstimation

    result = loop.train(tiny_config(steps=2, eval_images=1, eval_every=1, w_feat=0.0, export="best"), store, tmp_path)
    assert math.isfinite(result.best_abs_rel)
    best = ckpt.load_checkpoint(tmp_path / ckpt.BEST)
    assert best["best"] == pytest.approx(result.best_abs_rel)
    exported = AutoModelForDepthEstimation.from_pretrained(tmp_path / "student").state_dict()
    for name, value in best["model"].items():
        torch.testing.assert_close(exported[name], value, msg=name)


def test_cli_train_command_runs(tmp_path: Path, store: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from depthdistill.cli import app

    cfg = tiny_config(steps=1, w_feat=0.0).to_dict()
    cfg.pop("source_path")
    cfg["eval"]["datasets"] = [dict(d) for d in cfg["eval"]["datasets"]]
    cfg["labels"].pop("actor_resources", None)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(cfg))))
    res = CliRunner().invoke(app, ["train", "--shards", str(store), "--config", str(tmp_path / "s.yaml"),
                                   "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "student" / "model.safetensors").is_file()
    res = CliRunner().invoke(app, ["train", "--shards", str(tmp_path / "none"), "--config", str(tmp_path / "s.yaml")])
    assert res.exit_code == 2 and "no such folder" in res.output


def test_train_on_a_corrupt_shard_names_it_and_skips_or_stops(tmp_path: Path, caplog) -> None:
    import logging

    from depthdistill import shards

    store = make_store(tmp_path / "store", num_shards=2, per_shard=4)
    bad = shards.open_store(store).teacher_shard_path("gp", 1)
    raw = bytearray(bad.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING):
        result = loop.train(tiny_config(steps=3, w_feat=0.0), store, tmp_path / "skip")
    assert result.steps == 3 and result.skipped_shards == 1  # counted in the run's summary
    assert str(bad) in caplog.text and "sha256" in caplog.text
    with pytest.raises(shards.ShardChecksumError, match="shard-000001"):
        loop.train(tiny_config(steps=3, w_feat=0.0, strict=True), store, tmp_path / "strict")
