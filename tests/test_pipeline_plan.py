"""plan.jsonl: determinism, duplicates, every bad-input kind, shards, store folder naming,
and the same plan whatever the chunking (streamed listing, chunks planned in parallel)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from depthdistill.config import ViewsConfig
from depthdistill.pipeline.plan import build_plan, move_plan_into, store_dir
from depthdistill.pipeline.sources import open_source

VIEWS = ViewsConfig(view_size=28, crop_min=32, patch_size=28, max_grid=2, views_per_image=2)


def _png(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def _image(seed: int, h: int = 40, w: int = 60) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def make_collection(root) -> None:
    """Good images of several kinds plus one of every bad kind."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "a_good.png").write_bytes(_png(_image(0)))
    (root / "b_gray.png").write_bytes(_png(_image(1)[:, :, 0]))
    (root / "c_copy_of_a.png").write_bytes((root / "a_good.png").read_bytes())
    (root / "d_zero.jpg").write_bytes(b"")
    (root / "e_text.jpg").write_bytes(b"hello, I am not a JPEG")
    jpg = io.BytesIO()
    Image.fromarray(_image(2, 64, 64)).save(jpg, format="JPEG")
    (root / "f_truncated.jpg").write_bytes(jpg.getvalue()[:300])
    (root / "g_tiny.png").write_bytes(_png(_image(3, 20, 50)))      # short side < view_size
    (root / "h_small.png").write_bytes(_png(_image(4, 30, 50)))     # view <= short < crop_min
    sixteen = (np.arange(40 * 60).reshape(40, 60) * 20).astype(np.uint16)
    (root / "i_16bit.png").write_bytes(_png(sixteen))


def plan_of(source, tmp_path, views=VIEWS, shard_size=3, **kw):
    return build_plan(source, views, shard_size, tmp_path / f"plan-{len(list(tmp_path.iterdir()))}",
                      use_ray=False, **kw)


def test_plan_records_every_bad_kind_and_keeps_the_good(tmp_path):
    make_collection(tmp_path / "imgs")
    plan = plan_of(open_source(str(tmp_path / "imgs")), tmp_path)
    rows = list(plan.rows())
    reasons = {b["id"]: b["reason"] for b in plan.bad_inputs()}
    assert reasons == {"c_copy_of_a.png": "duplicate", "d_zero.jpg": "zero-byte",
                       "e_text.jpg": "not-an-image", "f_truncated.jpg": "truncated",
                       "g_tiny.png": "too-small"}
    dup = next(b for b in plan.bad_inputs() if b["reason"] == "duplicate")
    assert dup["duplicate_of"] == "a_good.png" and dup["path"] == "c_copy_of_a.png"
    ids = sorted({r["image_id"] for r in rows})
    assert ids == ["a_good.png", "b_gray.png", "h_small.png", "i_16bit.png"]
    assert len(rows) == plan.num_views == 4 * VIEWS.views_per_image
    assert plan.num_images == 9 and plan.num_bad == 5
    # keys come from the image's listing index, so they stay put when other images go bad
    assert [r["key"] for r in rows][:4] == ["00000000_00", "00000000_01", "00000001_00", "00000001_01"]
    small = next(r for r in rows if r["image_id"] == "h_small.png")["view"]
    assert small["crop"][2] == 30  # short side 30 < crop_min 32: the whole short side


def test_plan_is_byte_identical_whatever_the_chunking_and_hash_tracks_params(tmp_path):
    make_collection(tmp_path / "imgs")
    src = open_source(str(tmp_path / "imgs"))
    p1 = plan_of(src, tmp_path, chunk_images=1, window=1)  # one image per task, one in flight
    p2 = plan_of(src, tmp_path, chunk_images=4, window=3)
    p3 = plan_of(src, tmp_path, chunk_images=256)
    assert p1.path.read_bytes() == p2.path.read_bytes() == p3.path.read_bytes()
    assert p1.plan_hash == p2.plan_hash == p3.plan_hash and p1.shards == p2.shards == p3.shards
    assert [(b["id"], b["reason"]) for b in p1.bad_inputs()] == [(b["id"], b["reason"]) for b in p3.bad_inputs()]
    # the hash is sha256(plan bytes + "\n" + params), as the store folder name always was
    import hashlib

    from depthdistill.pipeline.plan import dumps_line
    assert p1.plan_hash == hashlib.sha256(p1.path.read_bytes() + b"\n" + dumps_line(p1.view_params).encode()).hexdigest()
    other = ViewsConfig(**{**VIEWS.__dict__, "seed": 1})
    assert plan_of(src, tmp_path, views=other).plan_hash != p1.plan_hash
    row = json.loads(p1.path.read_bytes().splitlines()[0])
    assert set(row) == {"key", "image_index", "image_id", "locator", "sha256", "view"}
    assert row["sha256"] == hashlib.sha256((tmp_path / "imgs" / "a_good.png").read_bytes()).hexdigest()


def test_shards_are_consecutive_chunks_and_store_folder_named_by_hash(tmp_path):
    make_collection(tmp_path / "imgs")
    plan = plan_of(open_source(str(tmp_path / "imgs")), tmp_path, shard_size=3)
    assert plan.num_shards == 3  # 8 views -> 3 + 3 + 2 (an image's two views may straddle shards)
    chunks = [plan.shard_rows(i) for i in range(3)]
    assert [len(c) for c in chunks] == [s.count for s in plan.shards] == [3, 3, 2]
    assert [r["key"] for c in chunks for r in c] == [r["key"] for r in plan.rows()]
    assert [(s.first_key, s.last_key) for s in plan.shards] == [(c[0]["key"], c[-1]["key"]) for c in chunks]
    plan_bytes = plan.path.read_bytes()
    folder = store_dir(tmp_path / "out", "imgs", plan)
    assert folder.name == f"imgs-{plan.plan_hash[:12]}"
    move_plan_into(plan, folder)
    assert (folder / "plan.jsonl").read_bytes() == plan_bytes and plan.path == folder / "plan.jsonl"
    bad = [json.loads(x) for x in (folder / "bad_inputs.jsonl").read_text().splitlines()]
    assert len(bad) == plan.num_bad and {"id", "path", "reason"} <= set(bad[0])
    assert plan.shard_rows(1) == chunks[1]  # rows are read back from the store's plan.jsonl


def test_unreadable_list_entry_and_pixel_limit(tmp_path):
    (tmp_path / "ok.png").write_bytes(_png(_image(0)))
    (tmp_path / "big.png").write_bytes(_png(_image(1, 60, 80)))
    lst = tmp_path / "files.txt"
    lst.write_text("ok.png\nmissing.png\nbig.png\n")
    plan = plan_of(open_source(str(lst)), tmp_path, max_pixels=40 * 60)
    reasons = {b["id"]: b["reason"] for b in plan.bad_inputs()}
    assert reasons == {"missing.png": "unreadable", "big.png": "too-many-pixels"}
    assert {r["image_id"] for r in plan.rows()} == {"ok.png"}


def test_write_plan_refuses_a_different_plan_in_the_same_folder(tmp_path):
    make_collection(tmp_path / "imgs")
    src = open_source(str(tmp_path / "imgs"))
    folder = tmp_path / "store"
    move_plan_into(plan_of(src, tmp_path), folder)
    move_plan_into(plan_of(src, tmp_path), folder)  # a rerun: the same plan is already there
    (folder / "plan.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="different plan"):
        move_plan_into(plan_of(src, tmp_path), folder)
