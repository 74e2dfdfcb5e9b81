"""THE label contract: layout, label codec, writers and readers (WebDataset and Zarr).

Nothing else in the project reads or writes shards; the labeling pipeline and the trainer
use this API (docs/CONTRACTS.md "Label store"). Layout of a store (``<out>/<collection>-<plan
hash[:12]>/``)::

    plan.jsonl, bad_inputs.jsonl        (written by the pipeline)
    manifest.json                       make_manifest(...) + write_manifest(store, m)
    views/shard-000000.tar|.zarr        + shard-000000.json done marker (written last)
    <teacher>@<fingerprint>/shard-000000.tar|.zarr + shard-000000.json

Writing (pipeline)::

    from depthdistill.shards import views_writer, teacher_writer, ViewSample, LabelSample
    with views_writer(store, i, fmt) as w:                 # fmt: "webdataset" | "zarr"
        w.write(ViewSample(key, view_uint8_VV3, plan.to_dict() | {"sha256": ...}))
    with teacher_writer(store, i, fmt, teacher=t.name, fingerprint=t.fingerprint,
                        space=t.space, codec=cfg.labels.codec) as w:
        w.write(LabelSample(key, global_f32_VV, patches_f32_KPP))   # keys in increasing order
        w.annotate(timing={"model_s": 1.2})                          # extra marker fields
    w.record  # the done-marker dict (count, sha256, keys, timing, qerr, ...)

An exception inside ``with`` leaves no marker (temp removed); a killed process leaves only
hidden temp files that ``clean_partial(folder)`` removes. ``is_done(folder, i)`` /
``done_shards(folder)`` tell what to skip on a rerun. NaN/inf labels raise
``NonFiniteLabelError`` (a ValueError naming the key). ``NullShardWriter`` encodes and drops.

Reading (trainer)::

    store = open_store(path)          # LabelStore: manifest, format, num_shards, teachers
    store.teachers["dav2"]            # TeacherInfo(name, space, fingerprint, folder, done_shards)
    store.views_shard_urls(); store.teacher_shard_urls("dav2"); store.complete_shards()
    for s in store.iter_shard(i, teachers=["dav2"]):   # StoreSample(key, view, meta, labels)
        s.labels["dav2"].global_map   # float32 [V, V]; .patches float32 [k*k, P, P]; .space

For a webdataset pipeline over raw tar samples, map ``decode_views_sample`` /
``decode_label_sample`` (pure functions of the sample dict of bytes) in DataLoader workers.
``validate_store(path)`` and ``inspect_store(path)`` / ``render_preview`` back the
``depthdistill shards validate|inspect`` commands.
"""

from .atomic import (ShardChecksumError, checksum_error, clean_partial, done_shards, is_done, marker_matches,
                     read_marker, remove_shard_temps, sha256_path, size_on_disk, verify_checksum)
from .base import (NullShardWriter, ShardWriter, decode_label_sample, decode_png,
                   decode_views_sample, encode_png)
from .codec import (CODECS, DEFAULT_CODEC, NonFiniteLabelError, decode_maps, encode_maps,
                    get_spec)
from .layout import (BAD_INPUTS_FILE, FORMATS, MANIFEST_FILE, PLAN_FILE, SPACES, VIEWS_FOLDER,
                     marker_path, parse_teacher_folder, shard_name, shard_path, teacher_folder_name,
                     teacher_folders, view_key)
from .schema import Label, LabelSample, StoreSample, ViewSample, make_manifest, read_manifest, write_manifest
from .store import LabelStore, TeacherInfo, open_shard, open_store, teacher_writer, views_writer
from .webdataset_io import WebDatasetShardReader, WebDatasetShardWriter
from .zarr_io import ZarrShardReader, ZarrShardWriter

__all__ = [
    "ShardChecksumError", "checksum_error", "size_on_disk", "marker_matches", "remove_shard_temps", "verify_checksum",
    "parse_teacher_folder", "teacher_folders",
    "BAD_INPUTS_FILE", "CODECS", "DEFAULT_CODEC", "FORMATS", "MANIFEST_FILE", "PLAN_FILE",
    "SPACES", "VIEWS_FOLDER", "Label", "LabelSample", "LabelStore", "NonFiniteLabelError",
    "NullShardWriter", "ShardWriter", "StoreSample", "TeacherInfo", "ValidationReport",
    "ViewSample", "WebDatasetShardReader", "WebDatasetShardWriter", "ZarrShardReader",
    "ZarrShardWriter", "clean_partial", "decode_label_sample", "decode_maps", "decode_png",
    "decode_views_sample", "done_shards", "encode_maps", "encode_png", "get_spec",
    "inspect_store", "is_done", "make_manifest", "marker_path", "open_shard", "open_store",
    "read_manifest", "read_marker", "render_preview", "sha256_path", "shard_name", "shard_path",
    "teacher_folder_name", "teacher_writer", "validate_store", "view_key", "views_writer",
    "write_manifest",
]


def __getattr__(name: str):
    # validate / inspect pull in more (rich tables, PIL drawing); load them on first use
    if name in ("validate_store", "ValidationReport"):
        from . import validate
        return getattr(validate, name)
    if name in ("inspect_store", "render_preview"):
        from . import inspect as _inspect
        return getattr(_inspect, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
