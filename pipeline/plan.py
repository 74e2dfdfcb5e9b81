"""The view plan of a collection: `plan.jsonl`, its hash (the cache key), and the shard table.

Planning is per-image work (read, hash, decode, plan views), so it runs where the work is: the
collection is listed in chunks (`ImageSource.iter_refs`, streamed: never the whole listing in
memory) and every chunk is inspected by a Ray task (`plan_chunk`; a thread pool when Ray is not
running, e.g. in tests). The driver only schedules and writes: it takes the chunks' results in
listing order (at most `window` chunks in flight, so its memory stays flat as the collection
grows), drops duplicate images (the same content hash under two ids is labeled once, under the
first id; the driver keeps a 16-byte digest per kept image for that), streams the rows to
`plan.jsonl` and bad inputs to `bad_inputs.jsonl`, and keeps a `ShardTable`: for each shard its
byte range in the plan file, count and first / last key. A shard's rows are read back from the
file when a task needs them (`Plan.shard_rows`).

The same config on the same collection gives the same plan, byte for byte, whatever the number
of workers or chunk size: the plan hash is sha256(plan.jsonl bytes + "\\n" + view params) and
names the store folder `<out>/<collection>-<hash[:12]>/`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator

from .decode import DEFAULT_MAX_IMAGE_PIXELS, BadImageError, content_hash, decode_image
from .sources import ImageRef, ImageSource

logger = logging.getLogger(__name__)

VIEW_PARAM_KEYS = ("view_size", "crop_min", "patch_size", "max_grid", "min_overlap")
CHUNK_IMAGES = 256  # images per planning task
WINDOW = 16  # chunks in flight (bounds the driver's memory)


def dumps_line(obj: dict) -> str:
    """The one JSON encoding used for plan / bad-input lines (sorted keys, compact)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Inspected:
    """The outcome of planning one image: its plan lines, or why it was skipped."""

    ref: ImageRef
    sha256: str | None
    lines: bytes = b""  # the image's plan rows, one JSON line per view
    keys: tuple[str, ...] = ()  # their keys
    reason: str | None = None
    detail: str = ""


def _plan_rows(ref: ImageRef, digest: str, image_hw: tuple[int, int], views_cfg) -> list[dict]:
    """All views of one good image as plan rows; raises ImageTooSmallError."""
    from depthdistill.shards import view_key
    from depthdistill.views import plan_view

    rows = []
    for view_index in range(views_cfg.views_per_image):
        view = plan_view(ref.id, image_hw, view_index, views_cfg.seed, view_size=views_cfg.view_size,
                         crop_min=views_cfg.crop_min, patch_size=views_cfg.patch_size,
                         max_grid=views_cfg.max_grid, min_overlap=views_cfg.min_overlap)
        rows.append({"key": view_key(ref.index, view_index), "image_index": ref.index, "image_id": ref.id,
                     "locator": ref.locator, "sha256": digest, "view": view.to_dict()})
    return rows


def inspect_image(source: ImageSource, ref: ImageRef, views_cfg, max_pixels: int) -> Inspected:
    """Read, hash, decode and plan one image; failures become a reason, never an exception."""
    from depthdistill.views import ImageTooSmallError

    try:
        data = source.read_bytes(ref)
    except OSError as err:
        return Inspected(ref, None, reason="unreadable", detail=f"{type(err).__name__}: {err}")
    digest = content_hash(data)
    try:
        rgb = decode_image(data, max_pixels=max_pixels)  # [H, W, 3]
        rows = _plan_rows(ref, digest, (int(rgb.shape[0]), int(rgb.shape[1])), views_cfg)
    except BadImageError as err:
        return Inspected(ref, digest, reason=err.reason, detail=err.detail)
    except ImageTooSmallError as err:
        return Inspected(ref, digest, reason="too-small", detail=str(err))
    lines = "".join(dumps_line(r) + "\n" for r in rows).encode()
    return Inspected(ref, digest, lines, tuple(r["key"] for r in rows))


def plan_chunk(source: ImageSource, refs: list[ImageRef], views_cfg,
               max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> list[Inspected]:
    """One chunk of the collection, planned (the body of a Ray task)."""
    return [inspect_image(source, ref, views_cfg, max_pixels) for ref in refs]


@dataclass(frozen=True)
class ShardRows:
    """Where shard i's rows are in plan.jsonl, and what a done marker must say about them."""

    offset: int
    length: int
    count: int
    first_key: str
    last_key: str


@dataclass
class Plan:
    """A written plan: the driver's O(shards) view of it (rows stay in the file)."""

    path: Path  # plan.jsonl
    bad_path: Path  # bad_inputs.jsonl
    plan_hash: str  # sha256 hex of plan bytes + view params
    num_images: int  # images listed by the source (good + bad)
    num_views: int
    bad_reasons: dict[str, int]
    view_params: dict
    shard_size: int
    shards: list[ShardRows] = field(default_factory=list)
    seconds: float = 0.0  # planning wall time (set by the caller that times it)

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    @property
    def num_bad(self) -> int:
        return sum(self.bad_reasons.values())

    def shard_rows(self, index: int) -> list[dict]:
        """Shard i = views [i*shard_size, (i+1)*shard_size) in key order, read from the file."""
        s = self.shards[index]
        with open(self.path, "rb") as fh:
            fh.seek(s.offset)
            data = fh.read(s.length)
        return [json.loads(line) for line in data.splitlines()]

    def rows(self) -> Iterator[dict]:
        with open(self.path, "rb") as fh:
            for line in fh:
                yield json.loads(line)

    def bad_inputs(self) -> list[dict]:
        return [json.loads(line) for line in self.bad_path.read_text().splitlines()]


class _PlanWriter:
    """Takes Inspected images in listing order; writes plan.jsonl and bad_inputs.jsonl, hashes,
    deduplicates, and cuts the rows into shards of `shard_size` views."""

    def __init__(self, folder: Path, shard_size: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        from depthdistill.shards import BAD_INPUTS_FILE, PLAN_FILE

        self.plan_path, self.bad_path = folder / PLAN_FILE, folder / BAD_INPUTS_FILE
        self.plan, self.bad = open(self.plan_path, "wb"), open(self.bad_path, "wb")
        self.hash = hashlib.sha256()
        self.shard_size, self.offset, self.num_images = shard_size, 0, 0
        self.shards: list[ShardRows] = []
        self.open: list = []  # the shard being filled: [offset, length, count, first, last]
        self.kept: dict[bytes, str] = {}  # 16-byte content digest -> the id labeled under it
        self.reasons: Counter = Counter()

    def _bad(self, ins: Inspected, reason: str, detail: str, **extra) -> None:
        self.reasons[reason] += 1
        self.bad.write((dumps_line({"id": ins.ref.id, "path": ins.ref.locator, "reason": reason,
                                    "detail": detail, **extra}) + "\n").encode())

    def add(self, ins: Inspected) -> None:
        self.num_images += 1
        if ins.reason is not None:
            return self._bad(ins, ins.reason, ins.detail)
        digest = bytes.fromhex(ins.sha256[:32])
        if digest in self.kept:
            kept = self.kept[digest]
            return self._bad(ins, "duplicate", f"same content as {kept}", duplicate_of=kept)
        self.kept[digest] = ins.ref.id
        for line, key in zip(ins.lines.splitlines(keepends=True), ins.keys):  # may span two shards
            if not self.open:
                self.open = [self.offset, 0, 0, key, key]
            self.open[1] += len(line)
            self.open[2] += 1
            self.open[4] = key
            self.offset += len(line)
            if self.open[2] == self.shard_size:
                self._close_shard()
        self.plan.write(ins.lines)
        self.hash.update(ins.lines)

    def _close_shard(self) -> None:
        self.shards.append(ShardRows(*self.open))
        self.open = []

    def finish(self, params: dict) -> tuple[str, list[ShardRows]]:
        if self.open:  # the last, shorter shard
            self._close_shard()
        for fh in (self.plan, self.bad):
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        self.hash.update(b"\n" + dumps_line(params).encode())
        return self.hash.hexdigest(), self.shards


def _ordered(fn: Callable, chunks: Iterator[list[ImageRef]], window: int, use_ray: bool) -> Iterator[list[Inspected]]:
    """fn(chunk) for every chunk, `window` in flight, results in chunk order (Ray or threads)."""
    if use_ray:
        import ray

        task = ray.remote(fn).options(num_cpus=1, max_retries=2)
        submit, result = (lambda c: task.remote(c)), ray.get
    else:
        pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
        submit, result = (lambda c: pool.submit(fn, c)), (lambda f: f.result())
    pending: list = []
    try:
        for chunk in chunks:
            pending.append(submit(chunk))
            if len(pending) >= window:
                yield result(pending.pop(0))
        while pending:
            yield result(pending.pop(0))
    finally:
        if not use_ray:
            pool.shutdown(cancel_futures=True)


def _chunks(refs: Iterator[ImageRef], size: int) -> Iterator[list[ImageRef]]:
    while chunk := list(islice(refs, size)):
        yield chunk


def build_plan(source: ImageSource, views_cfg, shard_size: int, folder: str | Path, *,
               max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, chunk_images: int = CHUNK_IMAGES,
               window: int = WINDOW, use_ray: bool | None = None, progress=None) -> Plan:
    """Plan every image of `source` into `folder` (plan.jsonl + bad_inputs.jsonl).

    Chunks run as Ray tasks when Ray is running (`use_ray=None`), else on a thread pool.
    `progress(images_done, bad)` is called after every chunk."""
    if use_ray is None:
        import sys

        use_ray = "ray" in sys.modules and sys.modules["ray"].is_initialized()

    def plan(refs: list[ImageRef]) -> list[Inspected]:
        return plan_chunk(source, refs, views_cfg, max_pixels)

    writer = _PlanWriter(Path(folder), shard_size)
    for results in _ordered(plan, _chunks(source.iter_refs(), chunk_images), window, use_ray):
        for ins in results:
            writer.add(ins)
        if progress is not None:
            progress(writer.num_images, sum(writer.reasons.values()))
    params = {k: getattr(views_cfg, k) for k in VIEW_PARAM_KEYS}
    params.update(views_per_image=views_cfg.views_per_image, seed=views_cfg.seed)
    digest, shards = writer.finish(params)
    plan = Plan(writer.plan_path, writer.bad_path, digest, writer.num_images, sum(s.count for s in shards),
                dict(writer.reasons), params, shard_size, shards)
    logger.info("plan: %d images, %d views, %d shards, %d bad inputs, hash %s", plan.num_images,
                plan.num_views, plan.num_shards, plan.num_bad, digest[:12])
    return plan


def temp_plan_folder(out: str | Path) -> Path:
    """Where a plan is written before its hash (so its store folder) is known."""
    return Path(out) / f".plan-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def store_dir(out: str | Path, collection: str, plan: Plan) -> Path:
    """`<out>/<collection>-<plan hash[:12]>/`."""
    return Path(out) / f"{collection}-{plan.plan_hash[:12]}"


def move_plan_into(plan: Plan, store: Path) -> Plan:
    """Put a plan written in a temp folder into its store (refusing a different plan there).

    A rerun finds the same plan.jsonl in place: the new copy is dropped."""
    from depthdistill.shards import BAD_INPUTS_FILE, PLAN_FILE

    store.mkdir(parents=True, exist_ok=True)
    target, temp = store / PLAN_FILE, plan.path.parent
    if target.exists() and hashlib.sha256(target.read_bytes()).digest() != \
            hashlib.sha256(plan.path.read_bytes()).digest():
        raise ValueError(f"{target}: this store holds a different plan (hash prefix collision or edited "
                         "file); delete the folder or use another --out")
    if not target.exists():
        os.replace(plan.path, target)
    os.replace(plan.bad_path, store / BAD_INPUTS_FILE)
    shutil.rmtree(temp, ignore_errors=True)
    plan.path, plan.bad_path = target, store / BAD_INPUTS_FILE
    return plan
