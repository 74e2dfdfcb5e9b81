"""trainer/data.py: split, order, resume, teacher draw, label conversion and store faults."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from depthdistill import shards
from depthdistill.background import BackgroundIterator
from depthdistill.trainer import data as tdata
from depthdistill.views import plan_view

VIEW = dict(view_size=42, crop_min=48, patch_size=28, max_grid=3, min_overlap=0.25)
IMAGE_HW = (56, 72)
TEACHERS = {"dav2": "disparity", "gp": "depth"}


def _label_maps(rng: np.random.Generator, plan, space: str) -> tuple[np.ndarray, np.ndarray]:
    """Smooth positive maps: a random plane plus a bump (depth space: its inverse)."""
    v, p = plan.view_size, plan.patch_input_size
    yy, xx = np.mgrid[0:v, 0:v] / v
    a, b, c = rng.uniform(0.5, 2.0, 3)
    g = (1.0 + a * xx + b * yy + c * np.exp(-((xx - .5) ** 2 + (yy - .5) ** 2) * 8)).astype(np.float32)
    patches = np.stack([g[:p, :p] * rng.uniform(0.5, 2) + rng.uniform(0, 1) for _ in plan.patches]).astype(np.float32)
    if space == "depth":
        return 1.0 / g, 1.0 / patches
    return g, patches


def make_store(root: Path, num_shards: int = 4, per_shard: int = 4, fmt: str = "webdataset",
               teachers: dict[str, str] = TEACHERS, seed: int = 0) -> Path:
    """A tiny real label store written with the shards writers (views + each teacher)."""
    rng = np.random.default_rng(seed)
    store = root / "store"
    index = 0
    for s in range(num_shards):
        samples = []
        for _ in range(per_shard):
            key = shards.view_key(index, 0)
            plan = plan_view(f"img{index}", IMAGE_HW, 0, seed, **VIEW)
            view = rng.integers(0, 255, (plan.view_size, plan.view_size, 3), dtype=np.uint8)
            samples.append((key, plan, view))
            index += 1
        with shards.views_writer(store, s, fmt) as w:
            for key, plan, view in samples:
                w.write(shards.ViewSample(key, view, plan.to_dict()))
        for name, space in teachers.items():
            with shards.teacher_writer(store, s, fmt, teacher=name, fingerprint="ab12", space=space) as w:
                for key, plan, _ in samples:
                    w.write(shards.LabelSample(key, *_label_maps(rng, plan, space)))
    manifest = shards.make_manifest(fmt=fmt, num_shards=num_shards, shard_size=per_shard,
                                    num_views=index, codec=shards.DEFAULT_CODEC,
                                    teachers={n: {"space": sp, "fingerprint": "ab12"} for n, sp in teachers.items()})
    shards.write_manifest(store, manifest)
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("data"))


def _dataset(store: Path, **kw) -> tdata.ShardStream:
    args = dict(batch_size=2, max_grid=3, seed=0, shuffle_buffer=4)
    args.update(kw)
    return tdata.ShardStream(store, tuple(TEACHERS), **args)


def _epoch_keys(ds: tdata.ShardStream, worker: int, epoch: int = 0) -> list[str]:
    st = shards.open_store(ds.store_path)
    usable = tdata.usable_shards(st, ds.teachers)
    return [s.key for s in ds._epoch_samples(st, usable, epoch, worker, [0], {})]


@pytest.mark.parametrize("num_shards", [4, 8, 3])
def test_slots_are_disjoint_and_cover_the_store(tmp_path: Path, num_shards: int) -> None:
    store = make_store(tmp_path, num_shards=num_shards, per_shard=3)  # 3 shards < 4 slots: sample split
    seen: list[str] = []
    for rank in range(2):
        for worker in range(2):
            ds = _dataset(store, rank=rank, world_size=2, num_workers=2)
            seen += _epoch_keys(ds, worker)
    assert len(seen) == len(set(seen)) == num_shards * 3


def test_slot_shards_modes() -> None:
    shards_, filt = tdata.slot_shards([0, 1, 2, 3], epoch=0, seed=0, rank=1, world_size=2, worker=0, num_workers=2)
    assert len(shards_) == 1 and filt is None
    shards_, filt = tdata.slot_shards([0, 1, 2], epoch=0, seed=0, rank=1, world_size=2, worker=1, num_workers=2)
    assert sorted(shards_) == [0, 1, 2] and filt == (3, 4)
    a = tdata.slot_shards(list(range(16)), epoch=0, seed=0, rank=0, world_size=1, worker=0, num_workers=1)[0]
    b = tdata.slot_shards(list(range(16)), epoch=1, seed=0, rank=0, world_size=1, worker=0, num_workers=1)[0]
    assert sorted(a) == sorted(b) == list(range(16)) and a != b  # reshuffled each epoch


def test_buffer_shuffle_is_a_seeded_permutation() -> None:
    import random

    out1 = list(tdata.buffer_shuffle(iter(range(50)), 8, random.Random(3)))
    out2 = list(tdata.buffer_shuffle(iter(range(50)), 8, random.Random(3)))
    assert out1 == out2 and sorted(out1) == list(range(50)) and out1 != list(range(50))


def test_teacher_draw_frequencies_match_weights() -> None:
    sampler = tdata.TeacherSampler({"dav2": 0.7, "gp": 0.3, "third": 1.0}, seed=5)
    counts = Counter(sampler.draw(i) for i in range(20000))
    assert counts["dav2"] / 20000 == pytest.approx(0.35, abs=0.012)
    assert counts["gp"] / 20000 == pytest.approx(0.15, abs=0.01)
    assert counts["third"] / 20000 == pytest.approx(0.5, abs=0.012)
    assert [sampler.draw(i) for i in range(50)] == [tdata.TeacherSampler(
        {"dav2": 0.7, "gp": 0.3, "third": 1.0}, seed=5).draw(i) for i in range(50)]
    assert Counter(tdata.TeacherSampler({"a": 1.0, "b": 0.0}).draw(i) for i in range(100))["b"] == 0


def test_to_disparity_handles_zero_and_nonfinite() -> None:
    d, m = tdata.to_disparity(np.array([[2.0, 0.0], [np.inf, 0.5]], np.float32), "depth")
    np.testing.assert_array_equal(d, [[0.5, 0.0], [0.0, 2.0]])
    np.testing.assert_array_equal(m, [[True, False], [False, True]])
    d, m = tdata.to_disparity(np.array([0.0, np.nan, 3.0], np.float32), "disparity")
    np.testing.assert_array_equal(d, [0.0, 0.0, 3.0])
    np.testing.assert_array_equal(m, [True, False, True])


def test_batch_contents_and_padding(store: Path) -> None:
    batch = next(iter(_dataset(store, batch_size=3)))
    assert batch["image"].shape == (3, 3, 42, 42) and batch["image"].dtype == torch.uint8
    assert batch["footprints"].shape == (3, 9, 4) and batch["patch_valid"].shape == (3, 9)
    st = shards.open_store(store)
    metas = {s.key: s.meta for i in range(st.num_shards) for s in st.iter_shard(i)}
    for b, key in enumerate(batch["keys"]):
        k2 = len(metas[key]["footprints"])
        assert int(batch["patch_valid"][b].sum()) == k2
        np.testing.assert_allclose(batch["footprints"][b, :k2].numpy(), metas[key]["footprints"], rtol=1e-6)
        assert not batch["teachers"]["dav2"]["patch_mask"][b, k2:].any()
    gp = tdata.select_teacher(batch, "gp")
    assert gp["teacher"] == "gp" and gp["label"].shape == (3, 42, 42)
    assert (gp["label"][gp["label_mask"]] > 1.0).all()  # 1/depth of the 1/g labels: g >= 1


def _take(loader_iter, n: int, position: tdata.DataPosition) -> list[list[str]]:
    out = []
    for _ in range(n):
        batch = next(loader_iter)
        position.update(batch)
        out.append(batch["keys"])
    return out


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_continues_the_same_stream(store: Path, num_workers: int) -> None:
    # 16 samples, batch 3: streams cross epoch boundaries within 9 batches
    pos = tdata.DataPosition()
    straight = _take(iter(tdata.build_loader(_dataset(store, batch_size=3, num_workers=num_workers), num_workers)), 9, pos)
    pos = tdata.DataPosition()
    first = _take(iter(tdata.build_loader(_dataset(store, batch_size=3, num_workers=num_workers), num_workers)), 4, pos)
    saved = tdata.DataPosition.from_state(pos.state_dict())
    resumed_ds = _dataset(store, batch_size=3, num_workers=num_workers, position=saved)
    second = _take(iter(tdata.build_loader(resumed_ds, num_workers)), 5, saved)
    assert first + second == straight
    assert len({k for b in straight[:4] for k in b}) == 12  # no repeats within a first epoch


@pytest.mark.parametrize("fmt", ["webdataset", "zarr"])
def test_reads_either_format(tmp_path: Path, fmt: str) -> None:
    store = make_store(tmp_path, num_shards=2, per_shard=2, fmt=fmt)
    keys = _epoch_keys(_dataset(store), 0)
    assert sorted(keys) == [shards.view_key(i, 0) for i in range(4)]


def test_bad_store_inputs(tmp_path: Path, store: Path) -> None:
    with pytest.raises(ValueError, match="no such folder"):
        tdata.check_store(tmp_path / "nope", ["dav2"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="manifest"):
        tdata.check_store(tmp_path / "empty", ["dav2"])
    with pytest.raises(ValueError, match=r"teacher\(s\) \['marigold'\]"):
        tdata.check_store(store, ["dav2", "marigold"])


def test_corrupt_shard_is_skipped_and_counted_or_strict(tmp_path: Path, caplog) -> None:
    store = make_store(tmp_path, num_shards=3, per_shard=2)
    bad = shards.open_store(store).teacher_shard_path("gp", 1)
    raw = bytearray(bad.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    ds = _dataset(store, batch_size=2)
    with caplog.at_level(logging.WARNING):
        batches = [next(it) for it in [iter(ds)] for _ in range(4)]  # two epochs of 2 good shards
    keys = {k for b in batches for k in b["keys"]}
    assert keys == {shards.view_key(i, 0) for i in (0, 1, 4, 5)}
    assert batches[-1]["position"]["skipped"] == 1 and "sha256" in caplog.text
    strict = iter(_dataset(store, strict=True, shuffle_buffer=1))
    with pytest.raises(shards.ShardChecksumError, match="shard-000001"):
        for _ in range(3):  # one epoch reaches the bad shard
            next(strict)


def test_background_batches_same_order_errors_and_close(store: Path) -> None:
    pos = tdata.DataPosition()
    plain = _take(iter(tdata.build_loader(_dataset(store, batch_size=3), 0)), 6, pos)
    background = BackgroundIterator(iter(tdata.build_loader(_dataset(store, batch_size=3), 0)), depth=2)
    assert _take(background, 6, tdata.DataPosition()) == plain
    background.close()
    assert not background._thread.is_alive()  # the endless stream's thread stopped

    def failing():
        yield 1
        raise ValueError("store is smaller than ranks x workers")

    items = BackgroundIterator(failing())
    assert next(items) == 1
    with pytest.raises(ValueError, match="smaller"):
        next(items)
    with pytest.raises(StopIteration):
        next(items)
    assert list(BackgroundIterator(iter(range(5)), depth=1)) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="depth"):
        BackgroundIterator(iter([]), depth=0)
