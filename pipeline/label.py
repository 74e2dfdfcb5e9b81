"""Label one shard with one teacher: the Ray actor body (and the views-shard task).

`LabelWorker` holds one loaded teacher. For a shard it starts a prefetch thread that reads,
decodes and cuts every view (`cut_view`) while the main thread feeds the model micro-batches
of up to `batch_size` inputs (each view's global image and its k x k patches). The whole shard
is written through `depthdistill.shards` (which refuses NaN/inf naming the key; temp name,
fsync, rename, then the done marker) and the worker returns its done row. "Teacher calls" are
`teacher.predict` batches (`MicroBatcher.calls`); images fed are counted beside them. `run.py` wraps this class in
`ray.remote`; tests may also call it in-process.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .decode import DEFAULT_MAX_IMAGE_PIXELS, content_hash, decode_image
from .sources import ImageRef, ImageSource
from .store_io import write_teacher_shard

logger = logging.getLogger(__name__)

FAULT_MARKER = ".fault-kill-claimed"
_END = object()


@dataclass
class CutView:
    """One planned view, decoded and cut: the unit the prefetch thread hands over."""

    row: dict
    view: np.ndarray        # uint8 [V, V, 3]
    patches: np.ndarray     # uint8 [k*k, P, P, 3]


@dataclass
class ShardLabels:
    """Teacher outputs for a shard, in key order."""

    keys: list[str] = field(default_factory=list)
    global_maps: list[np.ndarray] = field(default_factory=list)  # each float32 [V, V]
    patch_maps: list[np.ndarray] = field(default_factory=list)   # each float32 [k*k, P, P]


def load_view_image(source: ImageSource, row: dict, max_pixels: int) -> np.ndarray:
    """Read + decode the image of a plan row and check it is the planned content."""
    ref = ImageRef(int(row["image_index"]), row["image_id"], row["locator"])
    data = source.read_bytes(ref)
    if content_hash(data) != row["sha256"]:
        raise ValueError(f"{row['image_id']}: the image changed since planning (sha256 differs); "
                         "rerun `depthdistill labels` to make a new plan")
    return decode_image(data, max_pixels=max_pixels)  # [H, W, 3]


def iter_cut_views(source: ImageSource, rows: list[dict], max_pixels: int):
    """Yield CutView per plan row; consecutive views of one image decode it once."""
    from depthdistill.views import ViewPlan, cut_view

    last_sha, image = None, None
    for row in rows:
        if row["sha256"] != last_sha:
            image = load_view_image(source, row, max_pixels)  # [H, W, 3]
            last_sha = row["sha256"]
        view, patches = cut_view(image, ViewPlan.from_dict(row["view"]))
        yield CutView(row, view, patches)


def _prefetch(generator, out: queue.Queue) -> None:
    """Thread body: push items (or the raised exception) then the end sentinel."""
    try:
        for item in generator:
            out.put(item)
    except BaseException as err:  # handed to the consumer, which re-raises it
        out.put(err)
    out.put(_END)


class MicroBatcher:
    """Groups same-sized inputs into batches of at most `batch_size` for `predict`.

    Inputs are (slot, image uint8 [S, S, 3]); outputs land in `results[slot]` as float32
    [S, S] numpy maps. Counts calls and images, and the seconds spent inside `predict`.
    """

    def __init__(self, predict, batch_size: int) -> None:
        self.predict = predict
        self.batch_size = batch_size
        self.pending: dict[tuple[int, int], list[tuple[object, np.ndarray]]] = {}
        self.results: dict[object, np.ndarray] = {}
        self.calls = 0
        self.images = 0
        self.busy_s = 0.0

    def add(self, slot, image: np.ndarray) -> None:
        bucket = self.pending.setdefault(image.shape[:2], [])
        bucket.append((slot, image))
        if len(bucket) >= self.batch_size:
            self._run(image.shape[:2])

    def flush(self) -> None:
        for size in list(self.pending):
            while self.pending.get(size):
                self._run(size)

    def _run(self, size) -> None:
        bucket = self.pending[size]
        batch, self.pending[size] = bucket[: self.batch_size], bucket[self.batch_size:]
        images = np.stack([img for _, img in batch])  # [B, S, S, 3]
        start = time.perf_counter()
        maps = self.predict(images)  # [B, S, S] float32 (torch, maybe on GPU)
        maps = maps.detach().float().cpu().numpy() if hasattr(maps, "detach") else np.asarray(maps)
        self.busy_s += time.perf_counter() - start
        self.calls += 1
        self.images += len(batch)
        for (slot, _), out in zip(batch, maps):
            self.results[slot] = out.astype(np.float32, copy=False)


def claim_fault_kill(store: Path) -> bool:
    """Fault injection: True for exactly one caller per run (atomic O_EXCL marker file)."""
    try:
        fd = os.open(Path(store) / FAULT_MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


class LabelWorker:
    """One teacher, loaded once; `label_shard` is the unit of work (one shard).

    Wrapped by `ray.remote` in run.py (one actor per GPU, or CPU actors locally).
    """

    def __init__(self, teacher_cfg, source: ImageSource, store: str, *, fmt: str = "webdataset",
                 codec: str = "q16", prefetch: int = 2,
                 max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, fault_kill_after: int = -1,
                 teacher=None) -> None:
        if teacher is None:  # `teacher` lets tests and benchmarks pass a loaded one
            import torch

            from depthdistill.models import load_teacher

            device = "cuda" if torch.cuda.is_available() else "cpu"
            teacher = load_teacher(teacher_cfg, device=device)
        self.teacher = teacher
        self.batch_size = int(teacher_cfg.batch_size) if teacher_cfg is not None else 16
        self.source, self.store = source, Path(store)
        self.fmt, self.codec, self.prefetch = fmt, codec, prefetch
        self.max_pixels, self.fault_kill_after = max_pixels, fault_kill_after
        self.views_done = 0  # for fault injection: views labeled by this actor so far

    def _maybe_die(self) -> None:
        """labels.fault_kill_after: exit hard after N views, once per run (tests only)."""
        if 0 <= self.fault_kill_after <= self.views_done and claim_fault_kill(self.store):
            logger.warning("fault injection: actor %d exits after %d views", os.getpid(),
                           self.views_done)
            os._exit(1)

    def run_teacher(self, rows: list[dict]) -> tuple[ShardLabels, MicroBatcher]:
        """Prefetch thread cuts views; this thread runs micro-batches; returns the maps."""
        items: queue.Queue = queue.Queue(maxsize=max(1, self.prefetch))
        thread = threading.Thread(
            target=_prefetch, args=(iter_cut_views(self.source, rows, self.max_pixels), items),
            daemon=True)
        thread.start()
        batcher = MicroBatcher(self.teacher.predict, self.batch_size)
        labels, num_patches = ShardLabels(), []
        while (item := items.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            key = item.row["key"]
            labels.keys.append(key)
            num_patches.append(len(item.patches))
            batcher.add((key, -1), item.view)  # global view [V, V, 3]
            for j, patch in enumerate(item.patches):  # each [P, P, 3]
                batcher.add((key, j), patch)
            self.views_done += 1
            self._maybe_die()
        thread.join()
        batcher.flush()
        for key, k2 in zip(labels.keys, num_patches):
            labels.global_maps.append(batcher.results.pop((key, -1)))  # [V, V]
            labels.patch_maps.append(np.stack([batcher.results.pop((key, j))
                                               for j in range(k2)]))  # [k*k, P, P]
        return labels, batcher

    def label_shard(self, shard_index: int, rows: list[dict]) -> dict:
        """Label + write one shard; returns the done row (also stored in the marker)."""
        start = time.perf_counter()
        labels, batcher = self.run_teacher(rows)
        wall = time.perf_counter() - start
        info = {"node_id": _node_id(), "pid": os.getpid(), "teacher_calls": batcher.calls,
                "teacher_images": batcher.images, "busy_s": round(batcher.busy_s, 4),
                "wall_s": round(wall, 4)}
        marker = write_teacher_shard(self.store, shard_index, self.fmt, self.codec,
                                     self.teacher, labels, info)
        return {"shard": shard_index, "count": len(labels.keys), **info, "marker": marker}


def _node_id() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside Ray the node is just this host
        pass
    return os.uname().nodename
