"""The fast training step computes what the original one did: golden losses of one real step.

GOLDEN was produced by the trainer *before* the speed work (commit 993bce3: L_lg padded to the
batch's largest footprint in one call, separate L_sc / L_grad normalizations) by running

    OMP_NUM_THREADS=1 .venv/bin/python tests/test_trainer_speed.py

on that commit's tree (it prints the dict to paste; 1 and 2 threads print the same values). The
batch is hand-made and seeded: four 56 px views, two with a 2x2 grid and two with a 3x3 grid
(two views share a footprint size, the others differ), fractional footprints, padding slots,
label holes and one patch with no valid pixel; `grad_accum=2` feeds one micro-batch per teacher
(disparity labels, and depth-like labels with holes). The gradient norm pins the backward pass.
One step only: a second step would follow an AdamW update, whose first step is sign-like and
turns float reassociation noise in near-zero gradients into +-lr changes.
"""

from __future__ import annotations

import math

import pytest
import torch

from depthdistill.config import StagesConfig, TeacherConfig, TrainConfig, ViewsConfig
from depthdistill.trainer import data as tdata
from depthdistill.trainer import loop
from depthdistill.trainer.losses import LocalGlobalLoss
from depthdistill.trainer.threads import prefer_passive_openmp

V, P, K = 56, 28, 9
SIDES = (33.5, 21.25, 40.0, 21.25)  # footprint side (view px) of each view
GRIDS = (2, 3, 2, 3)

GOLDEN = {"sc": 1.0064694, "lg": 1.0042816, "feat": 0.8930024, "grad": 4.0355718, "total": 10.4727559,
          "grad_norm": 48735.42}


def _footprints() -> tuple[torch.Tensor, torch.Tensor]:
    fps, valid = torch.zeros(len(SIDES), K, 4), torch.zeros(len(SIDES), K, dtype=torch.bool)  # [B, K, 4], [B, K]
    for b, (side, k) in enumerate(zip(SIDES, GRIDS)):
        offsets = torch.linspace(0.0, V - side, k)  # [k] evenly spaced, first 0, last at the edge
        boxes = [(x, y, x + side, y + side) for y in offsets.tolist() for x in offsets.tolist()]
        fps[b, :len(boxes)] = torch.tensor(boxes)
        valid[b, :len(boxes)] = True
    return fps, valid


def _teacher(g: torch.Generator, holes: bool) -> dict[str, torch.Tensor]:
    b = len(SIDES)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, V), torch.linspace(0, 1, V), indexing="ij")
    coef = torch.rand(b, 3, generator=g) + 0.5  # [B, 3]
    label = (1 + coef[:, :1, None] * xx + coef[:, 1:2, None] * yy
             + coef[:, 2:, None] * torch.sin(8 * xx) * torch.cos(5 * yy) ** 2)  # [B, V, V]
    label = label + 0.05 * torch.rand(b, V, V, generator=g)
    patches = 2.0 + torch.rand(b, K, P, P, generator=g) * 0.2 + torch.linspace(0, 1, P)[None, None, None]  # [B, K, P, P]
    label_mask = torch.ones(b, V, V, dtype=torch.bool)
    patch_mask = torch.ones(b, K, P, P, dtype=torch.bool)
    if holes:  # a depth teacher's invalid pixels (sky, zeros)
        label_mask[:, :6, :] = False
        label_mask[1, 20:30, 10:25] = False
        patch_mask[:, :, :3, :] = False
        patch_mask[2, 1] = False  # one patch with no valid pixel at all
    return {"label": label, "label_mask": label_mask, "patches": patches, "patch_mask": patch_mask}


def fixed_batch(index: int) -> dict:
    g = torch.Generator().manual_seed(100 + index)
    fps, valid = _footprints()
    return {"keys": [f"v{i}" for i in range(len(SIDES))],
            "image": torch.randint(0, 256, (len(SIDES), 3, V, V), dtype=torch.uint8, generator=g),
            "footprints": fps, "patch_valid": valid,
            "teachers": {"dav2": _teacher(g, holes=False), "gp": _teacher(g, holes=True)},
            "position": {"worker": 0, "epoch": 0, "index": 4 * (index + 1), "skipped": 0}}


def run_step() -> dict[str, float]:
    """One real `loop.train_step` of a seeded tiny student over the two fixed micro-batches
    (`grad_accum=2`, one per teacher); the frozen encoder is perturbed so L_feat is not 0.

    The settings of the golden run are spelled out where the defaults have changed since:
    gradient matching on the hybrid residual, L_feat's reference = the student's own initial
    encoder (saved to a folder and named as `feat_reference`: the same weights), and the random
    neck / head at transformers' init (the golden run predates `reinit_random_parts`)."""
    import tempfile
    from unittest import mock

    from depthdistill.models import student as students

    with tempfile.TemporaryDirectory(prefix="golden-ref-") as reference, \
            mock.patch.object(students, "reinit_random_parts", lambda model: None):
        students.build_student("tiny", seed=0).save_pretrained(reference)
        return _run_step(reference)


def _run_step(reference: str) -> dict[str, float]:
    tc = TrainConfig(student="tiny", init="random", steps=10, batch_size=len(SIDES), grad_accum=2, lr_encoder=1e-3,
                     lr_decoder=1e-2, warmup_steps=0, amp="off", eval_images=0, seed=0, norm_grad="hybrid",
                     feat_reference=reference)
    config = StagesConfig(views=ViewsConfig(view_size=V, crop_min=V + 8, patch_size=P, max_grid=3),
                          teachers=(TeacherConfig(name="dav2", weight=0.5, input_size=V),
                                    TeacherConfig(name="gp", weight=0.5, input_size=V)), train=tc)
    torch.manual_seed(tc.seed)
    dist = loop.Dist()
    state = loop.build_state(config.train, dist, None)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in state.frozen.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    sampler = tdata.TeacherSampler({"dav2": 0.5, "gp": 0.5}, seed=3)
    stats = loop.train_step(state, iter([fixed_batch(0), fixed_batch(1)]), sampler, loop.DistillationLoss(tc), tc, dist)
    return {k: stats[k] for k in ("sc", "lg", "feat", "grad", "total", "grad_norm", "teacher/dav2", "teacher/gp")}


def test_one_step_matches_the_golden_losses() -> None:
    got = run_step()
    assert got["teacher/dav2"] == got["teacher/gp"] == 1.0  # both label kinds are used
    assert got["feat"] > 0.01
    for key, value in GOLDEN.items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_local_global_does_not_depend_on_how_views_are_grouped() -> None:
    """A view's patches give the same per-view loss alone or batched with views of other sizes."""
    batch = fixed_batch(0)["teachers"]["gp"]
    fps, valid = _footprints()
    g = torch.Generator().manual_seed(7)
    pred = 1 + torch.rand(len(SIDES), V, V, generator=g)  # [B, V, V]
    lg = LocalGlobalLoss("hybrid")
    both = lg(pred, batch["patches"], batch["patch_mask"], fps, valid)
    alone = [lg(pred[i:i + 1], batch["patches"][i:i + 1], batch["patch_mask"][i:i + 1], fps[i:i + 1], valid[i:i + 1])
             for i in range(len(SIDES))]
    assert float(both) == pytest.approx(sum(float(a) for a in alone) / len(SIDES), rel=1e-5)
    assert math.isfinite(float(both)) and float(both) > 0.05


def test_passive_openmp_only_when_unset_and_before_torch() -> None:
    env: dict[str, str] = {}
    assert prefer_passive_openmp(env, torch_loaded=False) and env == {"OMP_WAIT_POLICY": "PASSIVE"}
    for user in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "1000"}):
        env = dict(user)
        assert not prefer_passive_openmp(env, torch_loaded=False) and env == user
    env = {}
    assert not prefer_passive_openmp(env, torch_loaded=True) and env == {}  # too late: libgomp read it


def test_trainer_import_sets_the_policy_before_torch_loads() -> None:
    import os
    import subprocess
    import sys

    code = ("import os, sys; import depthdistill.trainer; assert 'torch' not in sys.modules; "
            "print(os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"


if __name__ == "__main__":
    print({k: round(v, 7) for k, v in run_step().items()})
