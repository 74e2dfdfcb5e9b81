"""Label quantization: per-map affine uint quantization + a lossless predictor and compressor.

Labels stay in the teacher's own space (float32 maps of arbitrary affine scale). A *map* is
one 2-D array (a view's global label or one patch label). The ``q*`` codecs store each map as

    q = round((x - lo) / scale),  lo = min(x), scale = (max(x) - min(x)) / (2**bits - 1)

(``lo``/``scale`` float64 per map, kept in the params dict that goes into ``label.json``),
then apply a 2-D predictor (``delta2d``: residual ``x - left - up + upleft``, i.e. a delta
along x then along y, modulo 2**16), zig-zag the residuals so that small negatives become
small positives, split the uint16 words into byte planes and compress with zstd (level 1:
within 5 % of level 9's bytes at a third of its encode time, ``bench/bench_codec.py``). Planes
and slopes of a smooth disparity map leave near-zero residuals; only edges cost bytes.
Decoding is two cumulative sums — vectorised, no per-pixel loop.

``bench/bench_codec.py`` measured the alternatives (bits, filter, compressor, raw float16 /
float32); the table is in its docstring and ``DEFAULT_CODEC`` is its pick: ``q12`` stays
under 1 byte/pixel on every map family measured (0.18 / 0.46 / 0.71 B/px on smooth, 1e-3 and
1e-2 textured maps) with a max error of 1.2e-4 of the range (8x under the 1e-3 aim); at zstd
level 9, ``q16`` (7.7e-6) costs 0.27 / 0.89 / 1.28 B/px, float16 + zstd 0.31 / 0.84 / 1.28
B/px at up to 1.2e-3 error after alignment (over the aim), float32 + zstd 0.72 / 3.37 / 3.40
B/px. The quantisation error per map (max / mean absolute error relative to the map's value range) is measured at
encode time and returned with the params so that writers can record it.

**The default, ``png16``, is the plain one**: the same 12-bit words stored in containers every
tool reads, so a store needs no depthdistill to open: in tar shards one 16-bit grayscale PNG per
field (the form depth data sets already use; patches stacked vertically, ``[K*P, P]``), in Zarr
shards uint16 arrays with numcodecs' ``Delta`` and Blosc zstd. A label is
``lo[k] + words[k] * scale[k]`` with ``lo`` / ``scale`` from the sample's ``label.json``. It costs
1.3-1.5x the bytes of ``q12`` and ~3-8x its encode time (``bench/bench_codec.py``); ``q12`` stays
as the compact option (``labels.codec: q12``).

NaN / inf are refused with a ``NonFiniteLabelError`` naming the sample key.
"""

from __future__ import annotations

import io
import logging
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


class NonFiniteLabelError(ValueError):
    """A label map holds NaN or inf; the shard must not be marked done."""


@dataclass(frozen=True)
class CodecSpec:
    """How a stack of maps becomes bytes: ``bits`` 0 means raw floats of ``float_dtype``."""

    bits: int = 16
    filter: str = "delta2d"  # none | deltax | delta2d | png (the whole byte stage is a 16-bit PNG)
    compressor: str = "zstd"  # none | zlib | zstd | lzma | png
    level: int = 9
    float_dtype: str = "float32"  # only for bits == 0

    def to_dict(self) -> dict[str, Any]:
        return {"bits": self.bits, "filter": self.filter, "compressor": self.compressor,
                "level": self.level, "float_dtype": self.float_dtype}


CODECS: dict[str, CodecSpec] = {
    "png16": CodecSpec(bits=12, filter="png", compressor="png", level=6),
    "q16": CodecSpec(bits=16, filter="delta2d", compressor="zstd", level=1),
    "q12": CodecSpec(bits=12, filter="delta2d", compressor="zstd", level=1),
    "f16": CodecSpec(bits=0, filter="none", compressor="zstd", level=9, float_dtype="float16"),
    "f32": CodecSpec(bits=0, filter="none", compressor="zstd", level=9, float_dtype="float32"),
}
DEFAULT_CODEC = "png16"  # plain tools read it; bench/bench_codec.py: 1.3-1.5x q12's bytes
FILTERS = ("none", "deltax", "delta2d", "png")
COMPRESSORS = ("none", "zlib", "zstd", "lzma", "png")


def get_spec(codec: str | CodecSpec) -> CodecSpec:
    """A named codec (``labels.codec`` in stages.yaml) or a spec, validated."""
    if isinstance(codec, CodecSpec):
        spec = codec
    elif codec in CODECS:
        spec = CODECS[codec]
    else:
        raise ValueError(f"labels.codec: unknown label codec {codec!r}; use one of {sorted(CODECS)}")
    if spec.filter not in FILTERS or spec.compressor not in COMPRESSORS:
        raise ValueError(f"codec spec {spec}: filter must be one of {FILTERS}, "
                         f"compressor one of {COMPRESSORS}")
    if (spec.filter == "png") != (spec.compressor == "png") or (spec.filter == "png" and spec.bits == 0):
        raise ValueError(f"codec spec {spec}: a PNG codec has filter and compressor 'png' and quantized words")
    if spec.bits not in (0,) and not 1 <= spec.bits <= 16:
        raise ValueError(f"codec spec {spec}: bits must be 0 (raw floats) or 1..16")
    return spec


# ----------------------------------------------------------------------------- byte stages


def _compress(data: bytes, spec: CodecSpec) -> bytes:
    if spec.compressor == "zstd":
        import numcodecs
        return bytes(numcodecs.Zstd(level=spec.level).encode(data))
    if spec.compressor == "zlib":
        return zlib.compress(data, spec.level)
    if spec.compressor == "lzma":
        import lzma
        return lzma.compress(data, preset=min(spec.level, 9))
    return bytes(data)


def _decompress(data: bytes, spec: CodecSpec) -> bytes:
    if spec.compressor == "zstd":
        import numcodecs
        return bytes(numcodecs.Zstd().decode(data))
    if spec.compressor == "zlib":
        return zlib.decompress(data)
    if spec.compressor == "lzma":
        import lzma
        return lzma.decompress(data)
    return bytes(data)


def _predict(q: np.ndarray, kind: str) -> np.ndarray:
    """uint16 [K, H, W] -> zig-zagged residuals uint16 [K, H, W] (wrap-around arithmetic)."""
    r = q.astype(np.uint16, copy=True)
    if kind in ("deltax", "delta2d"):
        r[:, :, 1:] = q[:, :, 1:] - q[:, :, :-1]  # [K, H, W-1] mod 2**16
    if kind == "delta2d":
        r[:, 1:, :] = r[:, 1:, :] - r[:, :-1, :].copy()
    if kind == "none":
        return r
    s = r.view(np.int16)
    return ((s.astype(np.int32) << 1) ^ (s.astype(np.int32) >> 15)).astype(np.uint16)  # zig-zag


def _unpredict(r: np.ndarray, kind: str) -> np.ndarray:
    """Inverse of ``_predict``: uint16 [K, H, W] residuals -> uint16 [K, H, W] values."""
    if kind == "none":
        return r
    z = r.astype(np.int32)
    q = ((z >> 1) ^ -(z & 1)).astype(np.int16).view(np.uint16)  # un-zig-zag
    if kind == "delta2d":
        q = np.cumsum(q, axis=1, dtype=np.uint16)
    return np.cumsum(q, axis=2, dtype=np.uint16)


def _planes(words: np.ndarray) -> bytes:
    """uint16 [...] -> low-byte plane then high-byte plane (the ``shuffle`` filter)."""
    b = np.ascontiguousarray(words, dtype="<u2").view(np.uint8).reshape(-1, 2)  # [N, 2]
    return b.T.tobytes()


def _unplanes(data: bytes, count: int) -> np.ndarray:
    b = np.frombuffer(data, dtype=np.uint8)
    if b.size != 2 * count:
        raise ValueError(f"label codec: {b.size} bytes decoded, expected {2 * count}; corrupt shard")
    return np.ascontiguousarray(b.reshape(2, count).T).view("<u2").reshape(-1)  # [N]


# ----------------------------------------------------------------------------- maps


def _as_stack(maps: np.ndarray, key: str) -> np.ndarray:
    x = np.asarray(maps)
    if x.ndim not in (2, 3) or x.size == 0:
        raise ValueError(f"label {key!r}: expected a map [H, W] or a stack [K, H, W], got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"label {key!r}: expected float maps, got {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise NonFiniteLabelError(f"label {key!r}: {bad} NaN/inf values in a map of shape {x.shape}; "
                                  "the teacher produced non-finite output (check its precision / "
                                  "input) - the shard is not marked done")
    return x[None] if x.ndim == 2 else x  # [K, H, W]


def quantize(x: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 [K, H, W] -> (q uint16 [K, H, W], lo float64 [K], scale float64 [K])."""
    x64 = x.astype(np.float64)
    lo = x64.min(axis=(1, 2))  # [K]
    hi = x64.max(axis=(1, 2))  # [K]
    levels = float(2 ** bits - 1)
    scale = (hi - lo) / levels  # [K]
    safe = np.where(scale > 0, scale, 1.0)
    q = np.rint((x64 - lo[:, None, None]) / safe[:, None, None])
    return np.clip(q, 0, levels).astype(np.uint16), lo, scale


def dequantize(q: np.ndarray, lo: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """uint16 [K, H, W] + float64 [K] params -> float32 [K, H, W]."""
    lo = np.asarray(lo, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    return (lo[:, None, None] + q.astype(np.float64) * scale[:, None, None]).astype(np.float32)


def error_stats(x: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-map (max, mean) |x - y| relative to x's value range (range 0 -> absolute)."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    rng = x64.max(axis=(1, 2)) - x64.min(axis=(1, 2))  # [K]
    rng = np.where(rng > 0, rng, 1.0)
    err = np.abs(x64 - y64) / rng[:, None, None]  # [K, H, W]
    return err.max(axis=(1, 2)).tolist(), err.mean(axis=(1, 2)).tolist()


def to_words(maps: np.ndarray, codec: str | CodecSpec = DEFAULT_CODEC, *,
             key: str = "?") -> tuple[np.ndarray, dict[str, Any]]:
    """Float maps [H, W] / [K, H, W] -> (stored array [K, H, W], JSON-safe params + error).

    The stored array is uint16 (``q*`` codecs) or the raw float dtype (``f16``/``f32``): the
    array that Zarr shards hold; ``encode_maps`` adds the predictor and compressor on top.
    """
    x = _as_stack(maps, key)  # [K, H, W]
    spec = get_spec(codec)
    params: dict[str, Any] = {"codec": codec if isinstance(codec, str) else "custom",
                              "spec": spec.to_dict(), "shape": list(np.shape(maps))}
    if spec.bits == 0:
        words = x.astype(spec.float_dtype)  # [K, H, W]
        decoded = words.astype(np.float32)
    else:
        words, lo, scale = quantize(x, spec.bits)  # [K, H, W] uint16, [K], [K]
        params["lo"], params["scale"] = lo.tolist(), scale.tolist()
        decoded = dequantize(words, lo, scale)
    params["max_err_rel"], params["mean_err_rel"] = error_stats(x, decoded)
    return words, params


def from_words(words: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Inverse of ``to_words``: float32 with ``params["shape"]``."""
    shape = tuple(int(s) for s in params["shape"])
    if params["spec"]["bits"] == 0:
        return np.asarray(words).astype(np.float32).reshape(shape)
    stack = np.asarray(words).reshape((1, *shape) if len(shape) == 2 else shape)  # [K, H, W]
    return dequantize(stack, params["lo"], params["scale"]).reshape(shape)


def encode_png16(words: np.ndarray, level: int = 6) -> bytes:
    """uint16 [K, H, W] -> one 16-bit grayscale PNG of the maps stacked vertically [K*H, W]."""
    from PIL import Image

    buf = io.BytesIO()
    stack = np.ascontiguousarray(words, dtype=np.uint16).reshape(-1, words.shape[-1])  # [K*H, W]
    Image.fromarray(stack).save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def decode_png16(data: bytes, stack: tuple[int, ...]) -> np.ndarray:
    """Inverse of ``encode_png16``: PNG bytes -> uint16 ``stack`` ([K, H, W])."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        words = np.asarray(im)
    if words.dtype != np.uint16 or words.size != int(np.prod(stack)):
        raise ValueError(f"label codec: a {words.dtype} PNG of shape {words.shape}, expected uint16 {stack}; "
                         "corrupt shard")
    return words.reshape(stack)


def encode_maps(maps: np.ndarray, codec: str | CodecSpec = DEFAULT_CODEC, *,
                key: str = "?") -> tuple[bytes, dict[str, Any]]:
    """Encode float maps [H, W] or [K, H, W] -> (bytes, JSON-safe params incl. error stats)."""
    words, params = to_words(maps, codec, key=key)  # [K, H, W]
    spec = CodecSpec(**params["spec"])
    if spec.filter == "png":
        return encode_png16(words, spec.level), params
    if spec.bits == 0:
        raw = words.astype("<" + words.dtype.str[1:]).tobytes()
    else:
        raw = _planes(_predict(words, spec.filter))
    return _compress(raw, spec), params


def decode_maps(data: bytes, params: dict[str, Any]) -> np.ndarray:
    """Inverse of ``encode_maps``: float32 with ``params["shape"]``."""
    spec = CodecSpec(**params["spec"])
    shape = tuple(int(s) for s in params["shape"])
    stack = (1, *shape) if len(shape) == 2 else shape  # [K, H, W]
    count = int(np.prod(stack))
    if spec.filter == "png":
        return from_words(decode_png16(data, stack), params)
    raw = _decompress(data, spec)
    if spec.bits == 0:
        x = np.frombuffer(raw, dtype="<" + np.dtype(spec.float_dtype).str[1:])
        if x.size != count:
            raise ValueError(f"label codec: {x.size} values decoded, expected {stack}; corrupt shard")
        return from_words(x, params)
    words = _unpredict(_unplanes(raw, count).reshape(stack), spec.filter)  # [K, H, W]
    return from_words(words, params)
