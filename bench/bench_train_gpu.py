"""Training step vs input pipeline on a GPU machine (samples/s), side by side.

    python bench/bench_train_gpu.py                              # DAv2-S b8 / DAv2-L b4, 560 px, CUDA
    python bench/bench_train_gpu.py --tiny --device cpu          # smoke test (tiny student, 112 px)

Builds a synthetic label store (random RGB views, smooth labels from two teachers, one
disparity and one depth, every view with a 2 x 2 patch grid whose patch labels are at the
view size, the default `q12` codec) with the project's shard writers, then measures

- **step**: samples/s that the project's own `trainer.loop.train_step` consumes (student
  forward + frozen-encoder tokens under bf16 autocast on CUDA, the four-term
  `DistillationLoss` in fp32, backward, grad clip, AdamW; its host sync points included) on
  batches already read from the store (data cost excluded), random-weight students built
  from `train.student` by `trainer.loop.build_state`;
- **loader**: samples/s that `ShardStream` + DataLoader deliver with N workers on the
  machine's CPU cores (PNG decode, label decode, depth -> disparity, padding, collation);

Training FLOPs per step are counted with FlopCounterMode on one step (forward, frozen
encoder, backward). Printed, never asserted.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthetic_store import TEACHERS  # noqa: E402 - bench/ is on sys.path when run as a script


def trainer_module(name: str):
    """`depthdistill.trainer.<name>` when pip-installed, else the repo's `trainer/<name>.py`."""
    try:
        return importlib.import_module(f"depthdistill.trainer.{name}")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("depthdistill.trainer"):
            raise
        return importlib.import_module(f"trainer.{name}")


def build_store(root: Path, num: int, view: int, per_shard: int) -> Path:
    """A webdataset label store of `num` views with 2 x 2 patch grids and two teachers."""
    from synthetic_store import build_store as build

    return build(root, num, view, per_shard, image_hw=(int(1.8 * view),) * 2, crop_min=int(1.5 * view), max_grid=2)


def loader_rate(store: Path, workers: int, batch: int, budget_s: float) -> tuple[float, int]:
    """Samples/s the streaming loader delivers (worker start-up and the first batch excluded)."""
    tdata = trainer_module("data")
    ds = tdata.ShardStream(store, tuple(TEACHERS), batch_size=batch, max_grid=2, num_workers=workers)
    it = iter(tdata.build_loader(ds, workers))
    next(it)
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < budget_s:
        next(it)
        n += 1
    rate = n * batch / (time.perf_counter() - t0)
    del it
    return rate, n


def read_batches(store: Path, batch: int, count: int) -> list[dict]:
    tdata = trainer_module("data")
    it = iter(tdata.ShardStream(store, tuple(TEACHERS), batch_size=batch, max_grid=2))
    return [next(it) for _ in range(count)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_rate(store: Path, student: str, batch: int, device: torch.device, args) -> dict:
    """Samples/s and TFLOP/step of the project's train_step for one student size."""
    from torch.utils.flop_counter import FlopCounterMode

    from depthdistill.config import TrainConfig

    loop, tdata, losses = trainer_module("loop"), trainer_module("data"), trainer_module("losses")
    config = SimpleNamespace(train=TrainConfig(student=student, batch_size=batch, amp=args.amp, steps=10_000))
    dist = loop.Dist(device=device)
    t0 = time.perf_counter()
    with torch.device(device):  # random init on the GPU
        state = loop.build_state(config.train, dist, None)
    built = time.perf_counter() - t0
    sampler = tdata.TeacherSampler({"dav2": 0.7, "gp": 0.3}, seed=0)
    loss_fn = losses.DistillationLoss(config.train)
    batches = itertools.cycle(read_batches(store, batch, 2))  # host tensors, as the loader hands them
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.warmup):
        stats = loop.train_step(state, batches, sampler, loss_fn, config.train, dist)
    sync(device)
    n, t0 = 0, time.perf_counter()
    while n < args.min_steps or time.perf_counter() - t0 < args.row_s:
        stats = loop.train_step(state, batches, sampler, loss_fn, config.train, dist)
        n += 1
    sync(device)
    sec = (time.perf_counter() - t0) / n
    with FlopCounterMode(display=False) as counter:
        loop.train_step(state, batches, sampler, loss_fn, config.train, dist)
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    finite = stats is not None
    del state
    return {"student": student, "batch": batch, "samples_s": batch / sec, "ms_step": 1e3 * sec, "steps": n,
            "tflop_step": counter.get_total_flops() / 1e12, "mem_gib": mem, "built_s": built,
            "loss": stats["total"] if finite else float("nan")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny student at 112 px (CPU smoke test)")
    p.add_argument("--view", type=int, default=0, help="view side (default 560, tiny 112)")
    p.add_argument("--students", nargs="+", default=None, help="default: small:8 large:4 (tiny: tiny:4)")
    p.add_argument("--amp", default="auto", choices=("auto", "off", "bf16"))
    p.add_argument("--workers", type=int, nargs="+", default=[0, 4, 8])
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--shard-size", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--min-steps", type=int, default=3)
    p.add_argument("--row-s", type=float, default=8.0, help="time budget per step row (s)")
    p.add_argument("--loader-s", type=float, default=5.0, help="time budget per loader row (s)")
    p.add_argument("--peak-tflops", type=float, default=790.0)
    args = p.parse_args()
    device = torch.device(args.device)
    view = args.view or (112 if args.tiny else 560)
    specs = args.students or (["tiny:4"] if args.tiny else ["small:8", "large:4"])
    batch = int(specs[0].split(":")[1])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = build_store(Path(tmp), args.samples, view, args.shard_size)
        print(f"torch {torch.__version__}, view {view}px + 2x2 patches, store of {args.samples} "
              f"built in {time.perf_counter() - t0:.1f} s, amp {args.amp}", flush=True)
        # Loader first: DataLoader workers fork, better before CUDA is initialised.
        loads = {w: loader_rate(store, w, batch, args.loader_s) for w in args.workers}
        print("loader:", {w: round(r, 1) for w, (r, _) in loads.items()}, flush=True)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        print(f"device {name}", flush=True)
        steps = []
        for spec in specs:
            student, size = spec.split(":")
            try:  # one student failing must not lose the other's figures
                steps.append(step_rate(store, student, int(size), device, args))
            except Exception:  # noqa: BLE001 - report what was measured
                traceback.print_exc()
                continue
            print(f"  {student}: built in {steps[-1]['built_s']:.1f} s, loss {steps[-1]['loss']:.4f}", flush=True)
    print(f"{'student':>8} {'batch':>5} {'samples/s':>9} {'ms/step':>8} {'steps':>5} {'TFLOP/step':>10} "
          f"{'TFLOP/s':>8} {'of peak':>7} {'peak GiB':>8}")
    for r in steps:
        tflops = r["tflop_step"] * 1e3 / r["ms_step"]
        print(f"{r['student']:>8} {r['batch']:5d} {r['samples_s']:9.1f} {r['ms_step']:8.1f} {r['steps']:5d} "
              f"{r['tflop_step']:10.3f} {tflops:8.1f} {tflops / args.peak_tflops:7.1%} {r['mem_gib']:8.1f}")
    print(f"loader (CPU cores: {torch.multiprocessing.cpu_count()}), batch {batch}:")
    for w, (rate, n) in loads.items():
        ratios = "  ".join(f"{rate / r['samples_s']:.2f}x {r['student']}" for r in steps)
        print(f"  workers {w:>2}: {rate:8.1f} samples/s ({n} batches)   loader/step: {ratios}")


if __name__ == "__main__":
    main()
