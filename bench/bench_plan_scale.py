"""Labeling at scale: plan + cut throughput and the driver's peak memory, 1K to 100K images.

    python bench/bench_plan_scale.py [--sizes 1000 10000 100000] [--workers 1 2] [--cluster]

Synthetic collections of tiny images (32 x 48 PNGs, written once into tars of 10K, the
img2dataset layout) are planned and cut the way `depthdistill labels` does it
(`pipeline.plan.build_plan` on Ray tasks, then the views shards as Ray tasks), each run in a
fresh driver process on a local Ray with N worker CPUs (`--cluster`: a simulated two-node
cluster, one CPU each). Printed per run: images/s for plan + cut, the two phases' seconds,
and the driver's peak RSS (`ru_maxrss`). Then the two goals: driver peak RSS at the largest
size within 1.5x of the smallest, and plan + cut throughput with 2 workers >= 1.7x with 1.
Last, one full `run_labels` at the smallest size with a stand-in teacher (a cheap function of
the image with the real teacher's name and fingerprint) to show the store is complete.

Measured on the 2-core development CPU, 2026-12-06 (idle: the headline run was paused; two
invocations, `--cluster --sizes 1000 10000`, then `--sizes 1000 100000 --workers 2`):

      images    workers    img/s  plan s   cut s  peak RSS MB
        1000          1      233     1.1     3.2          131
        1000          2      289     1.0     2.5          132
        1000     2-node      247     1.3     2.7          130
       10000          1      229     8.6    35.0          138
       10000          2      397     5.6    19.6          139
       10000     2-node      362     6.7    20.9          137
      100000          2      468    42.7   171.2          159
    driver peak RSS: 159 MB at 100K = 1.21x the 132 MB at 1K (goal <= 1.5x);
    2 workers / 1: 1.24x at 1K (Ray start-up and task overheads dominate), 1.73x at 10K (goal 1.7x).
    run_labels with a stand-in teacher: 1000 images, 4 label shards, 79 teacher calls in 8.4 s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VIEWS = dict(view_size=14, crop_min=20, patch_size=14, max_grid=2)
PER_TAR = 10_000


def make_collection(root: Path, n: int) -> Path:
    """`root/tars/part-*.tar` with n tiny PNGs (random colours on a gradient), once per n."""
    from PIL import Image

    folder = root / f"collection-{n}"
    if (folder / "done").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = np.linspace(0, 200, 48, dtype=np.float32)[None, :, None]
    for t in range((n + PER_TAR - 1) // PER_TAR):
        with tarfile.open(folder / f"part-{t:05d}.tar", "w") as tar:
            for i in range(t * PER_TAR, min(n, (t + 1) * PER_TAR)):
                img = (base + rng.integers(0, 55, (32, 1, 3))).astype(np.uint8).repeat(1, axis=1)
                img = np.broadcast_to(img, (32, 48, 3)).copy()
                img[0, 0] = [i % 256, (i // 256) % 256, (i // 65536) % 256]  # every image unique
                buf = io.BytesIO()
                Image.fromarray(img).save(buf, format="PNG", compress_level=1)
                info = tarfile.TarInfo(f"{i:08d}.png")
                info.size = len(buf.getvalue())
                tar.addfile(info, io.BytesIO(buf.getvalue()))
    (folder / "done").write_text(str(n))
    return folder


def child(collection: Path, out: Path, workers: int, cluster: bool) -> dict:
    """One measured run in this (fresh) process: plan + cut on Ray; returns the figures."""
    import ray

    from depthdistill.config import ViewsConfig
    from depthdistill.pipeline.cache import Verified
    from depthdistill.pipeline.plan import build_plan, move_plan_into, store_dir, temp_plan_folder
    from depthdistill.pipeline.run import _views_shards
    from depthdistill.pipeline.sources import open_source

    nodes = None
    if cluster:
        from ray.cluster_utils import Cluster

        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        nodes.add_node(num_cpus=1)
        ray.init(address=nodes.address, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        source = open_source(str(collection))
        t0 = time.perf_counter()
        plan = build_plan(source, ViewsConfig(**VIEWS), 256, temp_plan_folder(out))
        t1 = time.perf_counter()
        store = store_dir(out, source.name, plan)
        move_plan_into(plan, store)
        _views_shards(plan, source, store, "webdataset", 10**9, 2, Verified())
        t2 = time.perf_counter()
    finally:
        ray.shutdown()
        if nodes is not None:
            nodes.shutdown()
    return {"images": plan.num_images, "views": plan.num_views, "shards": plan.num_shards,
            "plan_s": t1 - t0, "cut_s": t2 - t1, "images_per_s": plan.num_images / (t2 - t0),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(collection: Path, workers: int, cluster: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, __file__, "--child", str(collection), out, str(workers)] + (["--cluster"] if cluster else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
        if proc.returncode:
            raise RuntimeError(proc.stderr[-3000:])
        return json.loads(proc.stdout.strip().splitlines()[-1])


def stand_in_run(collection: Path, root: Path) -> str:
    """The whole `run_labels` at one size with a stand-in teacher: labeling works at scale too."""
    import ray

    from depthdistill.config import ImagesConfig, LabelsConfig, StagesConfig, TeacherConfig, ViewsConfig
    from depthdistill.models.configs import build_dav2
    from depthdistill.pipeline.run import run_labels
    from stand_in import StandInWorker

    build_dav2("tiny").save_pretrained(root / "dav2")
    cfg = StagesConfig(images=ImagesConfig(source=str(collection)), views=ViewsConfig(**VIEWS),
                       teachers=(TeacherConfig(name="dav2", model=str(root / "dav2"), input_size=14,
                                               batch_size=64),),
                       labels=LabelsConfig(out=str(root / "labels"), shard_size=256, num_actors=2))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        t0 = time.perf_counter()
        s = run_labels(cfg, worker_cls=StandInWorker)
        dt = time.perf_counter() - t0
    finally:
        ray.shutdown()
    run = s.teachers[0]
    return (f"run_labels with a stand-in teacher: {s.num_images} images, {run.done} label shards, "
            f"{run.teacher_calls} teacher calls in {dt:.1f} s (planning {s.plan_s:.1f} s), ok={s.ok}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cluster", action="store_true", help="also a simulated 2-node cluster (1 CPU each)")
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "depthdistill-bench-plan")
    ap.add_argument("--child", nargs=3, metavar=("COLLECTION", "OUT", "WORKERS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(Path(a.child[0]), Path(a.child[1]), int(a.child[2]), a.cluster)))
        return
    rows = []
    print(f"{'images':>8s} {'workers':>10s} {'img/s':>8s} {'plan s':>7s} {'cut s':>7s} {'peak RSS MB':>12s}")
    for n in a.sizes:
        collection = make_collection(a.root, n)
        for w in a.workers + (["2-node"] if a.cluster else []):
            r = measure(collection, 2 if w == "2-node" else w, cluster=w == "2-node")
            rows.append((n, w, r))
            print(f"{n:8d} {str(w):>10s} {r['images_per_s']:8.0f} {r['plan_s']:7.1f} {r['cut_s']:7.1f} "
                  f"{r['peak_rss_mb']:12.0f}", flush=True)
    rss = {n: max(r["peak_rss_mb"] for m, _, r in rows if m == n) for n in a.sizes}
    small, large = min(a.sizes), max(a.sizes)
    print(f"driver peak RSS at {large}: {rss[large]:.0f} MB = {rss[large] / rss[small]:.2f}x that at {small} "
          "(goal <= 1.5x)")
    if 1 in a.workers and 2 in a.workers:
        for n in a.sizes:
            one = next(r for m, w, r in rows if m == n and w == 1)["images_per_s"]
            two = next(r for m, w, r in rows if m == n and w == 2)["images_per_s"]
            print(f"{n:8d} images: plan + cut with 2 workers = {two / one:.2f}x with 1 (goal >= 1.7x)")
    print(stand_in_run(make_collection(a.root, small), a.root / "stand-in"))


if __name__ == "__main__":
    main()
