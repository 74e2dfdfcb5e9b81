"""``validate_store``: check every shard of a label store against its marker and the views.

Checks per shard and folder (views + each teacher of the manifest): marker present, shard
present, sha256 and count and first/last key as the marker says; after decoding: keys in
strictly increasing order and identical across views and teachers, no NaN/inf, shapes as the
view meta says (view [V, V, 3], global [V, V], patches [grid**2, P, P] with P =
patch_input_size). A fault is data (file, check, detail), never an exception.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import atomic
from .layout import VIEWS_FOLDER, shard_path, teacher_folder_name
from .schema import LabelSample, ViewSample, read_manifest
from .store import open_shard

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fault:
    file: str
    check: str  # missing-marker | missing-shard | checksum | count | marker-keys | key-order | non-finite | shape | decode
    detail: str


@dataclass
class ValidationReport:
    path: Path
    num_shards: int = 0
    num_samples: int = 0
    num_files: int = 0
    faults: list[Fault] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # temp files (not a fault; clean_partial)

    @property
    def ok(self) -> bool:
        return not self.faults

    def add(self, file: str | Path, check: str, detail: str) -> None:
        self.faults.append(Fault(str(file), check, detail))


def _check_marker(report: ValidationReport, path: Path, index: int) -> dict | None:
    marker = atomic.read_marker(path.parent, index)
    if marker is None:
        report.add(path, "missing-marker", "no done marker: the shard is not finished")
    if not path.exists():
        report.add(path, "missing-shard", "shard file/folder is missing")
        return None
    why = atomic.checksum_error(path, index, marker) if marker is not None else None
    if why is not None:
        report.add(path, "checksum", why)
    return marker


def _decode_keys(report: ValidationReport, path: Path) -> list:
    try:
        return list(open_shard(path))
    except Exception as err:  # corrupt bytes surface as many error types; report them all
        report.add(path, "decode", f"{type(err).__name__}: {err}")
        return []


def _check_samples(report: ValidationReport, path: Path, marker: dict | None, samples: list) -> None:
    keys = [s.key for s in samples]
    if any(b <= a for a, b in zip(keys, keys[1:])):
        report.add(path, "key-order", "keys are not in strictly increasing order")
    if marker is not None and samples:
        if marker.get("count") != len(samples):
            report.add(path, "count", f"marker says {marker.get('count')} samples, shard has {len(samples)}")
        if (marker.get("first_key"), marker.get("last_key")) != (keys[0], keys[-1]):
            report.add(path, "marker-keys", f"marker keys {marker.get('first_key')}..{marker.get('last_key')} "
                       f"!= shard keys {keys[0]}..{keys[-1]}")


def _check_label(report: ValidationReport, path: Path, lab: LabelSample, meta: dict) -> None:
    if not (np.isfinite(lab.global_map).all() and np.isfinite(lab.patches).all()):
        report.add(path, "non-finite", f"sample {lab.key!r} decodes to NaN/inf")
    v, grid, p = meta.get("view_size"), meta.get("grid"), meta.get("patch_input_size")
    if v is not None and lab.global_map.shape != (v, v):
        report.add(path, "shape", f"sample {lab.key!r}: global {lab.global_map.shape} != view ({v}, {v})")
    if grid is not None and p is not None and lab.patches.shape != (grid * grid, p, p):
        report.add(path, "shape", f"sample {lab.key!r}: patches {lab.patches.shape} != "
                   f"({grid * grid}, {p}, {p}) from meta")


def _check_shard(report: ValidationReport, index: int, fmt: str, views: Path,
                 teachers: dict[str, Path]) -> None:
    vpath = shard_path(views, index, fmt)
    vmarker = _check_marker(report, vpath, index)
    view_samples = _decode_keys(report, vpath) if vpath.exists() else []
    _check_samples(report, vpath, vmarker, view_samples)
    for s in view_samples:
        assert isinstance(s, ViewSample)
        v = s.meta.get("view_size")
        if v is not None and s.view.shape != (v, v, 3):
            report.add(vpath, "shape", f"sample {s.key!r}: view {s.view.shape} != meta view_size {v}")
    report.num_samples += len(view_samples)
    report.num_files += 1
    metas = {s.key: s.meta for s in view_samples}
    view_keys = [s.key for s in view_samples]
    for folder in teachers.values():
        tpath = shard_path(folder, index, fmt)
        tmarker = _check_marker(report, tpath, index)
        labels = _decode_keys(report, tpath) if tpath.exists() else []
        report.num_files += 1
        _check_samples(report, tpath, tmarker, labels)
        keys = [s.key for s in labels]
        if tpath.exists() and vpath.exists() and keys != view_keys:
            first = next((i for i, (a, b) in enumerate(zip(keys, view_keys)) if a != b),
                         min(len(keys), len(view_keys)))
            report.add(tpath, "key-order", f"keys differ from {vpath} at position {first} "
                       f"({keys[first] if first < len(keys) else None!r} vs "
                       f"{view_keys[first] if first < len(view_keys) else None!r})")
        for lab in labels:
            _check_label(report, tpath, lab, metas.get(lab.key, {}))


def validate_store(path: str | Path) -> ValidationReport:
    """Check every shard named by the manifest; see the module docstring for the checks."""
    path = Path(path)
    manifest = read_manifest(path)
    fmt, num = manifest["format"], int(manifest["num_shards"])
    report = ValidationReport(path, num_shards=num)
    views = path / VIEWS_FOLDER
    teachers = {n: path / teacher_folder_name(n, t["fingerprint"])
                for n, t in sorted(manifest["teachers"].items())}
    last_key = None
    for index in range(num):
        _check_shard(report, index, fmt, views, teachers)
        marker = atomic.read_marker(views, index)
        first = marker.get("first_key") if marker else None
        if first is not None and last_key is not None and first <= last_key:
            report.add(shard_path(views, index, fmt), "key-order",
                       f"first key {first!r} is not after the previous shard's last key {last_key!r}")
        last_key = marker.get("last_key") if marker else last_key
    for folder in (views, *teachers.values()):
        if folder.is_dir():
            report.leftovers += [str(p) for p in sorted(folder.iterdir()) if atomic.is_temp(p)]
    logger.info("validated %s: %d shards, %d samples, %d faults", path, num, report.num_samples,
                len(report.faults))
    return report
