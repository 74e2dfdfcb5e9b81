"""Labeling throughput on CPU: views/s and teacher-calls/s with 1 vs 2 actors, model-busy share.

Printed, not asserted. Uses the embedded teachers when `make teachers` has built them, else a
tiny random DAv2 of the same class (same cost per call). Example (2-core machine):

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_labels.py --images world://unlabeled?n=32

Columns: `e2e` counts the whole teacher stage (actor start-up + model load included);
`in-actor` divides views by the summed time actors spent inside `label_shard` and multiplies
by the number of actors (steady-state throughput); `busy` is the share of that time spent in
`model.predict`; scaling efficiency = rate(2 actors) / (2 * rate(1 actor)).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def _teacher(tmp: Path, input_size: int):
    from depthdistill.config import TeacherConfig
    from depthdistill.models.hub import EMBEDDED_ROOT

    if (EMBEDDED_ROOT / "dav2-tiny").is_dir():
        return TeacherConfig(name="dav2", kind="dav2", model="embedded://dav2-tiny",
                             input_size=input_size, batch_size=16)
    from depthdistill.models import build_dav2

    build_dav2("tiny").save_pretrained(tmp / "dav2")
    return TeacherConfig(name="dav2", kind="dav2", model=str(tmp / "dav2"),
                         input_size=input_size, batch_size=16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="world://unlabeled?n=32")
    parser.add_argument("--shard-size", type=int, default=4)
    parser.add_argument("--actors", default="1,2")
    args = parser.parse_args()

    import ray

    from depthdistill.config import ImagesConfig, LabelsConfig, StagesConfig, ViewsConfig
    from depthdistill.pipeline.run import run_labels

    tmp = Path(tempfile.mkdtemp(prefix="bench_labels_"))
    teacher = _teacher(tmp, 112)
    ray.init(num_cpus=max(int(a) for a in args.actors.split(",")) + 1, include_dashboard=False,
             log_to_driver=False)
    rows = []
    try:
        for actors in (int(a) for a in args.actors.split(",")):
            out = tmp / f"out{actors}"
            cfg = StagesConfig(images=ImagesConfig(source=args.images), views=ViewsConfig(),
                               teachers=(teacher,),
                               labels=LabelsConfig(out=str(out), shard_size=args.shard_size,
                                                   num_actors=actors))
            run_labels(cfg)  # plan + views shards once (not timed: teachers are the subject)
            shutil.rmtree(next(out.glob("*/dav2@*")))
            start = time.perf_counter()
            summary = run_labels(cfg)
            wall = time.perf_counter() - start
            t = summary.teachers[0]
            in_actor = t.views / t.actor_wall_s * actors
            rows.append((actors, t.views, t.teacher_calls, wall, t.views / wall,
                         t.teacher_calls / wall, in_actor, t.busy_s / t.actor_wall_s))
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'actors':>6} {'views':>6} {'calls':>6} {'wall s':>7} {'e2e v/s':>8} "
          f"{'calls/s':>8} {'in-actor v/s':>12} {'busy':>6}")
    for a, v, c, w, r, cr, ia, b in rows:
        print(f"{a:>6} {v:>6} {c:>6} {w:>7.2f} {r:>8.2f} {cr:>8.2f} {ia:>12.2f} {b:>6.0%}")
    if len(rows) >= 2:
        one, two = rows[0], rows[1]
        print(f"scaling efficiency {two[0]} vs {one[0]} actors: e2e "
              f"{two[4] / (one[4] * two[0] / one[0]):.0%}, in-actor "
              f"{two[6] / (one[6] * two[0] / one[0]):.0%}")


if __name__ == "__main__":
    main()
