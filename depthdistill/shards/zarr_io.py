"""Zarr v3 shards (``shard-000000.zarr`` directories), one group per shard.

views:   ``rgb [N, V, V, 3] uint8``, ``keys [N] str``, ``meta [N] str`` (JSON per view)
teacher: ``keys [N]``, ``global [N, V, V]`` and ``patches [N, Kmax, P, P]`` holding the codec's
         stored words (uint16 for ``q*``, float16/32 for ``f*``; unused patch slots are 0),
         ``num_patches [N] int32``, codec params ``global_lo / global_scale [N]`` and
         ``patches_lo / patches_scale [N, Kmax]`` float64, quantisation error
         ``global_err [N, 2]`` / ``patches_err [N, Kmax, 2]`` (max, mean relative to range);
         group attrs: kind, teacher, fingerprint, space, codec, spec.
View chunks hold one sample, label chunks a whole shard. With the default codec (``png16``)
every array uses codecs that ship with zarr and numcodecs — uint16 label words pass numcodecs'
``Delta`` then Blosc (zstd + byte shuffle) — so plain ``zarr.open_group`` reads a shard with no
depthdistill installed; a label is ``lo + words * scale``. The compact custom codecs (``q12``,
``q16``) pass the words through the tar path's 2-D predictor and byte planes instead
(``zarr_delta2d.Delta2DCodec``, registered through an entry point) and zstd. A sample read back
equals the one read from the WebDataset format of the same input.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from . import atomic
from .base import ShardWriter
from .codec import from_words, get_spec, to_words
from .schema import SCHEMA_VERSION, LabelSample, ViewSample, dumps

logger = logging.getLogger(__name__)


def _compressor():
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")


def _label_words_codecs(spec) -> dict[str, Any]:
    """uint16 label words: numcodecs Delta + Blosc for the plain codec; the tar path's predictor
    and byte planes, then zstd, for the custom ones."""
    import warnings

    from zarr.codecs import ZstdCodec

    if spec.filter == "png":  # plain: codecs every zarr (>= 3.1.3) + numcodecs install decodes
        from zarr.codecs.numcodecs import Delta

        with warnings.catch_warnings():  # "numcodecs codecs are not in the Zarr v3 spec": readable anyway
            warnings.simplefilter("ignore", UserWarning)
            return {"filters": [Delta(dtype="<u2")], "compressors": _compressor()}
    from .zarr_delta2d import Delta2DCodec  # imports zarr: only when a Zarr shard is written

    return {"filters": [Delta2DCodec()], "compressors": ZstdCodec(level=spec.level)}


def _put(group, name: str, data: np.ndarray, chunk_first: int = 1,
         codecs: dict[str, Any] | None = None) -> None:
    chunks = (max(1, min(chunk_first, data.shape[0] or 1)), *data.shape[1:]) if data.ndim else ()
    arr = group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks,
                             **(codecs or {"compressors": _compressor()}))
    if data.size:
        arr[...] = data


def _put_strings(group, name: str, values: list[str]) -> None:
    arr = group.create_array(name, shape=(len(values),), dtype=str,
                             chunks=(max(1, len(values)),))
    if values:
        arr[:] = np.array(values, dtype=object)


class ZarrShardWriter(ShardWriter):
    """Buffers one shard in memory (a shard is tens of views) and writes it on ``close()``."""

    fmt = "zarr"

    def __init__(self, folder: str | Path, index: int, **kwargs: Any) -> None:
        super().__init__(folder, index, **kwargs)
        self._prepare_folder()
        self._tmp = atomic.temp_path(self.final_path)
        self._rows: list[dict[str, Any]] = []

    def _write_view(self, sample: ViewSample) -> None:
        self._rows.append({"rgb": np.ascontiguousarray(sample.view), "meta": dumps(sample.meta).decode()})

    def _write_label(self, sample: LabelSample) -> None:
        g, gp = to_words(sample.global_map, self.codec, key=f"{sample.key}/global")
        p, pp = to_words(sample.patches, self.codec, key=f"{sample.key}/patches")
        self._note_label({"global": gp, "patches": pp})
        self._rows.append({"global": g[0], "patches": p, "gp": gp, "pp": pp})

    def _label_arrays(self) -> dict[str, np.ndarray]:
        n = len(self._rows)
        kmax = max((r["patches"].shape[0] for r in self._rows), default=1)
        first = self._rows[0] if self._rows else None
        v = first["global"].shape if first else (0, 0)
        p = first["patches"].shape[1:] if first else (0, 0)
        dtype = first["global"].dtype if first else np.uint16
        out = {"global": np.zeros((n, *v), dtype), "patches": np.zeros((n, kmax, *p), dtype),
               "num_patches": np.zeros(n, np.int32), "global_lo": np.full(n, np.nan),
               "global_scale": np.full(n, np.nan), "patches_lo": np.full((n, kmax), np.nan),
               "patches_scale": np.full((n, kmax), np.nan), "global_err": np.zeros((n, 2)),
               "patches_err": np.zeros((n, kmax, 2))}
        for i, r in enumerate(self._rows):
            if r["global"].shape != v or r["patches"].shape[1:] != p:
                raise ValueError(f"{self.final_path}: sample {self.keys[i]!r} has global "
                                 f"{r['global'].shape} / patches {r['patches'].shape}, but this shard "
                                 f"holds {v} / [*, {p[0]}, {p[1]}]; one view size per store")
            k = r["patches"].shape[0]
            out["global"][i], out["patches"][i, :k], out["num_patches"][i] = r["global"], r["patches"], k
            for part, key, count in (("global", "gp", None), ("patches", "pp", k)):
                prm = r[key]
                sl = (i,) if count is None else (i, slice(0, count))
                if "lo" in prm:
                    out[f"{part}_lo"][sl] = prm["lo"][0] if count is None else prm["lo"]
                    out[f"{part}_scale"][sl] = prm["scale"][0] if count is None else prm["scale"]
                err = np.stack([prm["max_err_rel"], prm["mean_err_rel"]], -1)  # [K, 2]
                out[f"{part}_err"][sl] = err[0] if count is None else err
        return out

    def _finish(self) -> Path:
        import zarr

        group = zarr.open_group(str(self._tmp), mode="w", zarr_format=3)
        _put_strings(group, "keys", self.keys)
        if self.kind == "views":
            rgb = np.stack([r["rgb"] for r in self._rows]) if self._rows else np.zeros((0, 1, 1, 3), np.uint8)
            _put(group, "rgb", rgb)  # [N, V, V, 3]
            _put_strings(group, "meta", [r["meta"] for r in self._rows])
            # one metadata write (attrs.update rewrites zarr.json once per key)
            group.update_attributes({"kind": "views", "schema_version": SCHEMA_VERSION})
        else:
            words = _label_words_codecs(get_spec(self.codec))
            for name, arr in self._label_arrays().items():
                maps = name in ("global", "patches") and arr.dtype == np.uint16  # quantized words
                _put(group, name, arr, chunk_first=max(1, arr.shape[0]), codecs=words if maps else None)
            spec = self._rows[0]["gp"]["spec"] if self._rows else None
            group.update_attributes({"kind": "teacher", "schema_version": SCHEMA_VERSION,
                                     "spec": spec, **self.header})
        self._rows = []
        atomic.commit(self._tmp, self.final_path)
        return self.final_path

    def _discard(self) -> None:
        self._rows = []
        atomic.remove_path(self._tmp)


def _params(attrs: dict, part: str, shape: list[int], lo, scale, err: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {"codec": attrs["codec"], "spec": dict(attrs["spec"]), "shape": shape}
    if attrs["spec"]["bits"] != 0:
        out["lo"], out["scale"] = [float(x) for x in lo], [float(x) for x in scale]
    out["max_err_rel"], out["mean_err_rel"] = err[:, 0].tolist(), err[:, 1].tolist()
    return out


class ZarrShardReader:
    """Reads one ``.zarr`` shard; iterate decoded ``ViewSample`` / ``LabelSample``."""

    fmt = "zarr"

    def __init__(self, path: str | Path) -> None:
        import zarr

        from . import zarr_delta2d  # noqa: F401  registers the label words' codec with zarr

        self.path = Path(path)
        if not (self.path / "zarr.json").is_file():
            raise ValueError(f"{self.path}: not a zarr shard; run `depthdistill shards validate`")
        self.group = zarr.open_group(str(self.path), mode="r")
        self.attrs = dict(self.group.attrs)
        self.kind = self.attrs.get("kind")

    def keys(self) -> list[str]:
        return [str(k) for k in self.group["keys"][:]]

    def __len__(self) -> int:
        return int(self.group["keys"].shape[0])

    def __iter__(self) -> Iterator[ViewSample | LabelSample]:
        keys = self.keys()
        if self.kind == "views":
            rgb, meta = self.group["rgb"], self.group["meta"][:]
            for i, key in enumerate(keys):
                yield ViewSample(key=key, view=np.asarray(rgb[i]), meta=json.loads(str(meta[i])))
            return
        a = {name: self.group[name] for name in ("global", "patches")}
        small = {name: self.group[name][:] for name in (
            "num_patches", "global_lo", "global_scale", "patches_lo", "patches_scale",
            "global_err", "patches_err")}
        header = {k: self.attrs.get(k) for k in ("teacher", "fingerprint", "space", "codec")}
        for i, key in enumerate(keys):
            k = int(small["num_patches"][i])
            g_words, p_words = np.asarray(a["global"][i]), np.asarray(a["patches"][i, :k])
            gp = _params(self.attrs, "global", list(g_words.shape), small["global_lo"][i:i + 1],
                         small["global_scale"][i:i + 1], small["global_err"][i:i + 1])
            pp = _params(self.attrs, "patches", list(p_words.shape), small["patches_lo"][i, :k],
                         small["patches_scale"][i, :k], small["patches_err"][i, :k])
            info = {**header, "key": key, "global": gp, "patches": pp}
            yield LabelSample(key=key, global_map=from_words(g_words, gp),
                              patches=from_words(p_words, pp), params=info)
