"""`depthdistill labels`: plan -> views shards -> one Ray actor pool per teacher -> summary.

Finished shards (done marker present, same fingerprint) are skipped, so rerunning the same
config makes zero teacher calls and adding a teacher runs only that teacher. Every Ray result
is checked: a failed shard (dead actor or exception) is retried on another actor up to
`labels.max_retries` times; what still fails is listed in the summary with a rerun hint.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from depthdistill import shards

from .cache import Verified, check_manifest, done_shards, write_manifest
from .label import LabelWorker, write_views_shard
from .plan import Plan, build_plan, move_plan_into, store_dir, temp_plan_folder
from .sources import ImageSource, open_source

logger = logging.getLogger(__name__)


@dataclass
class TeacherRun:
    """What one teacher did in this run (one row of the closing table)."""

    name: str
    fingerprint: str
    folder: str
    num_shards: int
    done: int = 0            # shards labeled in this run
    skipped: int = 0         # shards already finished (cache)
    retried: int = 0
    failed: dict = field(default_factory=dict)  # shard -> last error
    views: int = 0
    teacher_calls: int = 0   # model.predict batches (each up to batch_size inputs)
    teacher_images: int = 0  # inputs fed: global views + patches
    wall_s: float = 0.0      # this teacher's wall time in the driver
    actor_wall_s: float = 0.0
    busy_s: float = 0.0      # seconds actors spent inside predict
    nodes: Counter = field(default_factory=Counter)  # node id -> shards labeled there


@dataclass
class LabelRunSummary:
    store: Path
    plan_hash: str
    num_images: int
    num_views: int
    num_shards: int
    bad_inputs: int
    bad_reasons: dict
    views_shards_written: int
    teachers: list[TeacherRun]
    plan_s: float = 0.0  # planning wall time (read, hash, decode, plan every image)
    verified: Verified = field(default_factory=Verified)  # done shards re-checked in this run

    @property
    def teacher_calls(self) -> int:
        return sum(t.teacher_calls for t in self.teachers)

    @property
    def ok(self) -> bool:
        return not any(t.failed for t in self.teachers)


@dataclass(frozen=True)
class RunSettings:
    """The resolved inputs of a labeling run (config + CLI overrides)."""

    source: str
    out: str
    teachers: tuple
    fmt: str
    num_actors: int
    actor_resources: dict  # labels.actor_resources; {} = auto (GPU if the cluster has one)


def actor_options(resources: dict) -> dict:
    """Ray options of one label actor: labels.actor_resources (keys CPU, GPU or custom, e.g.
    {"fake_gpu": 1} in tests), else one GPU per actor when the cluster has GPUs, else 1 CPU."""
    import ray

    if resources:
        rest = dict(resources)
        return {"num_cpus": float(rest.pop("CPU", 0)), "num_gpus": float(rest.pop("GPU", 0)),
                "resources": rest}
    if ray.cluster_resources().get("GPU", 0) >= 1:
        return {"num_cpus": 1, "num_gpus": 1}
    return {"num_cpus": 1}


def resolve_settings(cfg, *, images=None, out=None, teachers=None, fmt=None) -> RunSettings:
    """Apply CLI overrides; bad teacher names / formats are ConfigErrors before any model."""
    from depthdistill.config import ConfigError

    chosen = tuple(cfg.teachers)
    if teachers:
        names = [n.strip() for n in (teachers.split(",") if isinstance(teachers, str) else teachers)]
        known = {t.name: t for t in cfg.teachers}
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise ConfigError(f"--teachers: unknown teacher(s) {unknown}; the config "
                              f"{cfg.source_path or ''} has {sorted(known)}")
        chosen = tuple(known[n] for n in names)
    fmt = fmt or cfg.labels.format
    if fmt not in ("webdataset", "zarr"):
        raise ConfigError(f"--format: got {fmt!r}; use webdataset or zarr")
    resources = dict(getattr(cfg.labels, "actor_resources", {}) or {})
    return RunSettings(str(images or cfg.images.source), str(out or cfg.labels.out), chosen,
                       fmt, int(cfg.labels.num_actors), resources)


def init_ray(num_cpus: int | None = None) -> bool:
    """Connect to RAY_ADDRESS when set, else start Ray on this machine's CPUs.

    Returns True when this call started Ray (the caller shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                 log_to_driver=True)
    return True


def default_num_actors(requested: int, actor_options: dict) -> int:
    """labels.num_actors, or 0 = one per GPU (one per custom resource unit) / 2 on CPU."""
    import ray

    if requested > 0:
        return requested
    total = ray.cluster_resources()
    if actor_options.get("num_gpus"):
        return max(1, int(total.get("GPU", 0) // actor_options["num_gpus"]))
    for name, amount in actor_options.get("resources", {}).items():
        return max(1, int(total.get(name, 0) // amount))
    if total.get("GPU", 0) >= 1:
        return int(total["GPU"])
    return 2


def teacher_fingerprint_of(teacher_cfg) -> tuple[str, str]:
    """(fingerprint, space) of a configured teacher, computed in the driver.

    Uses `depthdistill.models.fingerprint_teacher(cfg)` when the models package offers a
    weights-only path, else loads the teacher on CPU once (no forward pass)."""
    import depthdistill.models as models

    if hasattr(models, "fingerprint_teacher"):
        return models.fingerprint_teacher(teacher_cfg)
    teacher = models.load_teacher(teacher_cfg, device="cpu")
    return teacher.fingerprint, teacher.space


def _last_line(err: BaseException) -> str:
    lines = [ln for ln in str(err).strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else type(err).__name__)[:300]


def schedule_shards(make_actor, num_actors: int, shards: list[int], submit, *,
                    max_retries: int, on_result, on_retry=None) -> dict[int, str]:
    """Run `submit(actor, shard) -> ObjectRef` over a pool; one shard in flight per actor.

    A dead actor is replaced and its shard goes back on the queue (to be picked up by any
    actor); an exception inside a shard is retried the same way. After `max_retries` failed
    attempts a shard is given up. Returns {shard: last error} for the given-up shards.
    """
    import ray
    from ray.exceptions import RayActorError, RayError

    todo = deque(shards)
    actors = [make_actor() for _ in range(min(num_actors, len(shards)))]
    inflight: dict = {}
    attempts: Counter = Counter()
    failed: dict[int, str] = {}

    def dispatch(slot: int) -> None:
        if todo:
            shard = todo.popleft()
            inflight[submit(actors[slot], shard)] = (slot, shard)

    for slot in range(len(actors)):
        dispatch(slot)
    while inflight:
        [ref], _ = ray.wait(list(inflight), num_returns=1)
        slot, shard = inflight.pop(ref)
        try:
            on_result(ray.get(ref))
        except RayError as err:
            if isinstance(err, RayActorError):  # the process died: start a fresh one
                logger.warning("actor for shard %d died (%s: %s); starting a replacement",
                               shard, type(err).__name__, _last_line(err))
                actors[slot] = make_actor()
            attempts[shard] += 1
            if attempts[shard] <= max_retries:
                todo.append(shard)
                if on_retry:
                    on_retry(shard, err)
            else:
                failed[shard] = _last_line(err)
                logger.error("shard %d failed %d times: %s", shard, attempts[shard], failed[shard])
        dispatch(slot)
    for actor in actors:
        ray.kill(actor)
    return failed


def _views_shards(plan: Plan, source: ImageSource, store: Path, fmt: str, max_pixels: int, max_retries: int,
                  verified: Verified) -> int:
    """Write the missing (or corrupt) views shards with Ray tasks, a bounded number in flight;
    returns how many were written."""
    import ray

    views = store / shards.VIEWS_FOLDER
    done = done_shards(plan, views, fmt, verified)
    missing = [i for i in range(plan.num_shards) if i not in done]
    if not missing:
        return 0
    shards.clean_partial(views)
    task = ray.remote(write_views_shard).options(num_cpus=1, max_retries=max_retries, retry_exceptions=True)
    window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    pending: list = []
    for i in missing:  # rows are read from plan.jsonl per shard: the driver never holds them all
        pending.append(task.remote(store, i, fmt, plan.shard_rows(i), source, max_pixels))
        if len(pending) >= window:
            ready, pending = ray.wait(pending, num_returns=1)
            ray.get(ready)  # raises (after Ray's retries) if a views shard can't be written
    ray.get(pending)
    return len(missing)


def _label_teacher(run: TeacherRun, teacher_cfg, plan: Plan, source: ImageSource, store: Path,
                   settings: RunSettings, lab, progress, verified: Verified, worker_cls=LabelWorker) -> None:
    """One teacher: skip finished (and intact) shards, label the rest on an actor pool of
    `worker_cls`. `lab`: the LabelsConfig section."""
    import ray

    folder = Path(run.folder)
    folder.mkdir(parents=True, exist_ok=True)
    done = done_shards(plan, folder, settings.fmt, verified, run.fingerprint)
    todo = [i for i in range(run.num_shards) if i not in done]
    run.skipped = run.num_shards - len(todo)
    if not todo:
        return
    shards.clean_partial(folder)
    options = actor_options(settings.actor_resources)
    actor_cls = ray.remote(worker_cls).options(max_restarts=0, max_concurrency=1, **options)
    num_actors = default_num_actors(settings.num_actors, options)

    def make_actor():
        return actor_cls.remote(teacher_cfg, source, str(store), fmt=settings.fmt,
                                codec=lab.codec, prefetch=lab.prefetch,
                                max_pixels=lab.max_image_pixels)

    def submit(actor, shard):
        return actor.label_shard.remote(shard, plan.shard_rows(shard))

    def on_result(row):
        run.done += 1
        run.views += row["count"]
        run.teacher_calls += row["teacher_calls"]
        run.teacher_images += row["teacher_images"]
        run.busy_s += row["busy_s"]
        run.actor_wall_s += row["wall_s"]
        run.nodes[row["node_id"]] += 1
        progress.advance(run, row["count"])

    def on_retry(shard, err):
        run.retried += 1

    progress.start(run, len(todo))
    try:
        run.failed = schedule_shards(make_actor, num_actors, todo, submit,
                                     max_retries=lab.max_retries, on_result=on_result,
                                     on_retry=on_retry)
    finally:
        progress.stop(run)


def plan_store(cfg, settings: RunSettings, source: ImageSource, progress) -> tuple[Plan, Path, dict]:
    """Plan the collection (Ray tasks in chunks), name the store by the plan's hash, check what
    it already holds, write plan.jsonl / bad_inputs.jsonl / manifest.json into it."""
    begin = time.perf_counter()
    progress.plan_start(source)
    try:
        plan = build_plan(source, cfg.views, cfg.labels.shard_size, temp_plan_folder(settings.out),
                          max_pixels=cfg.labels.max_image_pixels, progress=progress.plan_advance)
    finally:
        progress.plan_stop()
    if not plan.num_views:
        raise ValueError(f"{settings.source}: no usable images ({plan.num_bad} bad inputs: {plan.bad_reasons}); "
                         "check the source path")
    plan.seconds = time.perf_counter() - begin
    store = store_dir(settings.out, source.name, plan)
    fps = {t.name: teacher_fingerprint_of(t) for t in settings.teachers}
    manifest = check_manifest(store, plan, settings.fmt, cfg.labels.shard_size, {n: fp for n, (fp, _) in fps.items()})
    move_plan_into(plan, store)
    entries = {t.name: {"fingerprint": fps[t.name][0], "space": fps[t.name][1], "model": t.model, "kind": t.kind,
                        "precision": t.precision, "folder": shards.teacher_folder_name(t.name, fps[t.name][0])}
               for t in settings.teachers}
    write_manifest(store, manifest, plan, source, settings.fmt, cfg.labels.codec, entries)
    return plan, store, entries


def run_labels(cfg, *, images=None, out=None, teachers=None, fmt=None,
               progress=None, worker_cls=LabelWorker) -> LabelRunSummary:
    """The whole labeling stage. Returns the summary (check `.ok`). `worker_cls`: the actor class
    (a LabelWorker; tests pass one that dies to check the retries)."""
    from .summary import NullProgress

    progress = progress or NullProgress()
    settings = resolve_settings(cfg, images=images, out=out, teachers=teachers, fmt=fmt)
    source = open_source(settings.source, image_size=tuple(cfg.images.image_size))
    started = init_ray()  # planning runs on Ray too
    verified = Verified()
    try:
        plan, store, entries = plan_store(cfg, settings, source, progress)
        written = _views_shards(plan, source, store, settings.fmt, cfg.labels.max_image_pixels,
                                cfg.labels.max_retries, verified)
        runs = []
        for t in settings.teachers:
            run = TeacherRun(t.name, entries[t.name]["fingerprint"], str(store / entries[t.name]["folder"]),
                             plan.num_shards)
            begin = time.perf_counter()
            _label_teacher(run, t, plan, source, store, settings, cfg.labels, progress, verified, worker_cls)
            run.wall_s = time.perf_counter() - begin
            runs.append(run)
    finally:
        if started:
            import ray

            ray.shutdown()
    return LabelRunSummary(store, plan.plan_hash, plan.num_images, plan.num_views, plan.num_shards, plan.num_bad,
                           plan.bad_reasons, written, runs, plan_s=plan.seconds, verified=verified)
