"""Teacher labeling throughput on a GPU: the project's batched teacher path vs the naive loop.

    python bench/bench_labels_gpu.py                         # real sizes, CUDA, bf16, 560 px
    python bench/bench_labels_gpu.py --tiny --device cpu     # smoke test (tiny models, 112 px)

Random-weight, real-size models (the cost of a forward does not depend on the weights):
Depth Anything V2-L (`build_dav2("large")`) and SD2.1-size GenPercept (`build_genpercept("sd21")`).

- `batched`: what a labeling actor does per micro-batch: `DepthAnythingTeacher.predict` /
  `GenPerceptTeacher.predict` on a uint8 numpy batch [B, S, S, 3] (host -> device copy,
  uint8 -> float and normalisation on the device, bf16 forward), maps brought back to the
  host (`.cpu()`, as the actor does before encoding).
- `naive`: one PIL image at a time, fp32. DAv2: `transformers.pipeline("depth-estimation")`
  with a DPT image processor at the same S x S size. GenPercept has no HF pipeline: PIL ->
  tensor -> `genpercept_one_step` in fp32 per image -> `.cpu()`.

Each row: warm-up call(s), `torch.cuda.synchronize()`, then timed calls until both
`--min-iters` and the per-row time budget are reached. Achieved TFLOP/s = images/s x FLOPs
per image, the FLOPs counted with torch's FlopCounterMode on one batch-1 forward at S (the
way TEACHERS.md counted: DAv2-L 1.56, GenPercept 5.36 TFLOP at 560), and its share of
`--peak-tflops` (bf16 dense; the share of an fp32 row is against the same bf16 figure).
Printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REFERENCE_TFLOP = {"dav2-large": 1.56, "genpercept-sd21": 5.36}  # TEACHERS.md, per 560 x 560 input


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_calls(fn, device: torch.device, *, warmup: int, min_iters: int, budget_s: float) -> tuple[float, int]:
    """Mean seconds per `fn()` call after `warmup` calls; at least `min_iters` timed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    iters, start = 0, time.perf_counter()
    while iters < min_iters or time.perf_counter() - start < budget_s:
        fn()
        iters += 1
        if iters >= 10_000:
            break
    sync(device)
    return (time.perf_counter() - start) / iters, iters


def count_flops(fn) -> float:
    """FLOPs of one call (matmul / conv / attention, as torch's FlopCounterMode counts them)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def random_views(num: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 [N, S, S, 3]: smooth gradients plus noise (so PNG-like content, not constant)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([xx, yy, (xx + yy) / 2], axis=-1)  # [S, S, 3]
    views = base[None] * rng.uniform(100, 255, (num, 1, 1, 3)) + rng.normal(0, 12, (num, size, size, 3))
    return np.clip(views, 0, 255).astype(np.uint8)  # [N, S, S, 3]


def build_models(tiny: bool, device: torch.device):
    """(dav2 model, (unet, vae)) in fp32 with random weights, initialised on `device`."""
    from depthdistill.models.configs import build_dav2, build_genpercept

    with torch.device(device):  # random init on the GPU: seconds instead of a minute on CPU
        dav2 = build_dav2("tiny" if tiny else "large")
        unet, vae = build_genpercept("tiny" if tiny else "sd21")
    return dav2.to(device), (unet.to(device), vae.to(device))


def dav2_pipeline(model, size: int, device: torch.device):
    """The naive HF path: pipeline("depth-estimation") with a DPT processor at size x size."""
    from transformers import DPTImageProcessor, pipeline

    from depthdistill.models.dav2 import IMAGENET_MEAN, IMAGENET_STD

    processor = DPTImageProcessor(do_resize=True, size={"height": size, "width": size}, keep_aspect_ratio=True,
                                  ensure_multiple_of=14, resample=3, do_rescale=True, do_normalize=True,
                                  image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD), do_pad=False)
    return pipeline("depth-estimation", model=model, image_processor=processor,
                    device=0 if device.type == "cuda" else "cpu"), type(processor).__name__


def bench_dav2(model, views: np.ndarray, args, device: torch.device) -> list[dict]:
    from PIL import Image

    from depthdistill.models.dav2 import DepthAnythingTeacher

    size, rows = views.shape[1], []
    images = [Image.fromarray(v) for v in views]
    pipe, proc_name = dav2_pipeline(model, size, device)  # fp32 model, as a naive user has it
    cursor = iter(range(10**9))

    def naive() -> None:
        out = pipe(images[next(cursor) % len(images)])
        out["predicted_depth"].cpu()

    flops = count_flops(lambda: model(pixel_values=torch.zeros(1, 3, size, size, device=device)))
    sec, n = time_calls(naive, device, warmup=2, min_iters=args.min_iters, budget_s=args.row_s)
    rows.append(row("dav2", f"naive pipeline fp32 ({proc_name}), 1 img", 1, sec, n, flops))
    del pipe
    teacher = DepthAnythingTeacher(model, name="dav2", input_size=size, precision=args.precision, device=device,
                                   weights_digest="bench")  # casts the model in place
    sec, n = time_calls(lambda: teacher.predict(views).cpu(), device, warmup=1, min_iters=args.min_iters,
                        budget_s=args.row_s)
    rows.append(row("dav2", f"batched Teacher.predict {args.precision}, B={len(views)}", len(views), sec, n, flops))
    return rows


def bench_genpercept(unet, vae, views: np.ndarray, args, device: torch.device) -> list[dict]:
    from PIL import Image

    from depthdistill.models.genpercept import GenPerceptTeacher, genpercept_one_step

    size, rows = views.shape[1], []
    images = [Image.fromarray(v) for v in views]
    prompt = torch.randn(1, 2, unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(0))
    cursor = iter(range(10**9))

    def naive() -> None:
        img = np.asarray(images[next(cursor) % len(images)], dtype=np.float32) / 255.0  # [S, S, 3]
        rgb = torch.from_numpy(img).permute(2, 0, 1)[None].to(device)  # [1, 3, S, S]
        with torch.no_grad():
            genpercept_one_step(unet, vae, rgb, prompt.to(device)).cpu()  # [1, S, S]

    flops = count_flops(lambda: genpercept_one_step(unet, vae, torch.zeros(1, 3, size, size, device=device),
                                                    prompt.to(device)))
    sec, n = time_calls(naive, device, warmup=1, min_iters=args.min_iters, budget_s=args.row_s)
    rows.append(row("genpercept", "naive one-step loop fp32, 1 img", 1, sec, n, flops))
    teacher = GenPerceptTeacher(unet, vae, prompt, name="genpercept", input_size=size, precision=args.precision,
                                device=device, weights_digest="bench")  # casts unet/vae in place
    batch = views[: args.gp_batch]
    sec, n = time_calls(lambda: teacher.predict(batch).cpu(), device, warmup=1, min_iters=args.min_iters,
                        budget_s=args.row_s)
    rows.append(row("genpercept", f"batched Teacher.predict {args.precision}, B={len(batch)}", len(batch), sec,
                    n, flops))
    return rows


def row(teacher: str, path: str, batch: int, sec: float, iters: int, flops: float) -> dict:
    return {"teacher": teacher, "path": path, "img_s": batch / sec, "ms_call": 1e3 * sec, "iters": iters,
            "tflop_img": flops / 1e12, "tflops": batch / sec * flops / 1e12}


def print_table(rows: list[dict], peak: float, header: str) -> None:
    print(header)
    print(f"{'teacher':<11} {'path':<52} {'img/s':>8} {'ms/call':>8} {'iters':>5} {'GFLOP/img':>9} "
          f"{'TFLOP/s':>8} {'of peak':>7} {'speed-up':>8}")
    naive = {}
    for r in rows:
        naive.setdefault(r["teacher"], r["img_s"])
        print(f"{r['teacher']:<11} {r['path']:<52} {r['img_s']:8.2f} {r['ms_call']:8.1f} {r['iters']:5d} "
              f"{1e3 * r['tflop_img']:9.1f} {r['tflops']:8.1f} {r['tflops'] / peak:7.1%} "
              f"{r['img_s'] / naive[r['teacher']]:7.1f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny models at 112 px (CPU smoke test)")
    p.add_argument("--size", type=int, default=0, help="view side (default 560, tiny 112)")
    p.add_argument("--batch", type=int, default=16, help="views per micro-batch (DAv2)")
    p.add_argument("--gp-batch", type=int, default=16, help="views per micro-batch (GenPercept)")
    p.add_argument("--precision", default="bf16", choices=("bf16", "fp16", "fp32"))
    p.add_argument("--teachers", nargs="+", default=["dav2", "genpercept"], choices=("dav2", "genpercept"))
    p.add_argument("--row-s", type=float, default=8.0, help="time budget per timed row (s)")
    p.add_argument("--min-iters", type=int, default=3)
    p.add_argument("--peak-tflops", type=float, default=790.0, help="bf16 dense peak of the device")
    args = p.parse_args()
    device = torch.device(args.device)
    size = args.size or (112 if args.tiny else 560)
    if size % 56:
        raise ValueError(f"--size {size}: use a multiple of 56 (14 for DAv2 and 8 for GenPercept's VAE)")
    t0 = time.perf_counter()
    dav2, (unet, vae) = build_models(args.tiny, device)
    views = random_views(max(args.batch, args.gp_batch), size)  # [N, S, S, 3] uint8
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{torch.get_num_threads()} threads"
    print(f"device {name}, torch {torch.__version__}, models built in {time.perf_counter() - t0:.1f} s, "
          f"views {size}x{size}, TF32 matmul {torch.backends.cuda.matmul.allow_tf32}", flush=True)
    rows = []
    try:  # one teacher failing must not lose the other's figures
        if "dav2" in args.teachers:
            rows += bench_dav2(dav2, views[: args.batch], args, device)
        del dav2
        if "genpercept" in args.teachers:
            rows += bench_genpercept(unet, vae, views, args, device)
    except Exception:  # noqa: BLE001 - a benchmark reports what it measured before the failure
        traceback.print_exc()
    refs = "" if args.tiny else " (TEACHERS.md at 560: " + ", ".join(f"{k} {v}" for k, v in REFERENCE_TFLOP.items()) + ")"
    print_table(rows, args.peak_tflops, f"peak {args.peak_tflops:.0f} TFLOP/s{refs}; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
