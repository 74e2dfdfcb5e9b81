"""Labels that plain tools read: a store written with the default codec opens with webdataset
+ PIL and with zarr alone, in a process that never imports depthdistill, and gives the same
labels as depthdistill's own reader."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from depthdistill.shards import DEFAULT_CODEC, open_store
from test_shards import make_samples, write_store

PLAIN_READER = r"""
import io, json, sys
import numpy as np

def labels_from_webdataset(tar):
    import PIL.Image
    import webdataset as wds

    png = wds.handle_extension("png", lambda b: np.asarray(PIL.Image.open(io.BytesIO(b))))
    out = {}
    for s in wds.WebDataset(tar, shardshuffle=False).decode(png):  # json -> dict, png -> array
        info = s["label.json"]
        g, p = info["global"], info["patches"]
        glob = g["lo"][0] + s["global.png"].astype(np.float64) * g["scale"][0]
        words = s["patches.png"].reshape(p["shape"])
        patches = np.asarray(p["lo"])[:, None, None] + words * np.asarray(p["scale"])[:, None, None]
        out[s["__key__"]] = [glob.tolist(), patches.tolist()]
    return out

def labels_from_zarr(path):
    import zarr

    g = {name: arr[...] for name, arr in zarr.open_group(path, mode="r").arrays()}  # numpy arrays
    out = {}
    for i, key in enumerate(g["keys"]):
        k = int(g["num_patches"][i])
        glob = g["global_lo"][i] + g["global"][i].astype(np.float64) * g["global_scale"][i]
        patches = (g["patches_lo"][i, :k, None, None]
                   + g["patches"][i, :k].astype(np.float64) * g["patches_scale"][i, :k, None, None])
        out[str(key)] = [glob.tolist(), patches.tolist()]
    return out

fmt, path = sys.argv[1], sys.argv[2]
labels = labels_from_webdataset(path) if fmt == "webdataset" else labels_from_zarr(path)
assert not [m for m in sys.modules if m.startswith("depthdistill")], "depthdistill was imported"
print(json.dumps(labels))
"""


@pytest.mark.parametrize("fmt", ["webdataset", "zarr"])
def test_default_labels_read_with_plain_webdataset_and_zarr(tmp_path, fmt):
    assert DEFAULT_CODEC == "png16"
    write_store(tmp_path, fmt, make_samples(num_shards=1), codec=DEFAULT_CODEC)
    store = open_store(tmp_path)
    shard = store.teacher_shard_path("dav2", 0)
    out = subprocess.run([sys.executable, "-c", PLAIN_READER, fmt, str(shard)], capture_output=True, text=True,
                         check=True)
    plain = json.loads(out.stdout)
    ours = {s.key: s.labels["dav2"] for s in store.iter_shard(0, ["dav2"])}
    assert sorted(plain) == sorted(ours) and len(ours) == 3
    for key, label in ours.items():
        np.testing.assert_allclose(np.asarray(plain[key][0]), label.global_map, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(np.asarray(plain[key][1]), label.patches, rtol=1e-6, atol=1e-6)
