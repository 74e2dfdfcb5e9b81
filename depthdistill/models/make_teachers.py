"""`make teachers` end to end: render the pool, train both tiny teachers, save them as
`save_pretrained` folders under `depthdistill/assets/teachers/`, load them back through the
same path as hub models, measure them on the eval split and write their model cards."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import torch

from depthdistill.models import teacher_card, teacher_training as tr
from depthdistill.models import tiny_teachers as tt

log = logging.getLogger(__name__)

DAV2_DESCRIPTION = (
    "A 0.87M-parameter Depth Anything V2 (`DepthAnythingForDepthEstimation`, DINOv2 ViT hidden 96, "
    "4 layers, patch 14) at a fixed 112-pixel input: outputs relative disparity (larger = nearer). "
    "Trained with global scale-and-shift-invariant loss plus gradient matching, as DAv2 is; its "
    "14-pixel tokens at a 112 input limit the detail it can resolve."
)
GENPERCEPT_DESCRIPTION = (
    "A tiny GenPercept: diffusers `UNet2DConditionModel` + `AutoencoderKL` (x8 latent, 4 channels) run "
    "as one deterministic step (VAE posterior mean, UNet at timestep 1 with the cached empty-prompt "
    "embedding, negated v-prediction, decode, channel mean, clip, rescale) at a fixed 112-pixel input. "
    "Outputs disparity in [0, 1] (1 = near). Trained per image to a fixed min-max target (L1 + "
    "gradient matching) through that exact step, so its character differs from DAv2-tiny's by "
    "construction (a pixel decoder instead of a token head; a per-image range target instead of a "
    "scale-shift-invariant one). The table below measures how."
)


def save_dav2(model, folder: Path, input_size: int) -> None:
    from transformers import DPTImageProcessor

    model.save_pretrained(folder)
    DPTImageProcessor(
        do_resize=True, size={"height": input_size, "width": input_size}, keep_aspect_ratio=False,
        ensure_multiple_of=14, resample=3, do_rescale=True, do_normalize=True,
        image_mean=list(tt.IMAGENET_MEAN), image_std=list(tt.IMAGENET_STD),
    ).save_pretrained(folder)



def folder_names(suffix: str = "") -> tuple[str, str]:
    """The two teachers' folder (and embedded://) names: dav2-tiny<suffix>, genpercept-tiny<suffix>."""
    return f"dav2-tiny{suffix}", f"genpercept-tiny{suffix}"


def _predictors(dav2_dir: Path, gp_dir: Path, device: str):
    """Load both teachers back through the registry (the hub-model code path)."""
    from depthdistill.config import TeacherConfig
    from depthdistill.models import load_teacher

    dav2 = load_teacher(TeacherConfig(name="dav2", kind="dav2", model=str(dav2_dir)), device=device)
    gp = load_teacher(TeacherConfig(name="genpercept", kind="genpercept", model=str(gp_dir)), device=device)
    return {dav2_dir.name: dav2, gp_dir.name: gp}


def make_teachers(out: Path, schedule: tr.TeacherSchedule, device: str = "cpu", eval_images: int = 64,
                  command: str = "make teachers", suffix: str = "") -> dict:
    out = Path(out)
    torch.manual_seed(schedule.seed)
    start = time.time()
    pool = tr.build_pool(schedule.pool_images, schedule.image_hw, seed=schedule.seed)
    render_s = time.time() - start
    dav2, dav2_hist = tr.train_dav2(tr.CropSampler(pool, schedule, device, schedule.batch_size), schedule, device)
    dav2_s = time.time() - start - render_s
    unet, vae, prompt, gp_hist = tr.train_genpercept(tr.CropSampler(pool, schedule, device, schedule.genpercept_batch_size), schedule, device)
    gp_s = time.time() - start - render_s - dav2_s
    del pool
    dav2_name, gp_name = folder_names(suffix)
    dav2_dir, gp_dir = out / dav2_name, out / gp_name
    save_dav2(dav2.cpu(), dav2_dir, schedule.input_size)
    from depthdistill.models.genpercept import save_genpercept_folder

    save_genpercept_folder(unet.cpu(), vae.cpu(), prompt.cpu(), gp_dir)
    timing = {"device": device, "render_s": round(render_s), "dav2_s": round(dav2_s), "genpercept_s": round(gp_s),
              "torch_threads": torch.get_num_threads()}
    extra = {dav2_name: {"parameters": sum(p.numel() for p in dav2.parameters()),
                         "final smoothed loss": round(dav2_hist[-1], 4)},
             gp_name: {"parameters": sum(p.numel() for p in unet.parameters()) +
                                 sum(p.numel() for p in vae.parameters()),
                                 "final smoothed loss": round(gp_hist[-1], 4)}}
    return write_cards(out, schedule, timing, extra, device, eval_images, command, suffix)


def write_cards(out: Path, schedule: tr.TeacherSchedule, timing: dict, extra: dict, device: str = "cpu",
                eval_images: int = 64, command: str = "make teachers", suffix: str = "") -> dict:
    """Load the saved teachers back, measure them on the eval split, write README.md cards."""
    out = Path(out)
    dav2_dir, gp_dir = (out / name for name in folder_names(suffix))
    metrics = {
        # the shipped eval split (world seed 0) whatever the training seed, so cards compare
        name: teacher_card.measure_teacher(teacher.predict, eval_images, seed=0)
        for name, teacher in _predictors(dav2_dir, gp_dir, device).items()
    }
    sched = dataclasses.asdict(schedule)
    for name, folder, text in ((dav2_dir.name, dav2_dir, DAV2_DESCRIPTION), (gp_dir.name, gp_dir, GENPERCEPT_DESCRIPTION)):
        teacher_card.write_card(folder, name, text, metrics, sched, command,
                                {**extra.get(name, {}), "training time": timing,
                                 "measured with": f"{eval_images} eval renders on {device}"})
    summary = {name: dataclasses.asdict(m) for name, m in metrics.items()} | {"time": timing}
    log.info("teachers written to %s: %s", out, json.dumps(summary))
    return summary
