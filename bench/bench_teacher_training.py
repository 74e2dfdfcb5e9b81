"""How long `make teachers` takes on this machine: per-step cost of each training stage on the
CPU (or --device cuda), times the default schedule's step counts. Prints figures, asserts nothing.

    .venv/bin/python bench/bench_teacher_training.py [--steps 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch


def _time(fn, steps: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def main() -> None:
    from depthdistill.models import teacher_training as tr
    from depthdistill.models import tiny_teachers as tt
    from depthdistill.models.prompt_embedding import tiny_prompt_embedding

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    s = tr.TeacherSchedule()
    start = time.perf_counter()
    pool = tr.build_pool(32, s.image_hw, workers=2)
    render_per_image = (time.perf_counter() - start) / 32
    dav2_sampler = tr.CropSampler(pool, s, args.device, s.batch_size)
    gp_sampler = tr.CropSampler(pool, s, args.device, s.genpercept_batch_size)

    model = tt.build_dav2_tiny(s.input_size).to(args.device)
    opt = torch.optim.AdamW(model.parameters())
    batch = dav2_sampler.batch()

    def dav2_step():
        loss = tr._depth_loss(tt.dav2_forward(model, batch[0]), batch[1], batch[2], "global")
        opt.zero_grad()
        loss.backward()
        opt.step()

    unet, vae = (m.to(args.device) for m in tt.build_genpercept_tiny(s.input_size))
    prompt = tiny_prompt_embedding(unet.config.cross_attention_dim).to(args.device)
    gp_opt = torch.optim.AdamW(list(unet.parameters()) + list(vae.parameters()))
    gp_batch = gp_sampler.batch()

    def gp_step():
        loss = tt.genpercept_forward_unclipped(unet, vae, gp_batch[0], prompt).abs().mean()
        gp_opt.zero_grad()
        loss.backward()
        gp_opt.step()

    def vae_step():
        x = torch.cat([gp_batch[0] * 2 - 1, gp_batch[0] * 2 - 1])
        loss = (vae.decode(vae.encode(x).latent_dist.sample()).sample - x).abs().mean()
        gp_opt.zero_grad()
        loss.backward()
        gp_opt.step()

    rows = [
        ("render (2 processes)", render_per_image, s.pool_images),
        ("sample a DAv2 batch", _time(dav2_sampler.batch, args.steps), s.dav2_steps),
        ("DAv2 step", _time(dav2_step, args.steps), s.dav2_steps),
        ("VAE step", _time(vae_step, args.steps), s.vae_steps),
        ("GenPercept step", _time(gp_step, args.steps), s.genpercept_steps),
    ]
    total = 0.0
    print(f"device {args.device}, torch threads {torch.get_num_threads()}")
    print(f"{'stage':<22}{'s/unit':>9}{'units':>8}{'minutes':>9}")
    for name, seconds, units in rows:
        total += seconds * units
        print(f"{name:<22}{seconds:>9.3f}{units:>8}{seconds * units / 60:>9.1f}")
    print(f"{'make teachers (est.)':<22}{'':>17}{total / 60:>9.1f}  (+ ~2 min of card measurement)")


if __name__ == "__main__":
    main()
