"""The loss details an independent check found (issue 12), each with the input that showed it:
single-pixel samples in batch means, the gradient-matching default, L_feat's reference encoder,
embedded:// students, and the scale-drift guard."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depthdistill import depth
from depthdistill.config import TrainConfig
from depthdistill.models import student as students
from depthdistill.trainer import losses


def _ramp(v: int = 16) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, v), torch.linspace(0, 1, v), indexing="ij")
    return (1 + xx + 2 * yy)[None]  # [1, V, V]


@pytest.mark.parametrize("norm", ["global", "hybrid", "local"])
def test_single_pixel_sample_is_not_counted_in_the_batch_mean(norm: str) -> None:
    t = _ramp()
    s = t + 0.3 * torch.sin(9 * t)  # a student that differs from its teacher
    full = torch.ones_like(t, dtype=torch.bool)
    one = torch.zeros_like(full)
    one[0, 3, 3] = True  # exactly one valid pixel: median and MAD of it normalize it to 0
    alone = float(losses.SharedContextLoss(norm)(s, t, full))
    assert alone > 0.05
    batch = float(losses.SharedContextLoss(norm)(torch.cat([s, s]), torch.cat([t, t]), torch.cat([full, one])))
    assert batch == pytest.approx(alone, rel=1e-6)  # was alone / 2: the empty sample counted as a 0
    grad_alone = float(losses.GradientMatchingLoss(norm, 2)(s, t, full))
    grad_batch = float(losses.GradientMatchingLoss(norm, 2)(torch.cat([s, s]), torch.cat([t, t]), torch.cat([full, one])))
    assert grad_batch == pytest.approx(grad_alone, rel=1e-6)
    sc, gr = losses.shared_context_and_gradient(torch.cat([s, s]), torch.cat([t, t]), torch.cat([full, one]), norm, 2)
    assert float(sc) == pytest.approx(alone, rel=1e-6) and float(gr) == pytest.approx(grad_alone, rel=1e-6)


def test_single_pixel_sample_counts_under_none() -> None:
    t, full = _ramp(), torch.ones(1, 16, 16, dtype=torch.bool)
    one = torch.zeros_like(full)
    one[0, 3, 3] = True
    loss = losses.SharedContextLoss("none")(torch.cat([t + 1, t + 3]), torch.cat([t, t]), torch.cat([full, one]))
    assert float(loss) == pytest.approx((1.0 + 3.0) / 2)  # one pixel is a defined |ds - dt| under none


def test_single_pixel_patch_is_not_counted() -> None:
    from depthdistill.views import crop_footprint

    pred = _ramp(32) + 0.2 * torch.sin(7 * _ramp(32))  # [1, 32, 32]
    fps = torch.tensor([[[0, 0, 16, 16], [16, 16, 32, 32]]], dtype=torch.float32)  # [1, 2, 4]
    patches = torch.stack([crop_footprint(pred[0], f.tolist(), (16, 16)).flip(-1) for f in fps[0]])[None]
    mask = torch.ones(1, 2, 16, 16, dtype=torch.bool)
    valid = torch.ones(1, 2, dtype=torch.bool)
    lg = losses.LocalGlobalLoss("hybrid")
    first_only = float(lg(pred, patches[:, :1], mask[:, :1], fps[:, :1], valid[:, :1]))
    mask[0, 1] = False
    mask[0, 1, 5, 5] = True  # the second patch keeps one valid pixel
    assert float(lg(pred, patches, mask, fps, valid)) == pytest.approx(first_only, rel=1e-6)


def test_gradient_matching_defaults_to_global_and_why() -> None:
    assert TrainConfig().norm_grad == "global"
    # A smooth teacher ramp and smooth, monotone but non-affine students: every context of hybrid
    # fits its own scale and shift, so the context-averaged residual steps where the set of
    # contexts holding a pixel changes (the teacher's bin edges) although both maps are smooth.
    v = 64
    t = torch.linspace(0, 1, v).view(1, 1, v).expand(1, v, v).contiguous()
    mask = torch.ones_like(t, dtype=torch.bool)
    bin_edges = {15, 31, 47}  # pixel pairs straddling 1/4, 1/2, 3/4 of the teacher's range
    for s in (t ** 2, t + 0.1 * torch.sin(6 * t)):
        steps = {}
        for kind in ("global", "hybrid"):
            diff, ctx = depth._residuals(s, t, mask, kind)
            r, _ = depth._context_mean(diff, ctx)  # [1, V, V] the residual gradient matching sees
            steps[kind] = (r[0, 0, 1:] - r[0, 0, :-1]).abs()  # [V - 1] along the ramp
        assert set(steps["hybrid"].topk(2).indices.tolist()) <= bin_edges
        assert steps["hybrid"].max() > 3 * steps["global"].max()
        assert not set(steps["global"].topk(2).indices.tolist()) & bin_edges


@pytest.fixture(scope="module")
def donors(tmp_path_factory) -> dict[str, str]:
    from depthdistill.models.configs import build_dav2

    root = tmp_path_factory.mktemp("donors")
    build_dav2("tiny", seed=5).save_pretrained(root / "tiny")
    return {"tiny": str(root / "tiny")}


def test_feature_reference_resolves_to_a_pretrained_encoder(donors: dict[str, str]) -> None:
    src = students.feature_reference_source
    assert src("auto", "random", "", "tiny") == ""  # a random student has no reference: L_feat off
    assert src("auto", "full", donors["tiny"], "tiny") == donors["tiny"]
    assert src("auto", "full", "", "embedded://dav2-tiny") == "embedded://dav2-tiny"
    assert src("off", "full", donors["tiny"], "tiny") == ""
    assert src("some/hub-id", "random", "", "tiny") == "some/hub-id"
    model = students.build_student("tiny", seed=0)
    enc = students.reference_encoder(donors["tiny"], model)
    donor = students._load_pretrained(donors["tiny"]).backbone
    for (k, a), (_, b) in zip(enc.state_dict().items(), donor.state_dict().items()):
        assert torch.equal(a, b), k
    assert not any(p.requires_grad for p in enc.parameters())
    wide = students.build_student("embedded://dav2-tiny", seed=0)  # hidden 96 vs the tiny student's 32
    with pytest.raises(ValueError, match="train.feat_reference.*width"):
        students.reference_encoder(donors["tiny"], wide)


def test_embedded_student_and_init_from() -> None:
    from depthdistill.models.registry import resolve_model_path

    folder = resolve_model_path("embedded://dav2-tiny")
    full = students.build_student("embedded://dav2-tiny", "full", seed=0)
    ref = students._load_pretrained(folder)
    for k, v in ref.state_dict().items():
        assert torch.equal(full.state_dict()[k], v), k
    enc = students.build_student(folder, "encoder_only", "embedded://dav2-tiny", seed=0)
    assert torch.equal(enc.backbone.embeddings.patch_embeddings.projection.weight,
                       ref.backbone.embeddings.patch_embeddings.projection.weight)
    with pytest.raises(ValueError, match="train.init_from.*embedded teacher"):
        students.build_student(folder, "full", "embedded://no-such-model")


def test_scale_anchor_holds_a_drifting_output() -> None:
    """Provoke the drift: a scale-invariant loss plus a small push that rewards a larger output
    (what numerical noise does through Adam in a real run). Without the anchor the output level
    runs away; with it the level stays at the anchor."""
    base = _ramp() + 0.1 * torch.sin(5 * _ramp())  # [1, V, V] the student's map shape
    target = _ramp()
    mask = torch.ones_like(target, dtype=torch.bool)
    sc, anchor = losses.SharedContextLoss("global"), losses.ScaleAnchorLoss()

    def run(w_anchor: float) -> float:
        log_scale = torch.zeros((), requires_grad=True)
        opt = torch.optim.Adam([log_scale], lr=0.05)
        for _ in range(200):
            pred = torch.exp(log_scale) * base
            push = -0.01 * torch.log(pred.median())  # the drift force
            loss = sc(pred, target, mask) + push + w_anchor * anchor(pred, float(base.median()))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float(torch.exp(log_scale.detach()))

    assert run(0.0) > 10.0  # drifted up by more than 10x
    assert run(1.0) == pytest.approx(1.0, abs=0.05)  # held at the anchor level


def test_scale_anchor_in_the_trainer(tmp_path: Path, monkeypatch) -> None:
    from depthdistill.trainer import checkpoint as ckpt
    from depthdistill.trainer import loop
    from test_trainer_data import make_store
    from test_trainer_loop import tiny_config

    store = make_store(tmp_path / "store", num_shards=1, per_shard=4)
    real = losses.DistillationLoss.forward

    def pushed(self, pred, batch, *args, **kw):  # the drift force, inside the real loss
        total, terms = real(self, pred, batch, *args, **kw)
        return total - 0.5 * torch.log(pred.median().clamp_min(1e-6)), terms

    monkeypatch.setattr(losses.DistillationLoss, "forward", pushed)
    medians = {}
    for w in (0.0, 5.0):
        cfg = tiny_config(steps=40, w_anchor=w, w_feat=0.0, lr_decoder=3e-2, warmup_steps=1, ckpt_every=40)
        out = tmp_path / f"w{w}"
        loop.train(cfg, store, out)
        saved = ckpt.load_checkpoint(out / ckpt.LAST)
        model = students.model_from_args(saved["model_args"])
        model.load_state_dict(saved["model"])
        with torch.no_grad():
            pred = model(pixel_values=torch.rand(2, 3, 42, 42, generator=torch.Generator().manual_seed(0)))
        medians[w] = float(pred.predicted_depth.median())
        assert saved["anchor"] == pytest.approx(students.HEAD_BIAS_INIT, rel=0.5)  # the first batch's level
    assert medians[0.0] > 3 * students.HEAD_BIAS_INIT  # drifted
    assert medians[5.0] < 1.5 * students.HEAD_BIAS_INIT  # held


def test_random_student_output_is_not_a_constant_map() -> None:
    """A fresh random student must vary across the image, or a scale-invariant loss sees only
    noise under the MAD floor (depth.MAD_EPS) and never moves it."""
    import torch

    from depthdistill.depth import MAD_EPS

    model = students.build_student("tiny", seed=0).eval()
    pixels = students.normalize_images(torch.rand(2, 3, 56, 56, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        out = model(pixel_values=pixels).predicted_depth  # [2, 56, 56]
    mad = (out - out.flatten(1).median(1).values[:, None, None]).abs().mean((1, 2))
    assert (mad > 1000 * MAD_EPS).all()
    assert (out > 0).float().mean() > 0.5  # and on the live side of the head's final ReLU
