"""What the label store already holds: manifest checks, and which shards are done and intact.

A shard counts as done for this run only when its marker was written for exactly this plan's
rows (count, first and last key) and, for a teacher, these weights (fingerprint), and when its
bytes are still the marked ones: a rerun hashes every done shard (`shards.checksum_error`:
size, then sha256) and relabels a corrupt one (bit rot, a truncated copy) instead of trusting
its marker. The cost is measured and shown in the run's summary (`Verified`).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from depthdistill import shards

from .plan import Plan

logger = logging.getLogger(__name__)


@dataclass
class Verified:
    """Done shards checked against their markers in this run."""

    shards: int = 0
    bytes: int = 0
    seconds: float = 0.0
    corrupt: list[str] = field(default_factory=list)  # "<folder>/shard-N: why"


def check_manifest(store: Path, plan: Plan, fmt: str, shard_size: int,
                   fingerprints: dict[str, str]) -> dict:
    """Refuse to mix a store with a different plan, format, shard size or teacher weights."""
    manifest = shards.read_manifest(store, missing_ok=True)
    fix = "use another --out, or delete the store folder to relabel"
    for key, ours in (("plan_hash", plan.plan_hash), ("format", fmt), ("shard_size", shard_size)):
        if key in manifest and manifest[key] != ours:
            raise ValueError(f"{store / shards.MANIFEST_FILE}: {key} is {manifest[key]!r} but this run has "
                             f"{ours!r}; {fix}")
    recorded = {n: t["fingerprint"] for n, t in manifest.get("teachers", {}).items()}
    on_disk = shards.teacher_folders(store)
    for name, fp in fingerprints.items():
        for where, other in (("manifest", recorded.get(name)), ("folder", on_disk.get(name))):
            if other is not None and other != fp:
                raise ValueError(f"{store}: teacher {name!r} was labeled with fingerprint {other} "
                                 f"({where}) but the configured weights give {fp}; the store "
                                 f"never mixes two versions of one teacher: {fix}")
    return manifest


def write_manifest(store: Path, manifest: dict, plan: Plan, source, fmt: str, codec: str,
                   teachers: dict[str, dict]) -> None:
    """manifest.json through depthdistill.shards (teachers merged with earlier runs')."""
    merged = {**manifest.get("teachers", {}), **teachers}
    out = shards.make_manifest(
        fmt=fmt, num_shards=plan.num_shards, shard_size=plan.shard_size, num_views=plan.num_views, codec=codec,
        teachers={n: {"space": t["space"], "fingerprint": t["fingerprint"]} for n, t in merged.items()},
        collection=source.name, source=source.spec, plan_hash=plan.plan_hash,
        view_params=plan.view_params, num_images=plan.num_images, bad_inputs=plan.num_bad)
    for name, extra in merged.items():  # keep model / kind / precision next to each teacher
        out["teachers"][name] = {**extra, **out["teachers"][name]}
    shards.write_manifest(store, out)


def done_shards(plan: Plan, folder: Path, fmt: str, verified: Verified, fingerprint: str | None = None,
                workers: int = 8) -> set[int]:
    """The shards of `folder` that are done for this plan and intact; a corrupt one loses its
    marker (so it is relabeled and `validate` no longer calls it finished) and is reported."""
    marked = [i for i, rows in enumerate(plan.shards)
              if shards.marker_matches(folder, i, count=rows.count, first_key=rows.first_key,
                                       last_key=rows.last_key, fingerprint=fingerprint)]
    start = time.perf_counter()

    def check(index: int) -> tuple[int, str | None, int]:
        path = shards.shard_path(folder, index, fmt)
        if not path.exists():
            return index, "the shard file is missing", 0
        return index, shards.checksum_error(path, index), shards.size_on_disk(path)

    done = set()
    with ThreadPoolExecutor(max_workers=workers) as pool:  # hashlib releases the GIL
        for index, why, size in pool.map(check, marked):
            verified.shards += 1
            verified.bytes += size
            if why is None:
                done.add(index)
                continue
            verified.corrupt.append(f"{folder.name}/{shards.shard_name(index)}: {why}")
            logger.warning("%s/%s: %s; it is relabeled", folder, shards.shard_name(index), why)
            shards.marker_path(folder, index).unlink(missing_ok=True)
    verified.seconds += time.perf_counter() - start
    return done
