"""A third teacher kind, added as one module (models/dpt.py) + one entry (models/kinds.py):
labels, train and eval take a DPT / MiDaS teacher with no other change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depthdistill.config import (ImagesConfig, LabelsConfig, StagesConfig, TeacherConfig, TrainConfig,
                                 ViewsConfig)
from depthdistill.models.registry import fingerprint_teacher, load_teacher


def _tiny_dpt(folder: Path) -> Path:
    from transformers import DPTConfig, DPTForDepthEstimation

    torch.manual_seed(0)
    config = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                       image_size=64, patch_size=16, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 32, 32],
                       fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5], head_in_index=-1)
    DPTForDepthEstimation(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_dpt_teacher_through_labels_train_and_eval(ray_local, tmp_path: Path) -> None:
    from depthdistill.evaluation.runner import run_eval
    from depthdistill.models.configs import build_dav2
    from depthdistill.pipeline.run import run_labels
    from depthdistill.shards import open_store
    from depthdistill.trainer.loop import train
    from test_eval_datasets import write_world

    dpt = _tiny_dpt(tmp_path / "dpt-tiny")
    build_dav2("tiny", seed=1).save_pretrained(tmp_path / "dav2")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (80, 120, 3), dtype=np.uint8)).save(imgs / f"{i}.png")
    teachers = (TeacherConfig(name="midas", kind="dpt", model=str(dpt), input_size=64, input_multiple=8, weight=0.5),
                TeacherConfig(name="dav2", kind="dav2", model=str(tmp_path / "dav2"), input_size=56, weight=0.5))
    cfg = StagesConfig(images=ImagesConfig(source=str(imgs)),
                       views=ViewsConfig(view_size=56, crop_min=64, patch_size=56, max_grid=2), teachers=teachers,
                       labels=LabelsConfig(out=str(tmp_path / "labels"), shard_size=2),
                       train=TrainConfig(student="tiny", steps=2, batch_size=2, eval_images=0, ckpt_every=2,
                                         shuffle_buffer=2))
    summary = run_labels(cfg)
    assert summary.ok and {t.name: t.done for t in summary.teachers} == {"midas": 2, "dav2": 2}
    store = open_store(summary.store)
    assert store.teachers["midas"].space == "disparity" and "dpt" not in store.teachers["midas"].folder.name
    result = train(cfg, summary.store, tmp_path / "run")
    assert result.steps == 2 and result.export_dir is not None
    write_world(tmp_path / "world", n=2)
    (res,) = run_eval([str(dpt)], [("world", str(tmp_path / "world"))], cfg, out=tmp_path / "eval", input_size=64,
                      progress=False)
    assert res.num_images == 2 and np.isfinite(res.abs_rel) and res.space == "disparity"


def test_dpt_teacher_loads_predicts_and_fingerprints_like_any_kind(tmp_path):
    from depthdistill.models.dpt import DPTTeacher

    dpt_dir = _tiny_dpt(tmp_path / "dpt-tiny")
    cfg = TeacherConfig(name="midas", kind="dpt", model=str(dpt_dir), input_size=64)
    teacher = load_teacher(cfg)
    assert isinstance(teacher, DPTTeacher) and teacher.space == "disparity"
    maps = teacher.predict(np.random.default_rng(0).integers(0, 255, (2, 40, 50, 3), dtype=np.uint8))
    assert maps.shape == (2, 40, 50) and torch.isfinite(maps).all()
    assert fingerprint_teacher(cfg) == (teacher.fingerprint, "disparity")  # folder-only path agrees
    as_dav2 = TeacherConfig(name="midas", kind="dav2", model=str(dpt_dir), input_size=64, input_multiple=16)
    assert fingerprint_teacher(as_dav2)[0] != teacher.fingerprint  # the kind is part of the fingerprint
    with pytest.raises(ValueError, match="multiple of 32"):
        TeacherConfig(name="midas", kind="dpt", model=str(dpt_dir), input_size=48)
