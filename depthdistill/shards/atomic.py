"""Atomic commit of shards: temp name in the same folder, fsync, rename, then the done marker.

A shard is finished only when its marker ``shard-000000.json`` exists; the marker is written
after the shard file is renamed into place, itself atomically. Temp names start with ``.``
and contain ``.tmp-`` so that nothing that lists ``shard-*`` sees them; ``clean_partial``
removes them (and shard files left without a marker) before a rerun.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from .layout import marker_path, parse_shard_index, shard_name

logger = logging.getLogger(__name__)
_CHUNK = 1 << 20


def temp_path(final: str | Path) -> Path:
    """A unique hidden sibling of ``final`` (same folder, so the rename is atomic)."""
    final = Path(final)
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def is_temp(path: str | Path) -> bool:
    name = Path(path).name
    return name.startswith(".") and ".tmp-" in name


def fsync_dir(folder: str | Path) -> None:
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def fsync_tree(path: str | Path) -> None:
    """fsync a file, or every file and folder of a directory tree (a zarr store)."""
    path = Path(path)
    if path.is_file():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
        return
    for root, _dirs, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(root)


def remove_path(path: str | Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def commit(tmp: str | Path, final: str | Path) -> None:
    """fsync ``tmp`` (file or tree) and rename it to ``final`` (replacing an unmarked one)."""
    tmp, final = Path(tmp), Path(final)
    fsync_tree(tmp)
    if final.is_dir():
        remove_path(final)  # os.replace cannot replace a non-empty directory
    os.replace(tmp, final)
    fsync_dir(final.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file + fsync + rename."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def sha256_path(path: str | Path) -> str:
    """sha256 of a file; for a directory, over ``relpath \\0 bytes \\0`` of its files, sorted."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f != path:
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                h.update(chunk)
        if f != path:
            h.update(b"\0")
    return h.hexdigest()


def size_on_disk(path: str | Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_marker(folder: str | Path, index: int, record: dict[str, Any]) -> Path:
    """Atomically write the done marker of shard ``index`` (the LAST step of a shard)."""
    path = marker_path(folder, index)
    atomic_write_bytes(path, json.dumps(record, sort_keys=True, indent=1).encode())
    return path


def read_marker(folder: str | Path, index: int) -> dict[str, Any] | None:
    """The marker dict, or None when the shard is not done (missing or unreadable marker)."""
    path = marker_path(folder, index)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as err:
        logger.warning("%s: unreadable done marker (%s); treating the shard as not done", path, err)
        return None


def is_done(folder: str | Path, index: int) -> bool:
    return read_marker(folder, index) is not None


def marker_matches(folder: str | Path, index: int, *, count: int, first_key: str, last_key: str,
                   fingerprint: str | None = None) -> bool:
    """Is shard ``index`` done for exactly this plan chunk (count and first/last key) and, when
    given, these teacher weights? A marker written for other keys is not done for this plan."""
    marker = read_marker(folder, index)
    if marker is None:
        return False
    same = (marker.get("count"), marker.get("first_key"), marker.get("last_key")) == (count, first_key, last_key)
    if fingerprint is not None and marker.get("fingerprint") != fingerprint:
        same = False
    if not same:
        logger.warning("%s/shard %d: done marker does not match this plan; relabeling it", folder, index)
    return same


class ShardChecksumError(ValueError):
    """A shard's bytes do not match the sha256 in its done marker."""


def checksum_error(path: str | Path, index: int, marker: dict[str, Any] | None = None) -> str | None:
    """Why shard file ``path`` fails its marker's sha256 (None when it matches, or when there is
    no marker / no recorded sha256 to check against)."""
    path = Path(path)
    marker = read_marker(path.parent, index) if marker is None else marker
    expected = (marker or {}).get("sha256")
    if not expected or not path.exists():
        return None
    if sha256_path(path) != expected:
        return f"sha256 differs from its done marker ({expected[:12]}...)"
    return None


def verify_checksum(path: str | Path, index: int) -> None:
    """Raise ShardChecksumError naming the file and the fix when its bytes are not the marked ones."""
    why = checksum_error(path, index)
    if why is not None:
        raise ShardChecksumError(f"{path}: {why}; the file is corrupt (re-run `depthdistill labels`: it "
                                 "relabels shards that fail their checksum)")


def done_shards(folder: str | Path) -> list[int]:
    """Indices of shards in ``folder`` that have a readable done marker, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in folder.glob("shard-*.json"):
        index = parse_shard_index(p.with_suffix(".tar"))
        if index is not None and read_marker(folder, index) is not None:
            out.append(index)
    return sorted(out)


def remove_shard_temps(folder: str | Path, index: int) -> list[Path]:
    """Remove the temp files/folders of shard ``index`` only (left by a writer that died).

    For a retry of one shard while other shards of the folder are being written: only the
    process retrying shard ``index`` may call it, so no live writer owns those temps."""
    folder = Path(folder)
    prefix = f".{shard_name(index)}."
    removed = [p for p in sorted(folder.glob(prefix + "*")) if is_temp(p)] if folder.is_dir() else []
    for p in removed:
        remove_path(p)
    if removed:
        logger.info("%s: removed %d temp file(s) of a dead writer: %s", folder, len(removed),
                    ", ".join(p.name for p in removed))
    return removed


def clean_partial(folder: str | Path) -> list[Path]:
    """Remove temp files/folders and shard files without a done marker; return what went."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in sorted(folder.iterdir()):
        index = parse_shard_index(p)
        orphan = index is not None and not marker_path(folder, index).exists()
        if is_temp(p) or orphan:
            remove_path(p)
            removed.append(p)
    if removed:
        logger.info("%s: removed %d partial file(s): %s", folder, len(removed),
                    ", ".join(p.name for p in removed))
    return removed
