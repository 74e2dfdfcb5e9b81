"""Streaming training data: label store -> shuffled, split, decoded batches with every teacher.

The store is read through `depthdistill.shards` (`open_store`, `iter_shard`: views zipped with
each teacher's shard by key, either WebDataset or Zarr). This module decides *which* samples a
DataLoader worker of a DDP rank reads and in *what order*, and turns them into tensors:

- **Split.** Slots are (rank, logical worker): `num_slots = world_size * num_workers`. Each
  epoch the shard list is permuted with (seed, epoch); rank r takes `perm[r::world]`, worker w
  takes `that[w::num_workers]`. With fewer shards than slots every slot reads all shards in
  the permuted order and keeps every `num_slots`-th sample (offset = its slot): still disjoint.
- **Order.** A seeded shuffle buffer (`train.shuffle_buffer`) per (seed, epoch, slot); the
  buffer is flushed at the end of each epoch, so an epoch's order depends on nothing else.
- **Stream.** Each worker's stream is endless (epoch after epoch) and cut into full batches in
  the worker, so the DataLoader returns batches strictly round-robin over workers.
- **Resume.** Each batch carries its logical worker and that worker's (epoch, index) after it.
  `DataPosition` records them and the number of batches consumed; a resumed dataset replays
  each worker's epoch and drops `index` samples (deterministic), and rotates physical workers
  so that the round-robin continues with the worker that was next.
- **Labels** are converted to disparity (`depth -> 1/depth`, zero / non-finite -> invalid).
  Patches are padded to `max_grid**2` slots with a `patch_valid` mask.
- **Faults.** A shard that fails its checksum (`shards.ShardChecksumError`) is skipped with a
  warning and counted, or raises when `strict`.

- **Overlap.** With `num_workers: 0` the trainer still decodes off the critical path:
  `depthdistill.background.BackgroundIterator` runs the loader in one thread, a few batches ahead (decoding is numpy /
  zlib / PIL work that overlaps the step's torch ops). Batches reach the loop in the same order,
  and the position is recorded when the loop *consumes* a batch, so resume is unchanged.

The teacher of a batch is drawn in the main process by `TeacherSampler` (a pure function of
(seed, batch index)); `select_teacher` picks its labels out of the batch.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from depthdistill.shards import ShardChecksumError

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- store checks


def verify_shard(store, index: int, teachers: tuple[str, ...]) -> None:
    """The views and teacher shard files of `index` against their done markers' sha256
    (`shards.verify_checksum`: ShardChecksumError naming the file)."""
    from depthdistill.shards import verify_checksum

    for path in [store.views_shard_path(index)] + [store.teacher_shard_path(t, index) for t in teachers]:
        verify_checksum(path, index)


def check_store(path: str | Path, teachers: list[str] | tuple[str, ...]):
    """Open the label store; ValueError naming the folder and the fix if it cannot train."""
    from depthdistill.shards import open_store

    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"--shards {path}: no such folder; pass a label store made by "
                         "`depthdistill labels` (<labels.out>/<collection>-<hash>/)")
    store = open_store(path)
    missing = [t for t in teachers if t not in store.teachers]
    if missing:
        raise ValueError(f"--shards {path}: the config names teacher(s) {missing} but the store only has "
                         f"{sorted(store.teachers)}; run `depthdistill labels` with this config or "
                         "drop them from `teachers:`")
    if not usable_shards(store, teachers):
        raise ValueError(f"--shards {path}: the store has no finished shards; run "
                         "`depthdistill labels` to completion first")
    return store


def usable_shards(store, teachers) -> list[int]:
    """Shards whose views and every teacher are finished (others are logged and left out)."""
    done = store.complete_shards(list(teachers)) if all(t in store.teachers for t in teachers) else []
    if len(done) < store.num_shards:
        logger.warning("%s: %d of %d shards are unfinished for teachers %s and are left out",
                       store.path, store.num_shards - len(done), store.num_shards, list(teachers))
    return done


# ----------------------------------------------------------------------------- split / order


def slot_shards(shards: list[int], *, epoch: int, seed: int, rank: int, world_size: int,
                worker: int, num_workers: int) -> tuple[list[int], tuple[int, int] | None]:
    """(shards this slot reads in order, sample filter `(offset, stride)` or None).

    Shard-level split when there are at least as many shards as slots; otherwise every slot
    reads every shard and keeps samples `i` with `i % stride == offset`.
    """
    order = np.random.default_rng([seed, epoch, 0x5A4D]).permutation(len(shards))
    perm = [shards[i] for i in order]
    num_slots = world_size * num_workers
    if len(shards) >= num_slots:
        return perm[rank::world_size][worker::num_workers], None
    return perm, (rank * num_workers + worker, num_slots)


def buffer_shuffle(items: Iterator[Any], size: int, rng: random.Random) -> Iterator[Any]:
    """Seeded shuffle buffer: fill `size`, then emit a random slot and refill it; flush at end."""
    if size <= 1:
        yield from items
        return
    buf: list[Any] = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        j = rng.randrange(size)
        buf[j], item = item, buf[j]
        yield item
    rng.shuffle(buf)
    yield from buf


# ----------------------------------------------------------------------------- tensors


def to_disparity(x: np.ndarray, space: str) -> tuple[np.ndarray, np.ndarray]:
    """A label map in its space -> (disparity float32, valid bool): `depth.to_disparity` on numpy."""
    from depthdistill.depth import to_disparity as convert

    disp, valid = convert(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), space)
    return disp.numpy(), valid.numpy()


def sample_arrays(sample, teachers: tuple[str, ...], max_patches: int) -> dict[str, Any]:
    """One StoreSample -> numpy arrays (patches padded to `max_patches`)."""
    k2 = len(sample.meta["footprints"])
    if k2 > max_patches:
        raise ValueError(f"sample {sample.key}: {k2} patches but views.max_grid allows {max_patches}; "
                         "train with the views settings the store was made with")
    fps = np.zeros((max_patches, 4), np.float32)  # [K, 4]
    fps[:k2] = np.asarray(sample.meta["footprints"], np.float32)
    out: dict[str, Any] = {"key": sample.key, "image": np.ascontiguousarray(sample.view.transpose(2, 0, 1)),
                           "footprints": fps, "patch_valid": np.arange(max_patches) < k2, "teachers": {}}
    for name in teachers:
        label = sample.labels[name]
        g, gm = to_disparity(np.asarray(label.global_map, np.float32), label.space)  # [V, V]
        p, pm = to_disparity(np.asarray(label.patches, np.float32), label.space)  # [k2, P, P]
        if p.shape[0] != k2:
            raise ValueError(f"sample {sample.key}: teacher {name} has {p.shape[0]} patch labels, the view plan "
                             f"{k2}; the store is inconsistent (run `depthdistill shards validate`)")
        pad = ((0, max_patches - k2), (0, 0), (0, 0))
        out["teachers"][name] = {"label": g, "label_mask": gm, "patches": np.pad(p, pad),
                                 "patch_mask": np.pad(pm, pad)}
    return out


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """A list of `sample_arrays` dicts -> one batch of tensors (B first)."""
    def stack(get) -> torch.Tensor:
        return torch.from_numpy(np.stack([get(s) for s in samples]))

    batch: dict[str, Any] = {
        "keys": [s["key"] for s in samples],
        "image": stack(lambda s: s["image"]),  # [B, 3, V, V] uint8
        "footprints": stack(lambda s: s["footprints"]),  # [B, K, 4]
        "patch_valid": stack(lambda s: s["patch_valid"]),  # [B, K]
        "teachers": {},
    }
    for name in samples[0]["teachers"]:
        batch["teachers"][name] = {f: stack(lambda s, f=f: s["teachers"][name][f])
                                   for f in ("label", "label_mask", "patches", "patch_mask")}
    return batch


def select_teacher(batch: dict[str, Any], name: str) -> dict[str, Any]:
    """The flat batch the loss reads: one teacher's labels plus the view data."""
    t = batch["teachers"][name]
    return {"teacher": name, "image": batch["image"], "footprints": batch["footprints"],
            "patch_valid": batch["patch_valid"], **t}


class TeacherSampler:
    """One teacher per batch with probabilities ∝ TeacherConfig.weight; pure in (seed, index)."""

    def __init__(self, weights: dict[str, float], seed: int = 0):
        total = sum(weights.values())
        if total <= 0:
            raise ValueError("teachers[].weight: weights must sum to a positive number")
        self.names = list(weights)
        self.probs = np.array([weights[n] / total for n in self.names])
        self.seed = seed

    def draw(self, index: int) -> str:
        u = np.random.default_rng([self.seed, index, 0x7EAC]).random()
        return self.names[min(int(np.searchsorted(np.cumsum(self.probs), u, side="right")), len(self.names) - 1)]


# ----------------------------------------------------------------------------- dataset


@dataclass
class DataPosition:
    """Where the stream is: batches consumed and each logical worker's (epoch, index)."""

    batches: int = 0
    workers: dict[str, list[int]] = field(default_factory=dict)
    skipped_shards: int = 0

    def update(self, batch: dict[str, Any]) -> None:
        pos = batch["position"]
        self.batches += 1
        self.workers[str(pos["worker"])] = [pos["epoch"], pos["index"]]
        self.skipped_shards = max(self.skipped_shards, pos["skipped"])

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "workers": dict(self.workers), "skipped_shards": self.skipped_shards}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> DataPosition:
        state = state or {}
        return cls(batches=int(state.get("batches", 0)), workers={k: list(v) for k, v in state.get("workers", {}).items()},
                   skipped_shards=int(state.get("skipped_shards", 0)))


class ShardStream(IterableDataset):
    """Endless batches for one DDP rank; see the module doc for split, order and resume."""

    def __init__(self, store_path: str | Path, teachers: tuple[str, ...], *, batch_size: int, max_grid: int,
                 seed: int = 0, shuffle_buffer: int = 64, strict: bool = False, rank: int = 0,
                 world_size: int = 1, num_workers: int = 0, position: DataPosition | None = None):
        super().__init__()
        self.store_path, self.teachers = Path(store_path), tuple(teachers)
        self.batch_size, self.max_patches = batch_size, max_grid * max_grid
        self.seed, self.shuffle_buffer, self.strict = seed, shuffle_buffer, strict
        self.rank, self.world_size, self.num_workers = rank, world_size, max(1, num_workers)
        self.position = position or DataPosition()

    def _logical_worker(self) -> int:
        info = get_worker_info()
        physical = info.id if info is not None else 0
        return (physical + self.position.batches) % self.num_workers

    def _epoch_samples(self, store, usable: list[int], epoch: int, worker: int, skipped: list[int],
                       verified: dict[int, bool]) -> Iterator[Any]:
        shards, sample_filter = slot_shards(usable, epoch=epoch, seed=self.seed, rank=self.rank,
                                            world_size=self.world_size, worker=worker, num_workers=self.num_workers)
        count = 0
        for shard in shards:
            if verified.get(shard) is False:
                continue  # known corrupt: counted and warned about once
            try:
                if shard not in verified:
                    verified[shard] = False
                    verify_shard(store, shard, self.teachers)
                    verified[shard] = True
                for sample in store.iter_shard(shard, self.teachers):
                    if sample_filter is None or count % sample_filter[1] == sample_filter[0]:
                        yield sample
                    count += 1
            except ShardChecksumError as exc:
                if self.strict:
                    raise
                skipped[0] += 1
                logger.warning("skipping shard %d of %s (%s); %d skipped so far", shard, self.store_path, exc,
                               skipped[0])

    def _stream(self, worker: int) -> Iterator[tuple[dict[str, Any], int, int, int]]:
        """(sample arrays, epoch, index after it, shards skipped) forever, from the saved position."""
        from depthdistill.shards import open_store

        store = open_store(self.store_path)
        usable, verified = usable_shards(store, self.teachers), {}
        epoch, start = self.position.workers.get(str(worker), [0, 0])
        skipped = [self.position.skipped_shards]
        while True:
            rng = random.Random(f"{self.seed}/{epoch}/{self.rank}/{worker}")
            index = 0
            for sample in buffer_shuffle(self._epoch_samples(store, usable, epoch, worker, skipped, verified), self.shuffle_buffer, rng):
                index += 1
                if index > start:  # replaying a resumed epoch: drop what was consumed
                    yield sample_arrays(sample, self.teachers, self.max_patches), epoch, index, skipped[0]
            if index == 0:
                raise ValueError(f"--shards {self.store_path}: rank {self.rank} worker {worker} got no samples "
                                 f"in epoch {epoch}; the store is smaller than ranks x workers "
                                 f"({self.world_size} x {self.num_workers}): lower train.num_workers or --nproc")
            epoch, start = epoch + 1, 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = self._logical_worker()
        pending: list[dict[str, Any]] = []
        for arrays, epoch, index, skipped in self._stream(worker):
            pending.append(arrays)
            if len(pending) == self.batch_size:
                batch = collate(pending)
                batch["position"] = {"worker": worker, "epoch": epoch, "index": index, "skipped": skipped}
                pending = []
                yield batch


def build_loader(dataset: ShardStream, num_workers: int) -> torch.utils.data.DataLoader:
    """A DataLoader over ready-made batches (decoding happens in the workers)."""
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=num_workers,
                                       persistent_workers=False, prefetch_factor=2 if num_workers else None)
