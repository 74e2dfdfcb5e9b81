"""trainer/losses.py, optim.py, checkpoint.py and the student builders on hand-made inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depthdistill.config import TrainConfig
from depthdistill.models import student as students
from depthdistill.trainer import checkpoint as ckpt
from depthdistill.trainer import losses, optim


def _scene(b: int = 2, v: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, v), torch.linspace(0, 1, v), indexing="ij")
    base = 1 + xx + 2 * yy + torch.sin(6 * xx) * torch.cos(4 * yy)  # [V, V]
    return base[None] * (1 + torch.rand(b, 1, 1, generator=g)) + torch.rand(b, v, v, generator=g) * 0.3  # [B, V, V]


def _lg_inputs(pred: torch.Tensor, affine: bool = True):
    """Teacher patches = the student's own 16x16 footprints (pixel aligned), affinely changed."""
    from depthdistill.views import crop_footprint

    b = pred.shape[0]
    fps = torch.tensor([[0, 0, 16, 16], [16, 0, 32, 16], [8, 8, 24, 24], [0, 0, 0, 0]], dtype=torch.float32)
    footprints = fps[None].repeat(b, 1, 1)  # [B, 4, 4]
    valid = torch.tensor([[True, True, True, False]] * b)  # [B, 4]: last slot is padding
    patches = torch.zeros(b, 4, 16, 16)
    for i in range(b):
        for n in range(3):
            crop = crop_footprint(pred[i], fps[n].tolist(), (16, 16))  # [16, 16]
            patches[i, n] = (3.0 + n) * crop + 5.0 * n - 1 if affine else crop.flip(-1)
    return patches, torch.ones(b, 4, 16, 16, dtype=torch.bool), footprints, valid


@pytest.mark.parametrize("norm", ["hybrid", "global", "local"])
def test_local_global_zero_for_affine_crops_positive_otherwise(norm: str) -> None:
    pred = _scene()
    lg = losses.LocalGlobalLoss(norm)
    assert float(lg(pred, *_lg_inputs(pred))) == pytest.approx(0.0, abs=1e-5)
    assert float(lg(pred, *_lg_inputs(pred, affine=False))) > 0.05
    assert float(losses.LocalGlobalLoss("none")(pred, *_lg_inputs(pred))) > 1.0  # per-patch scale matters


def test_shared_context_and_gradient_terms() -> None:
    t = _scene()
    mask = torch.ones_like(t, dtype=torch.bool)
    for norm in ("hybrid", "global"):
        assert float(losses.SharedContextLoss(norm)(2 * t + 7, t, mask)) == pytest.approx(0, abs=1e-5)
        assert float(losses.GradientMatchingLoss(norm, 4)(2 * t + 7, t, mask)) == pytest.approx(0, abs=1e-4)
    noisy = t + 0.5 * torch.rand(t.shape, generator=torch.Generator().manual_seed(1))
    assert float(losses.SharedContextLoss("hybrid")(noisy, t, mask)) > 0.01
    assert float(losses.GradientMatchingLoss("hybrid", 4)(noisy, t, mask)) > 0.01
    assert float(losses.SharedContextLoss("none")(t + 1.0, t, mask)) == pytest.approx(1.0, abs=1e-6)
    empty = torch.zeros_like(mask)
    assert float(losses.SharedContextLoss("hybrid")(noisy, t, empty)) == 0.0


def test_feature_loss_ignores_tokens_above_alpha() -> None:
    frozen = torch.eye(4)[None].repeat(1, 2, 1)  # [1, 8, 4]: tokens e0..e3 twice
    student = frozen.clone()
    student[0, 0] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # cos 0 -> loss 1
    student[0, 1] = torch.tensor([0.0, 0.0, 1.0, 0.0]) * -1  # cos 0 -> 1 (orthogonal to e1)
    student[0, 2] = torch.tensor([0.6, 0.0, 0.8, 0.0])  # cos 0.8 <= 0.85: kept, loss 0.2
    student[0, 3] = torch.tensor([0.0, 0.0, 0.3, 0.954])  # cos ~0.954 > 0.85: ignored
    kept = losses.FeatureAlignmentLoss(0.85, "kept")(student, frozen)
    assert float(kept) == pytest.approx((1 + 1 + 0.2) / 3, abs=1e-4)
    everything = losses.FeatureAlignmentLoss(0.85, "all")(student, frozen)
    assert float(everything) == pytest.approx((1 + 1 + 0.2) / 8, abs=1e-4)
    student2 = student.clone()
    student2[0, 3] = torch.tensor([0.0, 0.0, 0.5, 0.9])  # another ignored value: same loss
    assert float(losses.FeatureAlignmentLoss(0.85, "kept")(student2, frozen)) == pytest.approx(float(kept))


def test_distillation_loss_weights_and_terms() -> None:
    t = _scene()
    pred = t + 0.3 * torch.rand(t.shape, generator=torch.Generator().manual_seed(2))
    patches, pmask, fps, valid = _lg_inputs(pred, affine=False)
    batch = {"label": t, "label_mask": torch.ones_like(t, dtype=torch.bool), "patches": patches,
             "patch_mask": pmask, "footprints": fps, "patch_valid": valid}
    tokens, frozen = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    loss = losses.DistillationLoss(TrainConfig())
    total, terms = loss(pred, batch, tokens, frozen)
    assert set(terms) == {"sc", "lg", "feat", "grad"}
    expect = terms["sc"] + 0.5 * terms["lg"] + terms["feat"] + 2.0 * terms["grad"]
    assert float(total) == pytest.approx(float(expect))
    total, terms = losses.DistillationLoss(TrainConfig(w_feat=0.0, w_lg=0.0))(pred, batch)
    assert set(terms) == {"sc", "grad"}


def test_lr_schedule_is_a_pure_function_of_the_step() -> None:
    f = [optim.lr_factor(s, warmup_steps=4, total_steps=10, power=1.0) for s in range(11)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f[5] == pytest.approx(0.5) and f[10] == 0.0
    model = students.build_student("tiny")
    cfg = TrainConfig(steps=10, warmup_steps=0, lr_encoder=1e-5, lr_decoder=1e-4, poly_power=0.9)
    opt = optim.build_optimizer(model, cfg)
    assert [g["name"] for g in opt.param_groups] == ["encoder", "decoder"]
    n_backbone = sum(1 for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad)
    assert len(opt.param_groups[0]["params"]) == n_backbone
    lrs = optim.PolyWarmupSchedule(opt, cfg).apply(5)
    assert lrs["encoder"] == pytest.approx(1e-5 * 0.5 ** 0.9) and lrs["decoder"] == pytest.approx(1e-4 * 0.5 ** 0.9)


def test_student_head_guard_and_init_modes(tmp_path: Path) -> None:
    model = students.build_student("tiny", seed=3)
    assert torch.all(model.head.conv3.bias == students.HEAD_BIAS_INIT)
    with torch.no_grad():
        out = model(pixel_values=torch.randn(2, 3, 42, 42)).predicted_depth  # [2, 42, 42]
    assert (out > 0).float().mean() > 0.5  # on the live side of the final ReLU
    donor = students.build_student("tiny", seed=9)
    donor.save_pretrained(tmp_path / "donor")
    enc = students.build_student("tiny", "encoder_only", str(tmp_path / "donor"), seed=1)
    full = students.build_student("tiny", "full", str(tmp_path / "donor"), seed=1)
    for k, v in donor.state_dict().items():
        assert torch.equal(full.state_dict()[k], v)
        if k.startswith("backbone."):
            assert torch.equal(enc.state_dict()[k], v)
    assert not torch.equal(enc.head.conv2.weight, donor.head.conv2.weight)
    with pytest.raises(ValueError, match="does not match"):
        students.build_student("small", "encoder_only", str(tmp_path / "donor"))
    rebuilt = students.model_from_args(students.model_args(donor))
    rebuilt.load_state_dict(donor.state_dict())
    tok = students.with_tokens(donor)(torch.randn(1, 3, 42, 42))
    assert tok[0].shape == (1, 42, 42) and tok[1].shape == (1, 9, 32)


def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "c.pt"
    ckpt.save_checkpoint(path, {"step": 1})

    def broken(obj, f, *a, **kw):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(ckpt.CheckpointWriteError, match="previous"):
        ckpt.save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_rng_state_round_trip() -> None:
    import random

    import numpy as np

    state = ckpt.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
