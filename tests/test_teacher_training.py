"""`make teachers`: the training forward is the inference step, the sampler is seeded and exact,
and the embedded teachers (when present) have the right polarity on a rendered scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthdistill.models import teacher_training as tr
from depthdistill.models import tiny_teachers as tt


def test_genpercept_training_forward_is_the_inference_step_before_its_clip():
    from depthdistill.models.genpercept import genpercept_one_step
    from depthdistill.models.prompt_embedding import tiny_prompt_embedding

    torch.manual_seed(0)
    unet, vae = tt.build_genpercept_tiny(32)
    prompt = tiny_prompt_embedding(unet.config.cross_attention_dim)
    rgb = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        raw = tt.genpercept_forward_unclipped(unet.eval(), vae.eval(), rgb, prompt)  # [2, 32, 32]
        served = genpercept_one_step(unet, vae, rgb, prompt)
    torch.testing.assert_close(served, (raw.clamp(-1, 1) + 1) / 2, atol=1e-6, rtol=0)


def test_dav2_tiny_starts_alive_and_outputs_input_size():
    torch.manual_seed(0)
    model = tt.build_dav2_tiny(56).eval()
    with torch.no_grad():
        out = tt.dav2_forward(model, torch.rand(2, 3, 56, 56))
    assert out.shape == (2, 56, 56)
    assert (out > 0).float().mean() > 0.95  # the positive head bias keeps the final ReLU alive


def _toy_pool(n=3, hw=(40, 48)):
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 5.0, size=(n, *hw)).astype(np.float16)
    valid = np.ones((n, *hw), bool)
    valid[:, :5] = False  # a band of sky
    return {"rgb": rng.integers(0, 255, size=(n, *hw, 3), dtype=np.uint8), "depth": depth, "valid": valid}


def test_crop_sampler_is_seeded_and_masks_invalid_pixels():
    schedule = tr.TeacherSchedule(image_hw=(40, 48), input_size=16, whole_image_fraction=0.5, seed=3)
    a = tr.CropSampler(_toy_pool(), schedule, "cpu", batch_size=4)
    b = tr.CropSampler(_toy_pool(), schedule, "cpu", batch_size=4)
    for _ in range(3):
        (ra, da, ma), (rb, db, mb) = a.batch(), b.batch()
        torch.testing.assert_close(ra, rb)
        torch.testing.assert_close(da, db)
        assert torch.equal(ma, mb)
    assert ra.shape == (4, 3, 16, 16) and da.shape == (4, 16, 16)
    assert torch.all(da[ma] >= 1 / 5.01) and torch.all(da[ma] <= 1 / 0.99)  # disparity of valid depth
    assert not ma.all()  # some views include the invalid band


def test_minmax_target_spans_minus_one_to_one_on_valid_pixels():
    disp = torch.tensor([[[1.0, 2.0], [3.0, 100.0]]])
    mask = torch.tensor([[[True, True], [True, False]]])
    target = tr._minmax_to_pm1(disp, mask)
    torch.testing.assert_close(target, torch.tensor([[[-1.0, 0.0], [1.0, 0.0]]]))


def test_lr_schedule_warms_up_then_decays():
    lrs = [tr._lr_at(s, 1000, 1.0, warmup=100) for s in range(1000)]
    assert lrs[0] == pytest.approx(0.01) and lrs[99] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(lrs[100:], lrs[101:]))
    assert lrs[-1] == pytest.approx(0.05, abs=1e-3)


@pytest.mark.parametrize("name,kind", [("dav2", "dav2"), ("genpercept", "genpercept")])
def test_embedded_teachers_polarity_nearer_is_larger(name, kind):
    """On a rendered eval scene the embedded teachers' output rises as depth falls (disparity)."""
    from depthdistill.config import TeacherConfig
    from depthdistill.models import load_teacher
    from depthdistill.world import render

    teacher = load_teacher(TeacherConfig(name=name, kind=kind, model=f"embedded://{name}-tiny"), device="cpu")
    assert teacher.space == "disparity"
    correlations = []
    for index in range(3):
        s = render("eval", index, height=192, width=256)
        pred = teacher.predict(s.rgb[None])[0].numpy()  # [H, W]
        valid = s.valid
        correlations.append(np.corrcoef(pred[valid], 1.0 / s.depth[valid])[0, 1])
    assert np.mean(correlations) > 0.5, correlations


def test_card_measures_an_oracle_as_perfect_and_a_flat_map_as_poor():
    """`measure_teacher` on a predictor that returns the true disparity scores exactly: AbsRel 0,
    delta1 1, edge F1 1 and zero spread; a constant map scores badly with a positive spread."""
    from depthdistill.models.teacher_card import measure_teacher
    from depthdistill.world import render

    hw = (96, 128)

    class Oracle:  # measure_teacher calls: whole image of render i, then its central crop
        def __init__(self):
            self.index, self.disp = -1, None

        def __call__(self, rgb):
            if rgb.shape[-2:] == hw:
                self.index += 1
                s = render("eval", self.index, seed=0, height=hw[0], width=hw[1])
                disp = np.where(s.valid, 1.0 / np.where(s.valid, s.depth, 1.0), 0.0)  # sky: 0
                self.disp = torch.from_numpy(disp).float()[None]
                return self.disp
            return self.disp[:, hw[0] // 4: hw[0] // 4 + hw[0] // 2, hw[1] // 4: hw[1] // 4 + hw[1] // 2]

    m = measure_teacher(Oracle(), num_images=3, image_hw=hw)
    assert m.images == 3 and m.abs_rel < 1e-4 and m.delta1 == 1.0
    assert m.crop_local_abs_rel < 1e-4 and m.crop_global_abs_rel < 1e-4
    assert m.edge_f1_local == pytest.approx(1.0) and m.abs_rel_se < 1e-4
    flat = measure_teacher(lambda rgb: torch.ones(1, *rgb.shape[-2:]), num_images=3, image_hw=hw)
    assert flat.abs_rel > 0.1 and flat.abs_rel_se > 0 and flat.edge_f1_local < 0.1
