"""Names and places of the label store: every file and folder name, one function each.

    <store>/plan.jsonl, bad_inputs.jsonl, manifest.json      PLAN_FILE, BAD_INPUTS_FILE, MANIFEST_FILE
    <store>/views/shard-000000.tar|.zarr + .json marker      VIEWS_FOLDER, shard_path, marker_path
    <store>/<teacher>@<fingerprint>/shard-000000...          teacher_folder_name / parse_teacher_folder

``shard_name`` is the one function that names shard files; everything else derives from it.
Nothing outside ``depthdistill.shards`` spells these names.
"""

from __future__ import annotations

import re
from pathlib import Path

from depthdistill.config import SPACES  # noqa: E402,F401 - the one list, in config.py

FORMATS = ("webdataset", "zarr")
VIEWS_FOLDER = "views"
PLAN_FILE = "plan.jsonl"
BAD_INPUTS_FILE = "bad_inputs.jsonl"
MANIFEST_FILE = "manifest.json"
# tar member suffixes (webdataset fields) of the two sample kinds
VIEW_FIELDS = ("view.png", "meta.json")
LABEL_FIELDS = ("global.q16", "patches.q16", "label.json")  # custom codecs (q12, q16, f16, f32)
PNG_LABEL_FIELDS = ("global.png", "patches.png", "label.json")  # the plain codec (png16)


def label_fields(codec: str) -> tuple[str, str, str]:
    """The tar members of a label sample: PNGs for the plain codec, codec bytes otherwise."""
    return PNG_LABEL_FIELDS if codec == "png16" else LABEL_FIELDS
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




def parse_teacher_folder(name: str) -> tuple[str, str] | None:
    """``"dav2@0123abcd"`` -> ``("dav2", "0123abcd")``; None for any other name."""
    teacher, at, fingerprint = str(name).partition("@")
    if not at or not _TEACHER_NAME_RE.match(teacher) or not re.fullmatch(r"[0-9a-zA-Z]+", fingerprint):
        return None
    return teacher, fingerprint


def teacher_folders(store: str | Path) -> dict[str, str]:
    """The teacher folders present in a store on disk: teacher name -> fingerprint."""
    store = Path(store)
    found = (parse_teacher_folder(p.name) for p in store.iterdir() if p.is_dir()) if store.is_dir() else ()
    return dict(f for f in found if f is not None)
