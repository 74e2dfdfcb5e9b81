"""Input pipeline vs training step throughput (samples/s), side by side, on CPU.

    python bench/bench_train.py [--samples 64] [--workers 0 2] [--students tiny small] [--view 112]
                                [--policies spin passive]

Builds a synthetic label store of `--samples` views (random RGB, smooth labels, two teachers:
one disparity, one depth) with the shards writers, then measures
  - the loader: samples/s that `ShardStream` + DataLoader deliver with N workers (decode,
    conversion to disparity, padding, collation), and
  - the step: samples/s one training step (forward, the four losses, backward, AdamW)
    consumes for each student,
and prints them side by side: ratio > 1 means the input pipeline keeps up. Then it times the
tiny student's step in fresh processes under each OpenMP wait policy (`spin`: libgomp's default
GOMP_SPINCOUNT=300000; `passive`: OMP_WAIT_POLICY=PASSIVE, what `depthdistill.trainer` sets when
unset, see trainer/threads.py) and prints s/step and the ratio: on cores shared with other
processes spinning is ~10x slower at 2 threads; on an idle machine the two are close.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import depthdistill.trainer  # noqa: E402,F401 - the trainer's OpenMP default, before torch loads

import torch  # noqa: E402
from synthetic_store import build_store  # noqa: E402 - bench/ is on sys.path when run as a script


def loader_rate(store: Path, workers: int, batch: int, batches: int) -> float:
    from depthdistill.trainer import data as tdata

    ds = tdata.ShardStream(store, ("dav2", "gp"), batch_size=batch, max_grid=3, num_workers=workers)
    it = iter(tdata.build_loader(ds, workers))
    next(it)  # worker start-up excluded
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t0)


def step_rate(store: Path, student: str, view: int, batch: int, steps: int) -> float:
    from depthdistill.config import TrainConfig
    from depthdistill.models import student as students
    from depthdistill.trainer import data as tdata
    from depthdistill.trainer.losses import DistillationLoss
    from depthdistill.trainer.optim import build_optimizer

    cfg = TrainConfig(student=student, batch_size=batch)
    model = students.build_student(student)
    net, frozen = students.with_tokens(model), students.frozen_encoder(model)
    opt, loss_fn = build_optimizer(model, cfg), DistillationLoss(cfg)
    ds = tdata.ShardStream(store, ("dav2", "gp"), batch_size=batch, max_grid=3)
    it = iter(ds)
    fixed = [tdata.select_teacher(next(it), "dav2") for _ in range(2)]  # data cost excluded

    def one(b):
        pixels = students.normalize_images(b["image"])  # [B, 3, V, V]
        pred, tokens = net(pixels)
        loss, _ = loss_fn(pred, b, tokens, students.encoder_tokens(frozen, pixels))
        opt.zero_grad()
        loss.backward()
        opt.step()

    one(fixed[0])  # warm-up
    t0 = time.perf_counter()
    for i in range(steps):
        one(fixed[i % 2])
    return steps * batch / (time.perf_counter() - t0)


POLICIES = {"spin": {"GOMP_SPINCOUNT": "300000"}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}


def policy_seconds(store: Path, policy: str, args) -> float:
    """s/step of the tiny student's step in a fresh process under an OpenMP wait policy."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(POLICIES[policy])
    cmd = [sys.executable, __file__, "--step-only", str(store), "--students", "tiny", "--view", str(args.view),
           "--batch", str(args.batch), "--steps", str(args.steps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--students", nargs="+", default=["tiny", "small"])
    p.add_argument("--view", type=int, default=112)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--policies", nargs="*", default=list(POLICIES), choices=list(POLICIES))
    p.add_argument("--step-only", type=Path, default=None, help=argparse.SUPPRESS)  # child: print s/step
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.step_only is not None:
        print(args.batch / step_rate(args.step_only, args.students[0], args.view, args.batch, args.steps))
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(Path(tmp), args.samples, args.view)
        loads = {w: loader_rate(store, w, args.batch, max(2, args.samples // args.batch - 1)) for w in args.workers}
        print(f"view {args.view}px, batch {args.batch}, CPU threads {torch.get_num_threads()}")
        print(f"{'student':>8} {'step samples/s':>15} " + " ".join(f"{f'loader w={w}':>13}" for w in args.workers)
              + "   ratio loader/step")
        for student in args.students:
            rate = step_rate(store, student, args.view, args.batch, args.steps)
            ratios = " ".join(f"{loads[w] / rate:.1f}x" for w in args.workers)
            print(f"{student:>8} {rate:15.1f} " + " ".join(f"{loads[w]:13.1f}" for w in args.workers) + f"   {ratios}")
        if args.policies:
            secs = {pol: policy_seconds(store, pol, args) for pol in args.policies}
            print("tiny step under OpenMP wait policies: " + "  ".join(f"{k} {v:.3f} s/step" for k, v in secs.items())
                  + (f"   spin/passive {secs['spin'] / secs['passive']:.1f}x" if len(secs) == 2 else ""))


if __name__ == "__main__":
    main()
