"""Labeling runs on a local Ray: end to end, cache, kill-and-rerun, faults, micro-batching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depthdistill.config import (ConfigError, ImagesConfig, LabelsConfig, StagesConfig,
                                 TeacherConfig, ViewsConfig)
from depthdistill.pipeline.label import LabelWorker, MicroBatcher
from depthdistill.pipeline.plan import build_plan
from depthdistill.pipeline.cache import check_manifest
from depthdistill.pipeline.run import resolve_settings, run_labels
from depthdistill.pipeline.sources import open_source

VIEWS = ViewsConfig(view_size=56, crop_min=64, patch_size=56, max_grid=2)


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A tiny random DAv2 folder (save_pretrained) and a small image folder with bad inputs."""
    from depthdistill.models import build_dav2

    root = tmp_path_factory.mktemp("assets")
    build_dav2("tiny").save_pretrained(root / "dav2")
    imgs = root / "imgs"
    imgs.mkdir()
    for i in range(5):
        rgb = np.random.default_rng(i).integers(0, 255, (80, 120, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(imgs / f"{i}.png")
    (imgs / "5_copy.png").write_bytes((imgs / "0.png").read_bytes())
    (imgs / "6_bad.jpg").write_bytes(b"not a jpeg")
    return root


def make_cfg(assets: Path, out: Path, **labels) -> StagesConfig:
    teacher = TeacherConfig(name="dav2", kind="dav2", model=str(assets / "dav2"), input_size=56,
                            batch_size=4)
    return StagesConfig(images=ImagesConfig(source=str(assets / "imgs")), views=VIEWS,
                        teachers=(teacher,),
                        labels=LabelsConfig(out=str(out), shard_size=2, **labels))


def test_micro_batcher_groups_by_size_and_keeps_slots():
    calls = []

    def predict(images):  # [B, S, S, 3] -> [B, S, S]: each map = the image's first pixel
        calls.append(images.shape)
        return torch.from_numpy(images[..., 0].astype(np.float32))

    mb = MicroBatcher(predict, batch_size=2)
    for i in range(5):
        mb.add(("a", i), np.full((4, 4, 3), i, np.uint8))
    mb.add(("b", 0), np.full((6, 6, 3), 9, np.uint8))
    mb.flush()
    assert calls == [(2, 4, 4, 3), (2, 4, 4, 3), (1, 4, 4, 3), (1, 6, 6, 3)]
    assert (mb.calls, mb.images) == (4, 6)
    assert [float(mb.results[("a", i)][0, 0]) for i in range(5)] == [0, 1, 2, 3, 4]
    assert mb.results[("b", 0)].shape == (6, 6) and float(mb.results[("b", 0)][0, 0]) == 9


class NaNAfter:
    """A stand-in teacher that returns NaN for every input after the first `n`."""

    name, space, fingerprint = "nanny", "disparity", "0123456789abcdef"

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, 0

    def predict(self, images):
        out = np.ones(images.shape[:3], np.float32)  # [B, S, S]
        for b in range(len(out)):
            if self.seen >= self.n:
                out[b] = np.nan
            self.seen += 1
        return torch.from_numpy(out)


def test_nan_labels_are_refused_with_the_key_and_no_marker(assets, tmp_path):
    plan = build_plan(open_source(str(assets / "imgs")), VIEWS, 2, tmp_path / "plan", use_ray=False)
    rows = plan.shard_rows(0)
    first_inputs = 1 + len(rows[0]["view"]["patches"])  # view 0: global + its patches
    worker = LabelWorker(None, open_source(str(assets / "imgs")), str(tmp_path),
                         teacher=NaNAfter(first_inputs))
    worker.batch_size = 1
    with pytest.raises(ValueError, match=rows[1]["key"]):
        worker.label_shard(0, rows)
    folder = tmp_path / "nanny@0123456789abcdef"
    assert not (folder / "shard-000000.json").exists()
    assert not (folder / "shard-000000.tar").exists()


def test_manifest_check_refuses_other_fingerprint_or_plan(assets, tmp_path):
    plan = build_plan(open_source(str(assets / "imgs")), VIEWS, 2, tmp_path / "plan", use_ray=False)
    store = tmp_path / "store"
    store.mkdir()
    (store / "manifest.json").write_text(json.dumps(
        {"plan_hash": plan.plan_hash, "format": "webdataset", "shard_size": 2, "num_shards": 3,
         "teachers": {"dav2": {"fingerprint": "aaaa"}}}))
    check_manifest(store, plan, "webdataset", 2, {"dav2": "aaaa", "new": "cccc"})  # fine
    with pytest.raises(ValueError, match="fingerprint aaaa"):
        check_manifest(store, plan, "webdataset", 2, {"dav2": "bbbb"})
    with pytest.raises(ValueError, match="shard_size"):
        check_manifest(store, plan, "webdataset", 4, {"dav2": "aaaa"})
    (store / "new@dddd").mkdir()
    with pytest.raises(ValueError, match="never mixes"):
        check_manifest(store, plan, "webdataset", 2, {"new": "cccc"})


def test_bad_teacher_subset_is_a_config_error(assets, tmp_path):
    cfg = make_cfg(assets, tmp_path)
    with pytest.raises(ConfigError, match="unknown teacher"):
        resolve_settings(cfg, teachers="dav2,nope")
    with pytest.raises(ConfigError, match="--format"):
        resolve_settings(cfg, fmt="parquet")


def _store_keys(store: Path, teacher: str) -> list[str]:
    from depthdistill.shards import open_store

    st = open_store(store)
    return [s.key for i in range(st.num_shards) for s in st.iter_shard(i, [teacher])]


def test_end_to_end_cache_and_partial_rerun(ray_local, assets, tmp_path):
    from depthdistill.models import load_teacher
    from depthdistill.shards import open_store, validate_store
    from depthdistill.views import ViewPlan, cut_view

    cfg = make_cfg(assets, tmp_path / "out", num_actors=1)
    first = run_labels(cfg)
    assert first.ok and first.num_views == 5 and first.num_shards == 3
    assert first.bad_inputs == 2 and first.bad_reasons == {"duplicate": 1, "not-an-image": 1}
    run = first.teachers[0]
    assert (run.done, run.skipped, run.views) == (3, 0, 5)
    assert run.teacher_calls == sum(json.loads(p.read_text())["teacher_calls"]
                                    for p in Path(run.folder).glob("shard-*.json"))
    assert validate_store(first.store).ok
    # the labels are the teacher's output on the planned views and patches
    teacher = load_teacher(cfg.teachers[0])
    sample = next(open_store(first.store).iter_shard(1, ["dav2"]))
    plan = ViewPlan.from_dict(sample.meta)
    rgb = np.asarray(Image.open(assets / "imgs" / plan.image_id).convert("RGB"))
    view, patches = cut_view(rgb, plan)
    np.testing.assert_array_equal(sample.view, view)
    want = teacher.predict(np.concatenate([view[None], patches])).numpy()  # [1 + k*k, V, V]
    label = sample.labels["dav2"]
    tol = 1e-3 * float(want.max() - want.min())
    np.testing.assert_allclose(label.global_map, want[0], atol=tol)
    np.testing.assert_allclose(label.patches, want[1:], atol=tol)

    again = run_labels(cfg)  # same config: zero teacher calls
    assert again.teacher_calls == 0 and again.teachers[0].skipped == 3
    assert again.views_shards_written == 0

    # a killed run: shard 1 written but never marked, a temp file left behind
    folder = Path(run.folder)
    (folder / "shard-000001.json").unlink()
    (folder / ".shard-000002.tar.tmp-999-deadbeef").write_bytes(b"half")
    before = (folder / "shard-000000.tar").stat().st_mtime_ns
    third = run_labels(cfg)
    t = third.teachers[0]
    assert (t.done, t.skipped, t.views) == (1, 2, 2) and t.teacher_calls > 0
    assert not (folder / ".shard-000002.tar.tmp-999-deadbeef").exists()
    assert (folder / "shard-000000.tar").stat().st_mtime_ns == before
    assert validate_store(third.store).ok
    keys = _store_keys(third.store, "dav2")
    assert keys == sorted(set(keys)) and len(keys) == 5


@pytest.mark.slow
def test_actor_killed_mid_run_still_labels_every_view_once(ray_local, assets, tmp_path):
    from depthdistill.shards import validate_store

    import fault_workers

    fault_workers.ray_by_value()
    cfg = make_cfg(assets, tmp_path / "out", num_actors=2, max_retries=2)
    summary = run_labels(cfg, worker_cls=fault_workers.DyingLabelWorker)
    assert summary.ok, summary.teachers[0].failed
    run = summary.teachers[0]
    assert (summary.store / fault_workers.CLAIM_FILE).exists()  # the injected death happened
    assert run.retried >= 1 and run.done == summary.num_shards
    assert sorted(p.name for p in Path(run.folder).iterdir()) == [
        f"shard-00000{i}.{ext}" for i in range(3) for ext in ("json", "tar")]
    keys = _store_keys(summary.store, "dav2")
    plan_keys = [json.loads(x)["key"] for x in (summary.store / "plan.jsonl").read_text().splitlines()]
    assert keys == plan_keys  # every view exactly once, in plan order
    report = validate_store(summary.store)
    assert report.ok and not report.leftovers


@pytest.mark.slow
def test_adding_a_teacher_runs_only_it_in_zarr(ray_local, assets, tmp_path):
    from depthdistill.models import build_genpercept, save_genpercept_folder, tiny_prompt_embedding
    from depthdistill.shards import validate_store

    unet, vae = build_genpercept("tiny")
    save_genpercept_folder(unet, vae, tiny_prompt_embedding(unet.config.cross_attention_dim),
                           tmp_path / "gp")
    cfg = make_cfg(assets, tmp_path / "out", num_actors=1, format="zarr")
    gp = TeacherConfig(name="gp", kind="genpercept", model=str(tmp_path / "gp"), input_size=56,
                       batch_size=8)
    first = run_labels(cfg)
    both = StagesConfig(**{**cfg.__dict__, "teachers": (cfg.teachers[0], gp)})
    second = run_labels(both)
    assert second.store == first.store
    by_name = {t.name: t for t in second.teachers}
    assert by_name["dav2"].teacher_calls == 0 and by_name["dav2"].skipped == 3
    assert by_name["gp"].done == 3 and by_name["gp"].teacher_calls > 0
    assert all(p.suffix == ".zarr" for p in Path(by_name["gp"].folder).glob("shard-*.zarr"))
    assert validate_store(second.store).ok


def _flip_a_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_flipped_byte_in_a_finished_shard_is_found_and_only_that_shard_relabeled(ray_local, assets, tmp_path):
    from depthdistill.shards import validate_store

    cfg = make_cfg(assets, tmp_path / "out", num_actors=1)
    first = run_labels(cfg)
    folder = Path(first.teachers[0].folder)
    _flip_a_byte(folder / "shard-000001.tar")  # bit rot in a shard whose marker says "done"
    _flip_a_byte(first.store / "views" / "shard-000002.tar")
    assert not validate_store(first.store).ok
    kept = {i: (folder / f"shard-00000{i}.tar").stat().st_mtime_ns for i in (0, 2)}
    second = run_labels(cfg)
    run = second.teachers[0]
    assert second.ok and (run.done, run.skipped) == (1, 2) and second.views_shards_written == 1
    assert sorted(c.split(":")[0] for c in second.verified.corrupt) == [
        f"{folder.name}/shard-000001", "views/shard-000002"]
    assert second.verified.shards == 2 * first.num_shards and second.verified.bytes > 0
    assert {i: (folder / f"shard-00000{i}.tar").stat().st_mtime_ns for i in (0, 2)} == kept  # untouched
    assert validate_store(second.store).ok
    third = run_labels(cfg)
    assert third.teacher_calls == 0 and not third.verified.corrupt  # all intact again: a cache hit
