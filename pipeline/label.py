"""Label one shard with one teacher: the Ray actor body (and the views-shard task).

`LabelWorker` holds one loaded teacher. For a shard it starts a prefetch thread that reads,
decodes and cuts every view (`cut_view`) while the main thread feeds the model micro-batches
of up to `batch_size` inputs (each view's global image and its k x k patches). As soon as a
view's global and patch maps are all out, a writer thread (`BackgroundConsumer`) encodes it
into the shard through `depthdistill.shards` (which refuses NaN/inf naming the key; temp name,
fsync, rename, then the done marker), so label encoding (quantise, predict, zstd: it releases
the GIL) runs while the teacher works on the next views instead of after the last one. The
worker returns its done row. "Teacher calls" are `teacher.predict` batches
(`MicroBatcher.calls`); images fed are counted beside them. `run.py` wraps this class in
`ray.remote`; tests may also call it in-process. `write_views_shard` is the body of the Ray
task that writes a views shard (the student's inputs).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depthdistill.background import BackgroundConsumer, BackgroundIterator

from .decode import DEFAULT_MAX_IMAGE_PIXELS, content_hash, decode_image
from .sources import ImageRef, ImageSource

logger = logging.getLogger(__name__)


@dataclass
class CutView:
    """One planned view, decoded and cut: the unit the prefetch thread hands over."""

    row: dict
    view: np.ndarray        # uint8 [V, V, 3]
    patches: np.ndarray     # uint8 [k*k, P, P, 3]


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


def view_meta(row: dict) -> dict:
    """meta.json of a view: ViewPlan.to_dict() + the image's content hash and plan fields."""
    return {**row["view"], "key": row["key"], "image_index": row["image_index"],
            "locator": row["locator"], "sha256": row["sha256"]}


def write_views_shard(store: Path, index: int, fmt: str, rows: list[dict], source,
                      max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> dict:
    """Decode + cut every view of a shard and write `views/shard-xxxxxx` (Ray task body)."""
    from depthdistill.shards import ViewSample, views_writer

    with views_writer(store, index, fmt) as writer:
        for item in iter_cut_views(source, rows, max_pixels):
            writer.write(ViewSample(key=item.row["key"], view=item.view, meta=view_meta(item.row)))
    return writer.record


def open_teacher_shard(store: Path, index: int, fmt: str, codec: str, teacher):
    """The writer (a context manager) of a teacher's shard `<store>/<teacher>@<fingerprint>/`.
    NaN/inf labels raise NonFiniteLabelError naming the key, and no marker is written.

    The writer is open for the whole labeling of the shard, so an actor killed meanwhile leaves
    its temp file: the retry (the only writer of this shard now) removes it first."""
    from depthdistill.shards import remove_shard_temps, teacher_folder_name, teacher_writer

    remove_shard_temps(Path(store) / teacher_folder_name(teacher.name, teacher.fingerprint), index)
    return teacher_writer(store, index, fmt, teacher=teacher.name, fingerprint=teacher.fingerprint,
                          space=teacher.space, codec=codec)


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


class LabelWorker:
    """One teacher, loaded once; `label_shard` is the unit of work (one shard).

    Wrapped by `ray.remote` in run.py (one actor per GPU, or CPU actors locally).
    """

    def __init__(self, teacher_cfg, source: ImageSource, store: str, *, fmt: str = "webdataset",
                 codec: str = "png16", prefetch: int = 2,
                 max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, teacher=None) -> None:
        if teacher is None:  # `teacher` lets tests and benchmarks pass a loaded one
            import torch

            from depthdistill.models import load_teacher

            device = "cuda" if torch.cuda.is_available() else "cpu"
            teacher = load_teacher(teacher_cfg, device=device)
        self.teacher = teacher
        self.batch_size = int(teacher_cfg.batch_size) if teacher_cfg is not None else 16
        self.source, self.store = source, Path(store)
        self.fmt, self.codec, self.prefetch = fmt, codec, prefetch
        self.max_pixels = max_pixels
        self.views_done = 0  # views this worker has fed to its teacher

    def run_teacher(self, rows: list[dict], emit) -> tuple[list[str], MicroBatcher]:
        """Prefetch thread cuts views; this thread runs micro-batches and calls
        `emit(LabelSample)` for each view, in key order, once all its maps are out."""
        from depthdistill.shards import LabelSample

        items = BackgroundIterator(iter_cut_views(self.source, rows, self.max_pixels), depth=max(1, self.prefetch),
                                   name="cut-views")
        batcher = MicroBatcher(self.teacher.predict, self.batch_size)
        views: list[tuple[str, int]] = []  # (key, number of patches) in key order
        emitted = 0

        def emit_finished() -> None:
            # buckets run first-in first-out, so finished views always form a prefix
            nonlocal emitted
            while emitted < len(views):
                key, k2 = views[emitted]
                slots = [(key, -1), *((key, j) for j in range(k2))]
                if not all(slot in batcher.results for slot in slots):
                    return
                maps = [batcher.results.pop(slot) for slot in slots]
                emit(LabelSample(key=key, global_map=maps[0],  # [V, V]
                                 patches=np.stack(maps[1:])))  # [k*k, P, P]
                emitted += 1

        for item in items:
            key = item.row["key"]
            views.append((key, len(item.patches)))
            batcher.add((key, -1), item.view)  # global view [V, V, 3]
            for j, patch in enumerate(item.patches):  # each [P, P, 3]
                batcher.add((key, j), patch)
            emit_finished()
            self.views_done += 1
        batcher.flush()
        emit_finished()
        return [key for key, _ in views], batcher

    def label_shard(self, shard_index: int, rows: list[dict]) -> dict:
        """Label + write one shard; returns the done row (also stored in the marker)."""
        start = time.perf_counter()
        with open_teacher_shard(self.store, shard_index, self.fmt, self.codec, self.teacher) as writer:
            with BackgroundConsumer(writer.write, name="shard-writer") as background:
                keys, batcher = self.run_teacher(rows, background.put)
            wall = time.perf_counter() - start  # the model and the encoding of every label
            info = {"node_id": _node_id(), "pid": os.getpid(), "teacher_calls": batcher.calls,
                    "teacher_images": batcher.images, "busy_s": round(batcher.busy_s, 4),
                    "wall_s": round(wall, 4), "encode_s": round(background.busy_s, 4)}
            writer.annotate(node_id=info["node_id"], pid=info["pid"], teacher_calls=info["teacher_calls"],
                            teacher_images=info["teacher_images"],
                            timing={"model_s": info["busy_s"], "label_s": info["wall_s"],
                                    "encode_s": info["encode_s"]})
        return {"shard": shard_index, "count": len(keys), **info, "marker": writer.record}


def _node_id() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside Ray the node is just this host
        pass
    return os.uname().nodename
