"""The writer interface shared by both formats, and the pure per-sample encoders/decoders.

Every writer is a context manager with ``write(sample)`` and ``close()``. It writes to a
temp name in the shard's folder; ``close()`` fsyncs, renames, then writes the done marker;
an exception inside the ``with`` block aborts (temp removed, no marker). Keys must be
written in strictly increasing order (the store's key order).
"""

from __future__ import annotations

import io
import json
import logging
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from . import atomic
from .codec import DEFAULT_CODEC, decode_maps, encode_maps, get_spec
from .layout import FORMATS, SPACES, label_fields, marker_path, shard_name, shard_path
from .schema import SCHEMA_VERSION, LabelSample, ViewSample, check_label_sample, check_view_sample, dumps

logger = logging.getLogger(__name__)
KINDS = ("views", "teacher")


# ----------------------------------------------------------------------------- pure codecs


def encode_png(rgb: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> lossless PNG bytes (deterministic: no metadata, fixed level)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), mode="RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))  # [H, W, 3]


def _field(sample: dict, name: str) -> bytes:
    for k in (name, "." + name):
        if k in sample:
            return sample[k]
    raise ValueError(f"shard sample {sample.get('__key__')!r} (from {sample.get('__url__', '?')}) "
                     f"lacks field {name!r}; fields: {sorted(k for k in sample if not k.startswith('__'))}")


def decode_views_sample(sample: dict[str, Any]) -> ViewSample:
    """Raw webdataset sample (``__key__``, ``view.png``, ``meta.json`` bytes) -> ViewSample."""
    meta = _field(sample, "meta.json")
    return ViewSample(key=str(sample["__key__"]), view=decode_png(_field(sample, "view.png")),
                      meta=json.loads(meta) if isinstance(meta, (bytes, str)) else dict(meta))


def decode_label_sample(sample: dict[str, Any]) -> LabelSample:
    """Raw webdataset sample (``label.json`` + ``global`` / ``patches`` as ``.png`` or ``.q16``
    bytes, whichever the codec wrote) -> LabelSample."""
    raw = _field(sample, "label.json")
    info = json.loads(raw) if isinstance(raw, (bytes, str)) else dict(raw)
    g_field, p_field, _ = label_fields(info.get("codec", ""))
    g = decode_maps(_field(sample, g_field), info["global"])  # [V, V]
    p = decode_maps(_field(sample, p_field), info["patches"])  # [K, P, P]
    return LabelSample(key=str(sample["__key__"]), global_map=g, patches=p, params=info)


def encode_label_sample(sample: LabelSample, codec: str, header: dict[str, Any]
                        ) -> tuple[dict[str, bytes], dict[str, Any]]:
    """LabelSample -> ({global field, patches field, "label.json"} bytes, label.json dict)."""
    g_bytes, g_params = encode_maps(sample.global_map, codec, key=f"{sample.key}/global")
    p_bytes, p_params = encode_maps(sample.patches, codec, key=f"{sample.key}/patches")
    info = {**header, "key": sample.key, "global": g_params, "patches": p_params}
    g_field, p_field, json_field = label_fields(codec)
    return {g_field: g_bytes, p_field: p_bytes, json_field: dumps(info)}, info


# ----------------------------------------------------------------------------- writer base


class ShardWriter(ABC):
    """Base of ``WebDatasetShardWriter`` / ``ZarrShardWriter`` / ``NullShardWriter``.

    ``kind="views"`` takes ``ViewSample``; ``kind="teacher"`` takes ``LabelSample`` and needs
    ``teacher``, ``fingerprint`` and ``space``. ``annotate(**fields)`` adds fields (e.g.
    ``timing={"model_s": ...}``) to the done marker; after ``close()`` ``record`` holds it.
    """

    fmt = "webdataset"

    def __init__(self, folder: str | Path, index: int, *, kind: str, teacher: str | None = None,
                 fingerprint: str | None = None, space: str | None = None,
                 codec: str = DEFAULT_CODEC) -> None:
        if kind not in KINDS:
            raise ValueError(f"shard writer kind must be one of {KINDS}, got {kind!r}")
        if kind == "teacher" and (not teacher or not fingerprint or space not in SPACES):
            raise ValueError(f"teacher shard writer needs teacher, fingerprint and space in "
                             f"{SPACES}; got {teacher!r}, {fingerprint!r}, {space!r}")
        get_spec(codec)
        self.folder, self.index, self.kind, self.codec = Path(folder), int(index), kind, codec
        self.header = {"teacher": teacher, "fingerprint": fingerprint, "space": space, "codec": codec}
        self.keys: list[str] = []
        self.qerr = {"global_max": 0.0, "global_mean": 0.0, "patches_max": 0.0, "patches_mean": 0.0}
        self.label_pixels = 0
        self.extra: dict[str, Any] = {}
        self.record: dict[str, Any] | None = None
        self._closed = False
        self._t0 = time.perf_counter()

    # subclasses implement these three
    @abstractmethod
    def _write_view(self, sample: ViewSample) -> None:
        """Implemented by each format's writer."""

    @abstractmethod
    def _write_label(self, sample: LabelSample) -> None:
        """Implemented by each format's writer."""

    @abstractmethod
    def _finish(self) -> Path | None:
        """Finish the temp file and commit it; return the final path (None: nothing kept)."""

    @abstractmethod
    def _discard(self) -> None:
        """Implemented by each format's writer."""

    @property
    def name(self) -> str:
        return shard_name(self.index)

    @property
    def final_path(self) -> Path:
        return shard_path(self.folder, self.index, self.fmt)

    def _prepare_folder(self) -> None:
        """Create the folder and invalidate an old marker: a rewritten shard is not done."""
        self.folder.mkdir(parents=True, exist_ok=True)
        marker = marker_path(self.folder, self.index)
        if marker.exists():
            logger.info("%s: rewriting a finished shard; its old marker is removed first", marker)
            marker.unlink()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def annotate(self, **fields: Any) -> None:
        self.extra.update(fields)

    def write(self, sample: ViewSample | LabelSample) -> None:
        if self._closed:
            raise RuntimeError(f"{self.final_path}: write() after close()")
        if self.keys and sample.key <= self.keys[-1]:
            raise ValueError(f"{self.final_path}: key {sample.key!r} after {self.keys[-1]!r}; "
                             "write samples in increasing key order (plan order)")
        if self.kind == "views":
            if not isinstance(sample, ViewSample):
                raise TypeError(f"views shard writer takes ViewSample, got {type(sample).__name__}")
            check_view_sample(sample)
            self._write_view(sample)
        else:
            if not isinstance(sample, LabelSample):
                raise TypeError(f"teacher shard writer takes LabelSample, got {type(sample).__name__}")
            check_label_sample(sample)
            self._write_label(sample)
        self.keys.append(sample.key)

    def _note_label(self, info: dict[str, Any]) -> None:
        """Fold one sample's quantisation error into the shard's stats."""
        n = len(self.keys) + 1
        for part in ("global", "patches"):
            p = info[part]
            self.qerr[f"{part}_max"] = max(self.qerr[f"{part}_max"], max(p["max_err_rel"]))
            mean = float(np.mean(p["mean_err_rel"]))
            self.qerr[f"{part}_mean"] += (mean - self.qerr[f"{part}_mean"]) / n  # running mean
            self.label_pixels += int(np.prod(p["shape"]))

    def close(self) -> dict[str, Any] | None:
        """Commit the shard and write its done marker (last). Returns the marker record."""
        if self._closed:
            return self.record
        self._closed = True
        try:
            final = self._finish()
        except BaseException:
            self._discard()  # e.g. a shape mismatch found at the end: leave no temp behind
            raise
        if final is None:
            return None
        record = {"schema_version": SCHEMA_VERSION, "shard": self.name, "file": final.name,
                  "kind": self.kind, "format": self.fmt, "count": len(self.keys),
                  "sha256": atomic.sha256_path(final), "bytes": atomic.size_on_disk(final),
                  "first_key": self.keys[0] if self.keys else None,
                  "last_key": self.keys[-1] if self.keys else None,
                  "timing": {"write_s": round(time.perf_counter() - self._t0, 6)}}
        if self.kind == "teacher":
            record.update(self.header, qerr=self.qerr, label_pixels=self.label_pixels)
        for k, v in self.extra.items():
            record[k] = {**record[k], **v} if isinstance(record.get(k), dict) and isinstance(v, dict) else v
        atomic.write_marker(self.folder, self.index, record)
        self.record = record
        logger.debug("%s: %d samples committed", final, len(self.keys))
        return record

    def abort(self) -> None:
        """Drop the temp file; no marker is written."""
        if not self._closed:
            self._closed = True
            self._discard()
            logger.warning("%s: aborted after %d samples; nothing committed", self.final_path,
                           len(self.keys))


class NullShardWriter(ShardWriter):
    """Encodes like a real writer (PNG / label codec) but keeps nothing: for benchmarks."""

    def __init__(self, folder: str | Path = ".", index: int = 0, **kwargs: Any) -> None:
        super().__init__(folder, index, **kwargs)
        self.num_bytes = 0

    def _write_view(self, sample: ViewSample) -> None:
        self.num_bytes += len(encode_png(sample.view)) + len(dumps(sample.meta))

    def _write_label(self, sample: LabelSample) -> None:
        fields, info = encode_label_sample(sample, self.codec, self.header)
        self._note_label(info)
        self.num_bytes += sum(len(v) for v in fields.values())

    def _finish(self) -> None:
        return None

    def _discard(self) -> None:
        return None


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"labels.format: unknown shard format {fmt!r}; use one of {FORMATS}")
    return fmt
