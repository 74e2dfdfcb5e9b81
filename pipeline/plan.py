"""The view plan of a collection: `plan.jsonl`, its hash (the cache key), and shard chunks.

Every image is read once, hashed (sha256 of its encoded bytes) and decoded to learn its
display size and catch bad input; then `views_per_image` views are planned per good image
with `depthdistill.views.plan_view`. The same config on the same collection gives the same
plan, byte for byte; the plan hash names the store folder `<out>/<collection>-<hash[:12]>/`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .decode import DEFAULT_MAX_IMAGE_PIXELS, BadImageError, content_hash, decode_image
from .sources import ImageRef, ImageSource

logger = logging.getLogger(__name__)

VIEW_PARAM_KEYS = ("view_size", "crop_min", "patch_size", "max_grid", "min_overlap")


def dumps_line(obj: dict) -> str:
    """The one JSON encoding used for plan / bad-input lines (sorted keys, compact)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Inspected:
    """The outcome of reading one image at plan time."""

    ref: ImageRef
    sha256: str | None
    image_hw: tuple[int, int] | None
    reason: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    rows: tuple[dict, ...]          # one per view, in key order
    bad_inputs: tuple[dict, ...]    # one per skipped image: id, path, reason, detail
    plan_hash: str                  # sha256 hex of plan bytes + view params
    num_images: int                 # images listed by the source (good + bad)
    view_params: dict

    @property
    def plan_bytes(self) -> bytes:
        return "".join(dumps_line(row) + "\n" for row in self.rows).encode()

    def num_shards(self, shard_size: int) -> int:
        return (len(self.rows) + shard_size - 1) // shard_size

    def shard_rows(self, shard_index: int, shard_size: int) -> list[dict]:
        """Shard i = views [i*shard_size, (i+1)*shard_size) in key order."""
        return list(self.rows[shard_index * shard_size:(shard_index + 1) * shard_size])


def inspect_image(source: ImageSource, ref: ImageRef, max_pixels: int) -> Inspected:
    """Read, hash and decode one image; failures become a reason, never an exception."""
    try:
        data = source.read_bytes(ref)
    except OSError as err:
        return Inspected(ref, None, None, "unreadable", f"{type(err).__name__}: {err}")
    digest = content_hash(data)
    try:
        rgb = decode_image(data, max_pixels=max_pixels)  # [H, W, 3]
    except BadImageError as err:
        return Inspected(ref, digest, None, err.reason, err.detail)
    return Inspected(ref, digest, (int(rgb.shape[0]), int(rgb.shape[1])))


def _bad(ins: Inspected, reason: str, detail: str, **extra) -> dict:
    return {"id": ins.ref.id, "path": ins.ref.locator, "reason": reason, "detail": detail,
            **extra}


def _plan_views(ins: Inspected, views_cfg) -> list[dict]:
    """All views of one good image as plan rows; raises ImageTooSmallError."""
    from depthdistill.shards import view_key
    from depthdistill.views import plan_view

    rows = []
    for view_index in range(views_cfg.views_per_image):
        view = plan_view(
            ins.ref.id, ins.image_hw, view_index, views_cfg.seed,
            view_size=views_cfg.view_size, crop_min=views_cfg.crop_min,
            patch_size=views_cfg.patch_size, max_grid=views_cfg.max_grid,
            min_overlap=views_cfg.min_overlap,
        )
        rows.append({
            "key": view_key(ins.ref.index, view_index), "image_index": ins.ref.index,
            "image_id": ins.ref.id, "locator": ins.ref.locator, "sha256": ins.sha256,
            "view": view.to_dict(),
        })
    return rows


def build_plan(source: ImageSource, views_cfg, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
               workers: int | None = None) -> Plan:
    """Inspect every image of `source` (threads; PIL decodes without the GIL) and plan views.

    Duplicates (same content hash under two ids) are labeled once, under the first id in
    listing order; the others are recorded as `duplicate` bad inputs naming the kept id.
    """
    from depthdistill.views import ImageTooSmallError

    refs = source.list_refs()
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        inspected = list(pool.map(lambda r: inspect_image(source, r, max_pixels), refs))
    rows: list[dict] = []
    bad: list[dict] = []
    first_by_hash: dict[str, str] = {}
    for ins in inspected:
        if ins.reason is not None:
            bad.append(_bad(ins, ins.reason, ins.detail))
            continue
        if ins.sha256 in first_by_hash:
            kept = first_by_hash[ins.sha256]
            bad.append(_bad(ins, "duplicate", f"same content as {kept}", duplicate_of=kept))
            continue
        try:
            rows.extend(_plan_views(ins, views_cfg))
        except ImageTooSmallError as err:
            bad.append(_bad(ins, "too-small", str(err)))
            continue
        first_by_hash[ins.sha256] = ins.ref.id
    params = {k: getattr(views_cfg, k) for k in VIEW_PARAM_KEYS}
    params.update(views_per_image=views_cfg.views_per_image, seed=views_cfg.seed)
    plan_bytes = "".join(dumps_line(r) + "\n" for r in rows).encode()
    digest = hashlib.sha256(plan_bytes + b"\n" + dumps_line(params).encode()).hexdigest()
    logger.info("plan: %d images, %d views, %d bad inputs, hash %s",
                len(refs), len(rows), len(bad), digest[:12])
    return Plan(tuple(rows), tuple(bad), digest, len(refs), params)


def store_dir(out: str | Path, collection: str, plan: Plan) -> Path:
    """`<out>/<collection>-<plan hash[:12]>/`."""
    return Path(out) / f"{collection}-{plan.plan_hash[:12]}"


def write_plan_files(plan: Plan, folder: Path) -> None:
    """plan.jsonl (refusing to overwrite a different plan) and bad_inputs.jsonl."""
    from depthdistill.shards import BAD_INPUTS_FILE, PLAN_FILE
    from depthdistill.shards.atomic import atomic_write_bytes

    folder.mkdir(parents=True, exist_ok=True)
    plan_path = folder / PLAN_FILE
    data = plan.plan_bytes
    if plan_path.exists() and plan_path.read_bytes() != data:
        raise ValueError(f"{plan_path}: this store holds a different plan (hash prefix "
                         "collision or edited file); delete the folder or use another --out")
    if not plan_path.exists():
        atomic_write_bytes(plan_path, data)
    bad = "".join(dumps_line(b) + "\n" for b in plan.bad_inputs).encode()
    atomic_write_bytes(folder / BAD_INPUTS_FILE, bad)
