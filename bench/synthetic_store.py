"""A synthetic webdataset label store for the trainer benchmarks (bench_train, bench_train_gpu).

`num` views of random RGB with smooth labels from two teachers: `dav2` in disparity, `gp` in
depth (so the trainer's space conversion is on the timed path). Written with depthdistill.shards
like a real store; nothing here runs a teacher.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TEACHERS = {"dav2": "disparity", "gp": "depth"}


def build_store(root: Path, num: int, view: int, per_shard: int = 16, *, image_hw: tuple[int, int] = (384, 512),
                crop_min: int | None = None, max_grid: int = 3) -> Path:
    """`root/store` with `num` views (one per image of `image_hw`) planned with `plan_view`."""
    from depthdistill import shards
    from depthdistill.views import plan_view

    rng = np.random.default_rng(0)
    store, num_shards = Path(root) / "store", (num + per_shard - 1) // per_shard
    yy, xx = np.mgrid[0:view, 0:view] / view
    for s in range(num_shards):
        items = []
        for i in range(s * per_shard, min(num, (s + 1) * per_shard)):
            plan = plan_view(f"img{i}", image_hw, 0, 0, view_size=view, crop_min=crop_min or view + 17,
                             patch_size=view, max_grid=max_grid)
            items.append((shards.view_key(i, 0), plan, rng.integers(0, 255, (view, view, 3), dtype=np.uint8)))
        with shards.views_writer(store, s) as w:
            for key, plan, img in items:
                w.write(shards.ViewSample(key, img, plan.to_dict()))
        for name, space in TEACHERS.items():
            with shards.teacher_writer(store, s, teacher=name, fingerprint="b0", space=space) as w:
                for key, plan, _ in items:
                    g = (1 + xx + rng.uniform(0.5, 2) * yy).astype(np.float32)  # [V, V] disparity
                    patches = np.stack([np.roll(g, 7 * j, axis=0) for j in range(len(plan.patches))])  # [k*k, P, P]
                    w.write(shards.LabelSample(key, g, patches) if space == "disparity"
                            else shards.LabelSample(key, 1 / g, 1 / patches))
    shards.write_manifest(store, shards.make_manifest(
        fmt="webdataset", num_shards=num_shards, shard_size=per_shard, num_views=num, codec=shards.DEFAULT_CODEC,
        teachers={n: {"space": sp, "fingerprint": "b0"} for n, sp in TEACHERS.items()}))
    return store
