"""WebDataset (tar) shards: ``<key>.view.png`` + ``<key>.meta.json`` per view, or
``<key>.global.png`` + ``<key>.patches.png`` + ``<key>.label.json`` per teacher label (16-bit
PNGs with the default codec; ``.q16`` members hold the custom codecs' bytes).

Tar members get a fixed mtime / uid / gid / uname / mode, so equal inputs give equal bytes.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
from pathlib import Path
from typing import Any, Iterator

from . import atomic
from .base import (ShardWriter, decode_label_sample, decode_views_sample, encode_label_sample,
                   encode_png)
from .layout import LABEL_FIELDS, PNG_LABEL_FIELDS, VIEW_FIELDS
from .schema import LabelSample, ViewSample, dumps

logger = logging.getLogger(__name__)
TAR_MTIME = 946684800  # 2000-01-01T00:00:00Z: fixed, so equal inputs give equal bytes


class WebDatasetShardWriter(ShardWriter):
    """Writes one shard as a tar (see ``ShardWriter`` for the interface)."""

    fmt = "webdataset"

    def __init__(self, folder: str | Path, index: int, **kwargs: Any) -> None:
        super().__init__(folder, index, **kwargs)
        self._prepare_folder()
        self._tmp = atomic.temp_path(self.final_path)
        self._fh = open(self._tmp, "wb")
        self._tar = tarfile.open(fileobj=self._fh, mode="w", format=tarfile.PAX_FORMAT)

    def _add(self, key: str, field: str, data: bytes) -> None:
        info = tarfile.TarInfo(f"{key}.{field}")
        info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = "depthdistill"
        self._tar.addfile(info, io.BytesIO(data))

    def _write_view(self, sample: ViewSample) -> None:
        self._add(sample.key, "view.png", encode_png(sample.view))
        self._add(sample.key, "meta.json", dumps(sample.meta))

    def _write_label(self, sample: LabelSample) -> None:
        fields, info = encode_label_sample(sample, self.codec, self.header)
        self._note_label(info)
        for name, data in fields.items():
            self._add(sample.key, name, data)

    def _finish(self) -> Path:
        self._tar.close()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        atomic.commit(self._tmp, self.final_path)
        return self.final_path

    def _discard(self) -> None:
        try:
            self._tar.close()
        finally:
            self._fh.close()
            if self._tmp.exists():
                self._tmp.unlink()


def iter_tar_samples(path: str | Path) -> Iterator[dict[str, Any]]:
    """Group a tar's members into raw samples ``{"__key__", "__url__", field: bytes}`` in order.

    The key is the member name up to its first dot (webdataset's rule); members of one key
    must be adjacent.
    """
    path = Path(path)
    current: dict[str, Any] | None = None
    seen: set[str] = set()
    with tarfile.open(path, mode="r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, _, field = member.name.partition(".")
            if current is None or key != current["__key__"]:
                if current is not None:
                    yield current
                if key in seen:
                    raise ValueError(f"{path}: members of key {key!r} are not adjacent; the shard "
                                     "is corrupt, delete it and its .json marker and re-run")
                seen.add(key)
                current = {"__key__": key, "__url__": str(path)}
            current[field] = tar.extractfile(member).read()
    if current is not None:
        yield current


class WebDatasetShardReader:
    """Reads one tar shard: ``kind`` ("views"/"teacher") from its fields; iterate decoded samples."""

    fmt = "webdataset"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"{self.path}: shard file not found; run `depthdistill shards validate`")

    def raw_samples(self) -> Iterator[dict[str, Any]]:
        return iter_tar_samples(self.path)

    def keys(self) -> list[str]:
        with tarfile.open(self.path, mode="r:") as tar:
            names = [m.name.partition(".")[0] for m in tar if m.isfile()]
        return list(dict.fromkeys(names))

    def __iter__(self) -> Iterator[ViewSample | LabelSample]:
        for raw in self.raw_samples():
            if all(f in raw for f in VIEW_FIELDS):
                yield decode_views_sample(raw)
            elif any(all(f in raw for f in fields) for fields in (LABEL_FIELDS, PNG_LABEL_FIELDS)):
                yield decode_label_sample(raw)
            else:
                raise ValueError(f"{self.path}: sample {raw['__key__']!r} has fields "
                                 f"{sorted(k for k in raw if not k.startswith('__'))}, expected "
                                 f"{VIEW_FIELDS}, {PNG_LABEL_FIELDS} or {LABEL_FIELDS}")
