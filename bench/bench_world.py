"""World renderer throughput: images/s for render() alone and for export_split (PNG writing),
on 1 and 2 processes, at 384x512 (the default) and 192x256 (the reference figure: a throwaway
numpy ray caster with shadows did 17.6 images/s at 192x256 on one core).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_world.py [--n 24]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from depthdistill.world import export_split, render  # noqa: E402

REFERENCE_192x256 = 17.6  # images/s, one core, the throwaway ray caster


def _render_only(job: tuple[int, int, int]) -> float:
    index, height, width = job
    return float(render("unlabeled", index, height=height, width=width).depth.mean())


def render_rate(n: int, height: int, width: int, workers: int) -> tuple[float, float]:
    """(images/s by the wall clock, images/s per CPU-second of this process; 1 process only)."""
    jobs = [(i, height, width) for i in range(n)]
    start, cpu = time.perf_counter(), time.process_time()
    if workers == 1:
        for job in jobs:
            _render_only(job)
    else:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_render_only, jobs, chunksize=2))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return n / wall, (n / cpu if workers == 1 else float("nan"))


def export_rate(n: int, workers: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        export_split("eval", n, tmp, num_workers=workers, progress=False)
        return n / (time.perf_counter() - start), float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="images per measurement")
    args = parser.parse_args()
    render("unlabeled", 0, height=64, width=64)  # warm imports
    rows = [
        ("render 192x256, 1 process", render_rate(args.n, 192, 256, 1)),
        ("render 384x512, 1 process", render_rate(args.n, 384, 512, 1)),
        ("render 384x512, 2 processes", render_rate(args.n, 384, 512, 2)),
        ("export eval 384x512 (PNG + depth/mask/thin), 1 process", export_rate(args.n, 1)),
        ("export eval 384x512 (PNG + depth/mask/thin), 2 processes", export_rate(args.n, 2)),
    ]
    print(f"world renderer throughput ({args.n} images each; unlabeled split for render, eval for export)")
    print(f"  {'':<58s} {'wall img/s':>10s} {'img/CPU-s':>10s}")
    for name, (wall, cpu) in rows:
        print(f"  {name:<58s} {wall:10.2f} {cpu:10.2f}")
    print(f"  192x256 per CPU-s vs the throwaway reference ({REFERENCE_192x256} images/s): "
          f"{rows[0][1][1] / REFERENCE_192x256:.2f}x")
    print(f"  2 processes vs 1 at 384x512 (render, wall clock): {rows[2][1][0] / rows[1][1][0]:.2f}x "
          f"(other load on the machine shows up here)")


if __name__ == "__main__":
    main()
