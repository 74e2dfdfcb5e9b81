"""The sample types of the label store and its manifest (names and places: ``layout``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write_bytes
from .layout import MANIFEST_FILE, SPACES, shard_ext, teacher_folder_name

SCHEMA_VERSION = 1


# ----------------------------------------------------------------------------- samples


@dataclass
class ViewSample:
    """One view as written to / read from ``views/``: RGB uint8 [V, V, 3] + plan meta."""

    key: str
    view: np.ndarray  # uint8 [V, V, 3]
    meta: dict[str, Any]


@dataclass
class LabelSample:
    """One teacher's labels of one view, in the teacher's own space.

    ``params`` (codec params + quantisation error per map) is filled by decoding; writers
    ignore it.
    """

    key: str
    global_map: np.ndarray  # float32 [V, V]
    patches: np.ndarray  # float32 [k*k, P, P]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Label:
    """A decoded teacher label inside a ``StoreSample``."""

    global_map: np.ndarray  # float32 [V, V]
    patches: np.ndarray  # float32 [k*k, P, P]
    space: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoreSample:
    """A view zipped with every requested teacher's labels (same key)."""

    key: str
    view: np.ndarray  # uint8 [V, V, 3]
    meta: dict[str, Any]
    labels: dict[str, Label]


def check_view_sample(sample: ViewSample) -> None:
    v = np.asarray(sample.view)
    if v.dtype != np.uint8 or v.ndim != 3 or v.shape[2] != 3 or v.shape[0] != v.shape[1]:
        raise ValueError(f"view {sample.key!r}: expected uint8 [V, V, 3], got {v.dtype} {v.shape}")
    size = sample.meta.get("view_size")
    if size is not None and int(size) != v.shape[0]:
        raise ValueError(f"view {sample.key!r}: image is {v.shape[0]} px but meta view_size is {size}")


def check_label_sample(sample: LabelSample) -> None:
    g, p = np.asarray(sample.global_map), np.asarray(sample.patches)
    if g.ndim != 2 or p.ndim != 3 or p.shape[0] < 1 or p.shape[1] != p.shape[2]:
        raise ValueError(f"label {sample.key!r}: expected global [V, V] and patches [k*k, P, P], "
                         f"got {g.shape} and {p.shape}")


# ----------------------------------------------------------------------------- manifest


def dumps(obj: Any) -> bytes:
    """The one JSON encoding of markers / meta / manifest (sorted keys, compact, UTF-8)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def make_manifest(*, fmt: str, num_shards: int, shard_size: int, num_views: int,
                  teachers: dict[str, dict[str, str]], codec: str, **extra: Any) -> dict[str, Any]:
    """The ``manifest.json`` dict. ``teachers``: name -> {"space", "fingerprint"}.

    ``extra`` (collection, plan_hash, view_params, totals, ...) is stored as given.
    """
    shard_ext(fmt)
    out = {"schema_version": SCHEMA_VERSION, "format": fmt, "num_shards": int(num_shards),
           "shard_size": int(shard_size), "num_views": int(num_views), "codec": codec,
           "teachers": {}}
    for name, info in teachers.items():
        if info.get("space") not in SPACES:
            raise ValueError(f"teacher {name!r}: space {info.get('space')!r} must be one of {SPACES}")
        folder = teacher_folder_name(name, info["fingerprint"])
        out["teachers"][name] = {"space": info["space"], "fingerprint": info["fingerprint"],
                                 "folder": folder}
    out.update(extra)
    return out


def write_manifest(store: str | Path, manifest: dict[str, Any]) -> Path:
    """Atomically (re)write ``<store>/manifest.json``."""
    path = Path(store) / MANIFEST_FILE
    atomic_write_bytes(path, json.dumps(manifest, sort_keys=True, indent=1).encode())
    return path


def read_manifest(store: str | Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """The store's manifest; ValueError naming the fix when absent or broken ({} when absent
    and ``missing_ok``: a store the pipeline is about to create)."""
    path = Path(store) / MANIFEST_FILE
    if missing_ok and not path.exists():
        return {}
    if not path.is_file():
        raise ValueError(f"{path}: no manifest; this is not a finished label store (run "
                         "`depthdistill labels` to write one, or pass the store folder itself)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); re-run `depthdistill labels`") from err
    missing = [k for k in ("format", "num_shards", "teachers") if k not in manifest]
    if missing:
        raise ValueError(f"{path}: manifest lacks {missing}; re-run `depthdistill labels`")
    shard_ext(manifest["format"])
    return manifest
