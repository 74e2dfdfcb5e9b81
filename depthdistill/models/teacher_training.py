"""`make teachers`: train the two embedded tiny teachers on the world's `teacher-train` split.

The schedule is counted in steps (not minutes) and every random draw is seeded, so the same
command reproduces the same weights on the same device; on CPU the default schedule fits in
about an hour on 2 cores. Only the `teacher-train` split is read: the `unlabeled` collection
and the `eval` split stay unseen.

Training data: random square crops (side U[input, crop_max], crop_max 0 = the short side) and,
for `whole_image_fraction` of the batches, whole images squashed to the same square input (a
teacher runs at one fixed square input size, as `Teacher.predict` feeds it), resized with the
project's one resize routine; targets are disparity (1 / z-depth) with the world's exact valid
mask. A small `crop_max` and no whole images make a teacher of native resolution: it sees the
world at most crop_max / input times shrunk, as a hub teacher trained on 518-px crops of
~700-px renders meets a 2,000-px photo shrunk 3-4x (docs/science/README.md).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
import torch

from depthdistill.config import WORLD_IMAGE_HW

from depthdistill.models import tiny_teachers as tt

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TeacherSchedule:
    pool_images: int = 1200
    image_hw: tuple[int, int] = WORLD_IMAGE_HW
    input_size: int = 112
    batch_size: int = 16
    dav2_steps: int = 3000
    dav2_lr: float = 4e-4
    genpercept_batch_size: int = 8  # its full-resolution VAE costs ~4x a DAv2 step per image
    vae_steps: int = 400
    genpercept_steps: int = 1500
    genpercept_lr: float = 3e-4
    whole_image_fraction: float = 0.3  # batches fed the whole image instead of a square crop
    crop_max: int = 0  # largest square crop side in native pixels; 0 = the image's short side
    seed: int = 0

    def __post_init__(self) -> None:
        if self.crop_max and not self.input_size <= self.crop_max <= min(self.image_hw):
            raise ValueError(f"crop_max {self.crop_max}: use 0 (the short side) or a side in "
                             f"[input_size {self.input_size}, short side {min(self.image_hw)}]")
        if not 0.0 <= self.whole_image_fraction <= 1.0:
            raise ValueError(f"whole_image_fraction {self.whole_image_fraction}: use a fraction in [0, 1]")


# --------------------------------------------------------------------------------- data pool

def _render_one(args: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from depthdistill.world import render

    index, seed, height, width = args
    sample = render("teacher-train", index, seed=seed, height=height, width=width)
    return sample.rgb, sample.depth.astype(np.float16), sample.valid


def build_pool(num_images: int, image_hw: tuple[int, int], seed: int = 0, workers: int = 0) -> dict[str, np.ndarray]:
    """Render the teacher-train pool into memory (rgb uint8, depth float16, valid bool)."""
    from tqdm import tqdm

    height, width = image_hw
    jobs = [(i, seed, height, width) for i in range(num_images)]
    workers = workers or min(8, max(1, (torch.get_num_threads() or 1)))
    rgb = np.empty((num_images, height, width, 3), np.uint8)
    depth = np.empty((num_images, height, width), np.float16)
    valid = np.empty((num_images, height, width), bool)
    with get_context("spawn").Pool(workers) as pool:
        results = pool.imap(_render_one, jobs, chunksize=4)
        for i, (r, d, v) in enumerate(tqdm(results, total=num_images, desc="render teacher-train", unit="img")):
            rgb[i], depth[i], valid[i] = r, d, v
    return {"rgb": rgb, "depth": depth, "valid": valid}


class CropSampler:
    """Draws training batches from the pool: square crops or whole images, flipped at random."""

    def __init__(self, pool: dict[str, np.ndarray], schedule: TeacherSchedule, device: str, batch_size: int):
        self.rgb = torch.from_numpy(pool["rgb"])  # [N, H, W, 3] uint8
        self.depth = torch.from_numpy(pool["depth"])  # [N, H, W] float16
        self.valid = torch.from_numpy(pool["valid"])  # [N, H, W] bool
        self.schedule = schedule
        self.device = device
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(schedule.seed)

    def _rand(self, low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=self.generator))

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> rgb01 [B, 3, h, w], disparity [B, h, w], valid [B, h, w] on the device."""
        from depthdistill.views import resize

        s = self.schedule
        whole = float(torch.rand((), generator=self.generator)) < s.whole_image_fraction
        out_hw = (s.input_size, s.input_size)
        height, width = s.image_hw
        rgbs, disps, masks = [], [], []
        for _ in range(self.batch_size):
            n = self._rand(0, self.rgb.shape[0] - 1)
            if whole:
                y0, x0, ch, cw = 0, 0, height, width
            else:
                side = self._rand(s.input_size, s.crop_max or min(height, width))
                y0, x0, ch, cw = self._rand(0, height - side), self._rand(0, width - side), side, side
            rgb = self.rgb[n, y0:y0 + ch, x0:x0 + cw].permute(2, 0, 1).float() / 255.0  # [3, ch, cw]
            depth = self.depth[n, y0:y0 + ch, x0:x0 + cw].float()
            valid = self.valid[n, y0:y0 + ch, x0:x0 + cw] & (depth > 0)
            disp = torch.where(valid, 1.0 / depth.clamp_min(1e-6), torch.zeros_like(depth))
            weight = resize(valid.float()[None], out_hw)[0]  # [h, w] share of valid source px
            disp = resize(disp[None], out_hw)[0] / weight.clamp_min(1e-6)
            rgbs.append(resize(rgb, out_hw))
            disps.append(disp)
            masks.append(weight > 0.999)
        rgb, disp, mask = torch.stack(rgbs), torch.stack(disps), torch.stack(masks)
        if float(torch.rand((), generator=self.generator)) < 0.5:
            rgb, disp, mask = rgb.flip(-1), disp.flip(-1), mask.flip(-1)
        return rgb.clamp(0, 1).to(self.device), disp.to(self.device), mask.to(self.device)


# --------------------------------------------------------------------------------- training

def _lr_at(step: int, total: int, base: float, warmup: int = 100) -> float:
    """Linear warm-up, then cosine decay to 5% of the base rate: a pure function of the step."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def _train_loop(name: str, params, loss_fn, sampler: CropSampler, steps: int, lr: float) -> list[float]:
    from tqdm import tqdm

    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    history, running, start = [], None, time.time()
    bar = tqdm(range(steps), desc=f"train {name}", unit="step")
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, steps, lr)
        rgb, disp, mask = sampler.batch()
        loss = loss_fn(rgb, disp, mask)
        optimizer.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        value = float(loss.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        if step % 50 == 0 or step == steps - 1:
            history.append(running)
            bar.set_postfix(loss=f"{running:.4f}")
    log.info("%s: %d steps in %.0f s, final smoothed loss %.4f", name, steps, time.time() - start, running)
    return history


def _depth_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    from depthdistill.depth import dis_loss, gradient_matching_loss

    return (dis_loss(pred, target, mask, kind=kind) + 0.5 * gradient_matching_loss(pred, target, mask, kind=kind)).mean()


def train_dav2(sampler: CropSampler, schedule: TeacherSchedule, device: str):
    """Scale-and-shift-invariant disparity (global SSI + gradient matching), as DAv2 is trained."""
    torch.manual_seed(schedule.seed)
    model = tt.build_dav2_tiny(schedule.input_size).to(device).train()

    def loss_fn(rgb, disp, mask):
        return _depth_loss(tt.dav2_forward(model, rgb), disp, mask, kind="global")

    history = _train_loop("dav2-tiny", model.parameters(), loss_fn, sampler, schedule.dav2_steps, schedule.dav2_lr)
    return model.eval(), history


def _minmax_to_pm1(disp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image: valid disparity range -> [-1, 1] (GenPercept's fixed affine-invariant target)."""
    big = torch.finfo(disp.dtype).max
    lo = torch.where(mask, disp, torch.full_like(disp, big)).flatten(1).amin(1).view(-1, 1, 1)
    hi = torch.where(mask, disp, torch.full_like(disp, -big)).flatten(1).amax(1).view(-1, 1, 1)
    span = (hi - lo).clamp_min(1e-6)
    return torch.where(mask, (disp - lo) / span * 2 - 1, torch.zeros_like(disp))


def train_genpercept(sampler: CropSampler, schedule: TeacherSchedule, device: str):
    """Stage 1: the VAE learns to reconstruct images and grey disparity maps. Stage 2: the UNet
    and the decoder learn the one-step map RGB latent -> disparity (encoder frozen), with an L1
    on the [-1, 1] min-max target plus gradient matching, through the real inference step."""
    torch.manual_seed(schedule.seed + 1)
    unet, vae = tt.build_genpercept_tiny(schedule.input_size)
    unet, vae = unet.to(device).train(), vae.to(device).train()
    from depthdistill.models.prompt_embedding import tiny_prompt_embedding

    prompt = tiny_prompt_embedding(unet.config.cross_attention_dim, seed=schedule.seed).to(device)

    def vae_loss(rgb, disp, mask):
        grey = _minmax_to_pm1(disp, mask)[:, None].expand(-1, 3, -1, -1)  # [B, 3, h, w]
        x = torch.cat([rgb * 2 - 1, grey])
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        return (recon - x).abs().mean() + 1e-6 * posterior.kl().mean()

    history = _train_loop("genpercept-tiny vae", vae.parameters(), vae_loss, sampler, schedule.vae_steps, 1e-3)
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)

    def step_loss(rgb, disp, mask):
        pred = tt.genpercept_forward_unclipped(unet, vae, rgb, prompt)  # [B, h, w]
        target = _minmax_to_pm1(disp, mask)
        l1 = torch.where(mask, (pred - target).abs(), torch.zeros_like(pred)).sum() / mask.sum().clamp_min(1)
        from depthdistill.depth import gradient_matching_loss

        return l1 + 0.5 * gradient_matching_loss(pred, target, mask, kind="none").mean()

    params = list(unet.parameters()) + [p for p in vae.parameters() if p.requires_grad]
    history += _train_loop("genpercept-tiny unet", params, step_loss, sampler, schedule.genpercept_steps,
                           schedule.genpercept_lr)
    return unet.eval(), vae.eval(), prompt, history
