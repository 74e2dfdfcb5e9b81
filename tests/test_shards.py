"""Label store: codec, atomic writers, readers (both formats), validation, CLI."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from depthdistill.shards import (LabelSample, NonFiniteLabelError, ViewSample, clean_partial,
                                 decode_label_sample, decode_maps, decode_views_sample,
                                 encode_maps, is_done, make_manifest, marker_path, open_store,
                                 read_marker, sha256_path, shard_path, teacher_writer,
                                 validate_store, views_writer, write_manifest)
from depthdistill.shards.atomic import is_temp
from depthdistill.shards.codec import _predict, _unpredict

FORMATS = ["webdataset", "zarr"]
V, P = 16, 8
TEACHERS = {"dav2": {"space": "disparity", "fingerprint": "0123456789abcdef"},
            "gp": {"space": "depth", "fingerprint": "fedcba9876543210"}}


def smooth_map(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """float32 [h, w]: a plane + a bump + a step edge, arbitrary affine scale."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    m = 0.3 * x + 0.2 * y + np.exp(-((x - 0.5) ** 2 + (y - 0.4) ** 2) * 20) + (x > 0.7) * 0.5
    return (m * rng.uniform(1, 100) + rng.uniform(-10, 10)).astype(np.float32)


def meta_for(key: str, grid: int) -> dict:
    step = V / grid
    fps = [[c * step, r * step, (c + 1) * step, (r + 1) * step] for r in range(grid) for c in range(grid)]
    return {"image_id": key, "view_index": 0, "view_size": V, "grid": grid,
            "patch_input_size": P, "footprints": fps, "sha256": "ab" * 32}


def make_samples(seed: int = 0, num_shards: int = 2, per_shard: int = 3):
    rng = np.random.default_rng(seed)
    shards = []
    for s in range(num_shards):
        rows = []
        for j in range(per_shard):
            key = f"{s * per_shard + j:08d}_00"
            grid = 1 + (j % 2)
            view = rng.integers(0, 256, (V, V, 3), dtype=np.uint8)
            labels = {t: (smooth_map(rng, V, V), np.stack([smooth_map(rng, P, P) for _ in range(grid * grid)]))
                      for t in TEACHERS}
            rows.append((key, view, meta_for(key, grid), labels))
        shards.append(rows)
    return shards


def write_store(root, fmt, shards, codec="q12"):
    for i, rows in enumerate(shards):
        with views_writer(root, i, fmt) as w:
            for key, view, meta, _ in rows:
                w.write(ViewSample(key, view, meta))
        for t, info in TEACHERS.items():
            with teacher_writer(root, i, fmt, teacher=t, codec=codec, **info) as w:
                for key, _, _, labels in rows:
                    w.write(LabelSample(key, *labels[t]))
                w.annotate(timing={"model_s": 0.5})
    write_manifest(root, make_manifest(fmt=fmt, num_shards=len(shards), shard_size=3,
                                       num_views=sum(map(len, shards)), teachers=TEACHERS,
                                       codec=codec, collection="test"))
    return root


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    shards = make_samples()
    return shards, {fmt: write_store(tmp_path_factory.mktemp(fmt), fmt, shards) for fmt in FORMATS}


# ----------------------------------------------------------------------------- codec


def test_codec_exact_values_on_hand_made_map():
    x = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    data, params = encode_maps(x, "q16", key="k")
    assert params["lo"] == [0.0] and params["scale"] == [3.0 / 65535]
    np.testing.assert_array_equal(decode_maps(data, params), x)  # exact levels 0, 21845, ...
    assert params["max_err_rel"] == [0.0]
    const = np.full((3, 4), 7.5, np.float32)  # zero range must not divide by zero
    d, p = encode_maps(const, "q12")
    np.testing.assert_array_equal(decode_maps(d, p), const)


@pytest.mark.parametrize("kind", ["none", "deltax", "delta2d"])
def test_predictor_round_trip_with_wraparound(kind):
    q = np.random.default_rng(1).integers(0, 65536, (2, 9, 7), dtype=np.uint16)
    q[0, 0, :3] = [0, 65535, 0]  # large jumps wrap modulo 2**16
    np.testing.assert_array_equal(_unpredict(_predict(q, kind), kind), q)


@pytest.mark.parametrize("codec", ["png16", "q16", "q12", "f16", "f32"])
def test_codec_error_after_affine_alignment(codec):
    x = smooth_map(np.random.default_rng(2), 112, 112)
    data, params = encode_maps(x, codec)
    y = decode_maps(data, params).astype(np.float64)
    a = np.stack([y.ravel(), np.ones(y.size)], 1)
    coef, *_ = np.linalg.lstsq(a, x.ravel().astype(np.float64), rcond=None)
    rel = np.abs(a @ coef - x.ravel()).max() / np.ptp(x)
    assert rel <= 1e-3
    assert params["max_err_rel"][0] <= 1e-3
    direct = np.abs(y - x).max() / np.ptp(x)
    assert direct == pytest.approx(params["max_err_rel"][0], rel=1e-6, abs=1e-12)  # recorded = real
    if codec == "q12":
        assert len(data) / x.size <= 1.0  # <= 1 byte per pixel
        assert params["max_err_rel"][0] <= 0.5 / 4095 + 1e-7


def test_codec_refuses_nan_naming_the_key():
    x = np.ones((4, 4), np.float32)
    x[1, 2] = np.nan
    with pytest.raises(NonFiniteLabelError, match="00000007_01/global"):
        encode_maps(x, key="00000007_01/global")
    with pytest.raises(ValueError, match="labels.codec"):
        encode_maps(np.ones((2, 2), np.float32), "q99")


# ----------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_within_recorded_error(stores, fmt):
    shards, roots = stores
    store = open_store(roots[fmt])
    assert store.num_shards == 2 and set(store.teachers) == set(TEACHERS)
    assert store.teachers["gp"].space == "depth" and store.teachers["dav2"].done_shards == (0, 1)
    assert store.complete_shards() == [0, 1]
    for i, rows in enumerate(shards):
        got = list(store.iter_shard(i))
        assert [s.key for s in got] == [r[0] for r in rows]
        for s, (key, view, meta, labels) in zip(got, rows):
            np.testing.assert_array_equal(s.view, view)
            assert s.meta == meta
            for t, (g, p) in labels.items():
                lab = s.labels[t]
                assert lab.space == TEACHERS[t]["space"] and lab.patches.shape == p.shape
                for part, ref, dec in (("global", g[None], lab.global_map[None]), ("patches", p, lab.patches)):
                    tol = np.array(lab.params[part]["max_err_rel"]) * np.ptp(ref, axis=(1, 2))
                    err = np.abs(dec.astype(np.float64) - ref).max(axis=(1, 2))
                    assert (err <= tol * (1 + 1e-6) + 1e-6).all()
                    assert (err <= 1e-3 * np.ptp(ref, axis=(1, 2))).all()


def test_both_formats_give_the_same_samples(stores):
    _, roots = stores
    a, b = (list(open_store(roots[f]).iter_shard(1)) for f in FORMATS)
    for sa, sb in zip(a, b, strict=True):
        assert sa.key == sb.key and sa.meta == sb.meta
        np.testing.assert_array_equal(sa.view, sb.view)
        for t in TEACHERS:
            np.testing.assert_array_equal(sa.labels[t].global_map, sb.labels[t].global_map)
            np.testing.assert_array_equal(sa.labels[t].patches, sb.labels[t].patches)
            assert sa.labels[t].params == sb.labels[t].params


@pytest.mark.parametrize("fmt", FORMATS)
def test_marker_content(stores, fmt):
    shards, roots = stores
    folder = roots[fmt] / "dav2@0123456789abcdef"
    m = read_marker(folder, 1)
    assert m["count"] == 3 and m["first_key"] == "00000003_00" and m["last_key"] == "00000005_00"
    assert m["sha256"] == sha256_path(shard_path(folder, 1, fmt))
    assert m["teacher"] == "dav2" and m["space"] == "disparity" and m["codec"] == "q12"
    assert m["timing"]["model_s"] == 0.5 and m["timing"]["write_s"] > 0
    assert 0 < m["qerr"]["global_max"] <= 0.5 / 4095 + 1e-7
    assert m["label_pixels"] == 3 * V * V + (1 + 4 + 1) * P * P


def test_tarfile_and_webdataset_see_expected_keys(stores):
    import webdataset as wds

    _, roots = stores
    path = shard_path(roots["webdataset"] / "views", 0, "webdataset")
    with tarfile.open(path) as tar:
        names = tar.getnames()
        assert all(m.mtime == 946684800 and m.uid == 0 and m.uname == "depthdistill" for m in tar)
    assert names[:2] == ["00000000_00.view.png", "00000000_00.meta.json"] and len(names) == 6
    ds = wds.WebDataset(str(path), shardshuffle=False).map(decode_views_sample)
    assert [s.key for s in ds] == ["00000000_00", "00000001_00", "00000002_00"]
    tpath = shard_path(roots["webdataset"] / "gp@fedcba9876543210", 0, "webdataset")
    labs = list(wds.WebDataset(str(tpath), shardshuffle=False).map(decode_label_sample))
    assert [s.patches.shape for s in labs] == [(1, P, P), (4, P, P), (1, P, P)]
    assert labs[0].params["space"] == "depth"


def test_zarr_open_lists_arrays(stores):
    import zarr

    _, roots = stores
    g = zarr.open(str(shard_path(roots["zarr"] / "dav2@0123456789abcdef", 0, "zarr")), mode="r")
    assert {"keys", "global", "patches", "num_patches", "global_lo", "global_scale",
            "patches_lo", "patches_scale"} <= set(g.array_keys())
    assert g["global"].shape == (3, V, V) and g["global"].dtype == np.uint16
    assert g["patches"].shape == (3, 4, P, P) and list(g["num_patches"][:]) == [1, 4, 1]
    v = zarr.open(str(shard_path(roots["zarr"] / "views", 0, "zarr")), mode="r")
    assert v["rgb"].shape == (3, V, V, 3) and list(v["keys"][:]) == ["00000000_00", "00000001_00", "00000002_00"]


def test_zarr_labels_pass_the_2d_predictor_and_plain_zarr_reads_them(stores):
    """The label words are stored through depthdistill.delta2d, and a process that imports only
    zarr decodes them (the codec comes from the package's ``zarr.codecs`` entry point)."""
    import subprocess
    import sys

    from depthdistill.shards.codec import to_words

    shards, roots = stores
    path = shard_path(roots["zarr"] / "gp@fedcba9876543210", 1, "zarr")
    meta = json.loads((path / "global" / "zarr.json").read_text())
    assert [c["name"] for c in meta["codecs"]] == ["depthdistill.delta2d", "bytes", "zstd"]
    assert json.loads((path / "num_patches" / "zarr.json").read_text())["codecs"][0]["name"] == "bytes"
    code = ("import sys, zarr, numpy as np; g = zarr.open_group(sys.argv[1], mode='r'); "
            "np.save(sys.stdout.buffer, g['global'][...]); "
            "assert 'depthdistill.shards.zarr_delta2d' in sys.modules  # loaded by the entry point")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, check=True)
    words = np.load(io.BytesIO(out.stdout))
    expected = np.stack([to_words(labels["gp"][0], "q12")[0][0] for _, _, _, labels in shards[1]])
    np.testing.assert_array_equal(words, expected)


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4, 5)])
def test_zarr_delta2d_codec_round_trips_any_uint16_chunk(tmp_path, shape):
    import zarr

    from depthdistill.shards.zarr_delta2d import Delta2DCodec

    x = np.random.default_rng(1).integers(0, 2 ** 16, shape, dtype=np.uint16)
    x.flat[0], x.flat[-1] = 0, 65535  # wrap-around differences both ways
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=3)
    g.create_array("x", shape=shape, dtype=np.uint16, chunks=shape, filters=[Delta2DCodec()])[...] = x
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "g.zarr"), mode="r")["x"][...], x)


def test_zarr_delta2d_codec_refuses_floats_and_shrinks_a_smooth_map(tmp_path):
    import zarr
    from zarr.codecs import BloscCodec

    from depthdistill.shards.zarr_delta2d import Delta2DCodec

    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=3)
    with pytest.raises(ValueError, match="uint16"):
        g.create_array("f", shape=(4, 4), dtype=np.float32, filters=[Delta2DCodec()])
    y, x = np.mgrid[0:64, 0:64]
    smooth = (2000 + 1500 * np.sin(x / 9) * np.cos(y / 7) + 20 * x).round().astype(np.uint16)
    sizes = {}
    for name, filters in (("plain", ()), ("delta2d", [Delta2DCodec()])):
        arr = g.create_array(name, shape=smooth.shape, dtype=np.uint16, filters=filters,
                             compressors=BloscCodec(cname="zstd", clevel=5, shuffle="shuffle"))
        arr[...] = smooth
        sizes[name] = arr.nbytes_stored()
    assert sizes["delta2d"] < 0.75 * sizes["plain"]  # measured 3293 vs 5160 bytes


def test_identical_input_gives_identical_tar_bytes(tmp_path):
    shards = make_samples(seed=5, num_shards=1)
    a, b = write_store(tmp_path / "a", "webdataset", shards), write_store(tmp_path / "b", "webdataset", shards)
    for sub in ("views", "dav2@0123456789abcdef"):
        assert (a / sub / "shard-000000.tar").read_bytes() == (b / sub / "shard-000000.tar").read_bytes()


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_writer_leaves_nothing_finished(tmp_path, fmt):
    rows = make_samples(num_shards=1)[0]
    with pytest.raises(RuntimeError, match="boom"):
        with teacher_writer(tmp_path, 0, fmt, teacher="dav2", **TEACHERS["dav2"]) as w:
            w.write(LabelSample(rows[0][0], *rows[0][3]["dav2"]))
            raise RuntimeError("boom")
    folder = tmp_path / "dav2@0123456789abcdef"
    assert not is_done(folder, 0) and not marker_path(folder, 0).exists()
    assert [p.name for p in folder.iterdir()] == []
    # a hard kill (no close / abort) leaves only a hidden temp file; clean_partial removes it
    w = views_writer(tmp_path, 0, fmt)
    w.write(ViewSample(*rows[0][:3]))
    if fmt == "zarr":
        # zarr buffers in memory: simulate a kill during the final write of the temp store
        w._tmp.mkdir()
        (w._tmp / "zarr.json").write_text("{}")
    leftovers = list((tmp_path / "views").iterdir())
    assert leftovers and all(is_temp(p) for p in leftovers)
    assert not is_done(tmp_path / "views", 0)
    (tmp_path / "views" / f"shard-000001{'.tar' if fmt == 'webdataset' else '.zarr'}").mkdir()  # no marker
    removed = clean_partial(tmp_path / "views")
    assert len(removed) == 2 and list((tmp_path / "views").iterdir()) == []


def test_remove_shard_temps_takes_only_that_shards_temps(tmp_path):
    from depthdistill.shards.atomic import remove_shard_temps

    names = [".shard-000002.tar.tmp-11-aaaaaaaa", ".shard-000002.zarr.tmp-12-bbbbbbbb",
             ".shard-000003.tar.tmp-13-cccccccc", ".shard-000020.tar.tmp-14-dddddddd",
             "shard-000002.tar", "shard-000002.json"]
    for name in names:
        (tmp_path / name).mkdir() if ".zarr" in name else (tmp_path / name).write_bytes(b"x")
    removed = remove_shard_temps(tmp_path, 2)
    assert sorted(p.name for p in removed) == names[:2]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])


@pytest.mark.parametrize("fmt", FORMATS)
def test_nan_label_refused_and_shard_not_done(tmp_path, fmt):
    g = np.ones((V, V), np.float32)
    g[3, 3] = np.inf
    with pytest.raises(NonFiniteLabelError, match="00000042_00/global"):
        with teacher_writer(tmp_path, 0, fmt, teacher="dav2", **TEACHERS["dav2"]) as w:
            w.write(LabelSample("00000042_00", g, np.ones((1, P, P), np.float32)))
    assert not is_done(tmp_path / "dav2@0123456789abcdef", 0)


def test_zarr_shape_mismatch_found_at_close_leaves_no_temp(tmp_path):
    with pytest.raises(ValueError, match="one view size per store"):
        with teacher_writer(tmp_path, 0, "zarr", teacher="dav2", **TEACHERS["dav2"]) as w:
            w.write(LabelSample("00000000_00", np.ones((V, V), np.float32), np.ones((1, P, P), np.float32)))
            w.write(LabelSample("00000001_00", np.ones((V + 2, V + 2), np.float32), np.ones((1, P, P), np.float32)))
    assert list((tmp_path / "dav2@0123456789abcdef").iterdir()) == []


def test_writer_refuses_out_of_order_keys(tmp_path):
    with views_writer(tmp_path, 0) as w:
        w.write(ViewSample("00000002_00", np.zeros((V, V, 3), np.uint8), {}))
        with pytest.raises(ValueError, match="increasing key order"):
            w.write(ViewSample("00000001_00", np.zeros((V, V, 3), np.uint8), {}))


# ----------------------------------------------------------------------------- validation


def _swap_first_two_keys(path, fmt):
    """Rewrite a shard with its first two samples swapped (marker sha updated to match)."""
    if fmt == "webdataset":
        with tarfile.open(path) as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar]
        members = members[3:6] + members[0:3] + members[6:]  # teacher samples have 3 members
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as out:
            for m, data in members:
                out.addfile(m, io.BytesIO(data))
        path.write_bytes(buf.getvalue())
    else:
        import zarr

        g = zarr.open_group(str(path), mode="r+")
        keys = list(g["keys"][:])
        g["keys"][:] = np.array([keys[1], keys[0], *keys[2:]], dtype=object)
    marker = read_marker(path.parent, 0)
    marker["sha256"] = sha256_path(path)
    marker_path(path.parent, 0).write_text(json.dumps(marker))


@pytest.mark.parametrize("fmt", FORMATS)
def test_validate_catches_faults(tmp_path, fmt):
    root = write_store(tmp_path / "s", fmt, make_samples(seed=3))
    assert validate_store(root).ok
    # 1. a flipped byte -> checksum
    tshard = shard_path(root / "gp@fedcba9876543210", 1, fmt)
    target = tshard if fmt == "webdataset" else sorted(p for p in tshard.rglob("*") if p.is_file() and p.stat().st_size > 64)[-1]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    report = validate_store(root)
    assert {(f.check, f.file) for f in report.faults} >= {("checksum", str(tshard))}
    # 2. a reordered key -> key-order (checksum made consistent, so only the order is wrong)
    dshard = shard_path(root / "dav2@0123456789abcdef", 0, fmt)
    _swap_first_two_keys(dshard, fmt)
    checks = {(f.check, f.file) for f in validate_store(root).faults}
    assert ("key-order", str(dshard)) in checks and ("checksum", str(dshard)) not in checks
    with pytest.raises(ValueError, match="key mismatch.*views.*dav2@"):
        list(open_store(root).iter_shard(0, teachers=["dav2"]))
    # 3. a missing marker
    marker_path(root / "views", 1).unlink()
    checks = {(f.check, f.file) for f in validate_store(root).faults}
    assert ("missing-marker", str(shard_path(root / "views", 1, fmt))) in checks


def test_cli_validate_and_inspect(stores, tmp_path):
    from typer.testing import CliRunner

    from depthdistill.commands.shards import app

    _, roots = stores
    runner = CliRunner()
    res = runner.invoke(app, ["validate", str(roots["zarr"])])
    assert res.exit_code == 0, res.output
    png = tmp_path / "preview.png"
    res = runner.invoke(app, ["inspect", str(roots["webdataset"]), "--png", str(png)])
    assert res.exit_code == 0, res.output
    assert "dav2" in res.output and "disparity" in res.output and png.stat().st_size > 0
    broken = write_store(tmp_path / "broken", "webdataset", make_samples(seed=4, num_shards=1))
    marker_path(broken / "gp@fedcba9876543210", 0).unlink()
    res = runner.invoke(app, ["validate", str(broken)])
    assert res.exit_code == 1 and "missing-marker" in res.output
