"""Names, keys and layout of the label store, the sample types, and the store manifest.

    <store>/plan.jsonl, bad_inputs.jsonl, manifest.json
    <store>/views/shard-000000.tar|.zarr               + shard-000000.json (done marker)
    <store>/<teacher>@<fingerprint>/shard-000000.tar|.zarr + shard-000000.json

``shard_name`` is the one function that names shard files; everything else derives from it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
FORMATS = ("webdataset", "zarr")
SPACES = ("disparity", "depth")
VIEWS_FOLDER = "views"
PLAN_FILE = "plan.jsonl"
BAD_INPUTS_FILE = "bad_inputs.jsonl"
MANIFEST_FILE = "manifest.json"
# tar member suffixes (webdataset fields) of the two sample kinds
VIEW_FIELDS = ("view.png", "meta.json")
LABEL_FIELDS = ("global.q16", "patches.q16", "label.json")
_SHARD_RE = re.compile(r"^shard-(\d{6,})\.(tar|zarr)$")
_TEACHER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def shard_name(index: int) -> str:
    """``shard_name(3) -> "shard-000003"`` (the stem of every shard file and marker)."""
    if int(index) < 0:
        raise ValueError(f"shard index must be >= 0, got {index}")
    return f"shard-{int(index):06d}"


def shard_ext(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"labels.format: unknown shard format {fmt!r}; use one of {FORMATS}")
    return ".tar" if fmt == "webdataset" else ".zarr"


def shard_path(folder: str | Path, index: int, fmt: str) -> Path:
    """``<folder>/shard-000000.tar`` (webdataset) or ``.zarr`` (zarr)."""
    return Path(folder) / (shard_name(index) + shard_ext(fmt))


def marker_path(folder: str | Path, index: int) -> Path:
    """The done marker ``<folder>/shard-000000.json``, written last."""
    return Path(folder) / (shard_name(index) + ".json")


def parse_shard_index(path: str | Path) -> int | None:
    m = _SHARD_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def view_key(image_index: int, view_index: int) -> str:
    """The key of a view: ``f"{image_index:08d}_{view_index:02d}"``; keys sort like views."""
    return f"{int(image_index):08d}_{int(view_index):02d}"


def teacher_folder_name(teacher: str, fingerprint: str) -> str:
    """``<teacher>@<fingerprint>``: a new fingerprint gets a new folder, never overwrites."""
    if not _TEACHER_NAME_RE.match(teacher or ""):
        raise ValueError(f"teachers[].name: {teacher!r} is not a usable folder name; use letters, "
                         "digits, '_', '.', '-'")
    if not re.fullmatch(r"[0-9a-zA-Z]+", fingerprint or ""):
        raise ValueError(f"teacher {teacher!r}: fingerprint {fingerprint!r} must be hex/alphanumeric")
    return f"{teacher}@{fingerprint}"


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
    from .atomic import atomic_write_bytes

    path = Path(store) / MANIFEST_FILE
    atomic_write_bytes(path, json.dumps(manifest, sort_keys=True, indent=1).encode())
    return path


def read_manifest(store: str | Path) -> dict[str, Any]:
    path = Path(store) / MANIFEST_FILE
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
