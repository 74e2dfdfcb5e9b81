"""The pipeline's side of the label store: which shards are done, and writing one shard.

All file formats, names, atomic commits and markers come from `depthdistill.shards`; this
module only turns plan rows / teacher outputs into its samples and checks done markers
against the plan (a marker for other keys is not "done" for this plan).
"""

from __future__ import annotations

import logging
from pathlib import Path

from .decode import DEFAULT_MAX_IMAGE_PIXELS

logger = logging.getLogger(__name__)


def teacher_folder(name: str, fingerprint: str) -> str:
    from depthdistill.shards.schema import teacher_folder_name

    return teacher_folder_name(name, fingerprint)


def shard_is_done(folder: Path, index: int, rows: list[dict], fingerprint: str | None = None) -> bool:
    """True when shard `index` has a done marker for exactly these plan rows (and teacher)."""
    from depthdistill.shards.atomic import read_marker

    marker = read_marker(folder, index)
    if marker is None:
        return False
    same = (marker.get("count") == len(rows) and marker.get("first_key") == rows[0]["key"]
            and marker.get("last_key") == rows[-1]["key"])
    if fingerprint is not None and marker.get("fingerprint") != fingerprint:
        same = False
    if not same:
        logger.warning("%s/shard %d: done marker does not match this plan; relabeling it",
                       folder, index)
    return same


def clean_partial(folder: Path) -> list[Path]:
    """Remove temp files and shard files without a done marker (left by a killed run)."""
    from depthdistill.shards.atomic import clean_partial as _clean

    return _clean(folder)


def view_meta(row: dict) -> dict:
    """meta.json of a view: ViewPlan.to_dict() + the image's content hash and plan fields."""
    return {**row["view"], "key": row["key"], "image_index": row["image_index"],
            "locator": row["locator"], "sha256": row["sha256"]}


def write_views_shard(store: Path, index: int, fmt: str, rows: list[dict], source,
                      max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> dict:
    """Decode + cut every view of a shard and write `views/shard-xxxxxx` (Ray task body)."""
    from depthdistill.shards import ViewSample, views_writer

    from .label import iter_cut_views

    with views_writer(store, index, fmt) as writer:
        for item in iter_cut_views(source, rows, max_pixels):
            writer.write(ViewSample(key=item.row["key"], view=item.view, meta=view_meta(item.row)))
    return writer.record


def open_teacher_shard(store: Path, index: int, fmt: str, codec: str, teacher):
    """The writer (a context manager) of a teacher's shard `<store>/<teacher>@<fingerprint>/`.
    NaN/inf labels raise NonFiniteLabelError naming the key, and no marker is written.

    The writer is open for the whole labeling of the shard, so an actor killed meanwhile leaves
    its temp file: the retry (the only writer of this shard now) removes it first."""
    from depthdistill.shards import teacher_writer
    from depthdistill.shards.atomic import remove_shard_temps

    remove_shard_temps(Path(store) / teacher_folder(teacher.name, teacher.fingerprint), index)
    return teacher_writer(store, index, fmt, teacher=teacher.name, fingerprint=teacher.fingerprint,
                          space=teacher.space, codec=codec)


def annotate_teacher_shard(writer, info: dict) -> None:
    """Put the labeling run's facts (`LabelWorker.label_shard` info) into the done marker."""
    writer.annotate(node_id=info["node_id"], pid=info["pid"], teacher_calls=info["teacher_calls"],
                    teacher_images=info["teacher_images"],
                    timing={"model_s": info["busy_s"], "label_s": info["wall_s"],
                            "encode_s": info["encode_s"]})
