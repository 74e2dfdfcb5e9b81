"""trainer/export.py: the exported student loads in transformers.pipeline offline and predicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from depthdistill.models import student as students
from depthdistill.trainer.export import export_student


def test_exported_student_runs_in_hf_pipeline_offline(tmp_path: Path, monkeypatch) -> None:
    from PIL import Image
    from transformers import pipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = students.build_student("tiny", seed=4).eval()
    out = export_student(model, tmp_path / "student", input_size=42)
    assert json.loads((out / "depthdistill.json").read_text())["space"] == "disparity"
    pipe = pipeline("depth-estimation", model=str(out), device="cpu")
    rgb = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    result = pipe(Image.fromarray(rgb))
    pred = result["predicted_depth"]
    assert tuple(pred.shape[-2:]) in {(42, 56), (60, 80)}  # processor size (or post-processed)
    assert result["depth"].size == (80, 60)  # PIL (W, H) at the input resolution
    # the same numbers as running the model on our own preprocessing of the processor's input
    proc = pipe.image_processor(Image.fromarray(rgb), return_tensors="pt")
    assert tuple(proc["pixel_values"].shape) == (1, 3, 42, 56)  # short side 42, multiple of 14
    with torch.no_grad():
        direct = model(pixel_values=proc["pixel_values"]).predicted_depth
    assert torch.isfinite(direct).all() and direct.shape == (1, 42, 56)
