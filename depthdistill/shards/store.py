"""The label store as a whole: writer factories, ``open_store`` and ``LabelStore``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from . import atomic
from .base import ShardWriter, check_format
from .codec import DEFAULT_CODEC
from .layout import VIEWS_FOLDER, shard_path, teacher_folder_name
from .schema import Label, LabelSample, StoreSample, ViewSample, read_manifest
from .webdataset_io import WebDatasetShardReader, WebDatasetShardWriter
from .zarr_io import ZarrShardReader, ZarrShardWriter

logger = logging.getLogger(__name__)

_WRITERS = {"webdataset": WebDatasetShardWriter, "zarr": ZarrShardWriter}


def views_writer(store: str | Path, index: int, fmt: str = "webdataset") -> ShardWriter:
    """Writer of ``<store>/views/shard-<index>.{tar,zarr}`` (takes ``ViewSample``)."""
    return _WRITERS[check_format(fmt)](Path(store) / VIEWS_FOLDER, index, kind="views")


def teacher_writer(store: str | Path, index: int, fmt: str = "webdataset", *, teacher: str,
                   fingerprint: str, space: str, codec: str = DEFAULT_CODEC) -> ShardWriter:
    """Writer of ``<store>/<teacher>@<fingerprint>/shard-<index>`` (takes ``LabelSample``)."""
    folder = Path(store) / teacher_folder_name(teacher, fingerprint)
    return _WRITERS[check_format(fmt)](folder, index, kind="teacher", teacher=teacher,
                                       fingerprint=fingerprint, space=space, codec=codec)


def open_shard(path: str | Path) -> WebDatasetShardReader | ZarrShardReader:
    """A reader for one shard file (``.tar``) or directory (``.zarr``)."""
    path = Path(path)
    if path.suffix == ".zarr":
        return ZarrShardReader(path)
    if path.suffix == ".tar":
        return WebDatasetShardReader(path)
    raise ValueError(f"{path}: not a shard (expected shard-NNNNNN.tar or .zarr)")


@dataclass(frozen=True)
class TeacherInfo:
    name: str
    space: str  # "disparity" | "depth"
    fingerprint: str
    folder: Path
    done_shards: tuple[int, ...]


class LabelStore:
    """A label store opened for reading (see ``open_store``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest: dict[str, Any] = read_manifest(self.path)
        self.format: str = self.manifest["format"]
        self.num_shards: int = int(self.manifest["num_shards"])
        self.views_folder = self.path / VIEWS_FOLDER
        self.teachers: dict[str, TeacherInfo] = {}
        for name, info in sorted(self.manifest["teachers"].items()):
            folder = self.path / teacher_folder_name(name, info["fingerprint"])
            self.teachers[name] = TeacherInfo(name, info["space"], info["fingerprint"], folder,
                                              tuple(atomic.done_shards(folder)))

    def __repr__(self) -> str:
        return (f"LabelStore({str(self.path)!r}, format={self.format}, shards={self.num_shards}, "
                f"teachers={sorted(self.teachers)})")

    def _teacher(self, name: str) -> TeacherInfo:
        if name not in self.teachers:
            raise ValueError(f"{self.path}: no teacher {name!r} in manifest.json; it has "
                             f"{sorted(self.teachers)}")
        return self.teachers[name]

    def views_shard_path(self, index: int) -> Path:
        return shard_path(self.views_folder, index, self.format)

    def teacher_shard_path(self, name: str, index: int) -> Path:
        return shard_path(self._teacher(name).folder, index, self.format)

    def views_shard_urls(self) -> list[str]:
        return [str(self.views_shard_path(i)) for i in range(self.num_shards)]

    def teacher_shard_urls(self, name: str) -> list[str]:
        return [str(self.teacher_shard_path(name, i)) for i in range(self.num_shards)]

    def views_done_shards(self) -> list[int]:
        return atomic.done_shards(self.views_folder)

    def complete_shards(self, teachers: Iterable[str] | None = None) -> list[int]:
        """Shards whose views and every given teacher (default all) are marked done."""
        names = list(self.teachers) if teachers is None else list(teachers)
        done = set(self.views_done_shards())
        for name in names:
            done &= set(self._teacher(name).done_shards)
        return sorted(i for i in done if i < self.num_shards)

    def iter_shard(self, index: int, teachers: Iterable[str] | None = None) -> Iterator[StoreSample]:
        """Views of shard ``index`` zipped with each teacher's labels by key."""
        if not 0 <= index < self.num_shards:
            raise ValueError(f"{self.path}: shard {index} out of range (store has {self.num_shards})")
        names = sorted(self.teachers) if teachers is None else list(teachers)
        view_path = self.views_shard_path(index)
        paths = {n: self.teacher_shard_path(n, index) for n in names}
        for p in (view_path, *paths.values()):
            if not atomic.is_done(p.parent, index):
                raise ValueError(f"{p}: shard is not finished (no done marker); re-run "
                                 "`depthdistill labels` to complete the store")
        iters = {n: iter(open_shard(p)) for n, p in paths.items()}
        for view in open_shard(view_path):
            assert isinstance(view, ViewSample)
            labels = {}
            for n, it in iters.items():
                lab = next(it, None)
                if not isinstance(lab, LabelSample) or lab.key != view.key:
                    got = None if lab is None else lab.key
                    raise ValueError(f"key mismatch: {view_path} has {view.key!r} but {paths[n]} "
                                     f"has {got!r} at the same position; validate the store "
                                     "(`depthdistill shards validate`) and rewrite that shard")
                labels[n] = Label(lab.global_map, lab.patches, self.teachers[n].space, lab.params)
            yield StoreSample(view.key, view.view, view.meta, labels)
        for n, it in iters.items():
            extra = next(it, None)
            if extra is not None:
                raise ValueError(f"key mismatch: {paths[n]} has extra sample {extra.key!r} "
                                 f"beyond the views of {view_path}")

    def __iter__(self) -> Iterator[StoreSample]:
        for i in range(self.num_shards):
            yield from self.iter_shard(i)


def open_store(path: str | Path) -> LabelStore:
    """Open a label store folder (the one holding ``manifest.json``)."""
    return LabelStore(path)
