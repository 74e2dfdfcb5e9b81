"""A Zarr v3 array-to-array codec: the label codec's predictor and byte planes for uint16 words.

Zarr's own filters have no 2-D predictor and no zig-zag: numcodecs' ``Delta`` differences the
flattened chunk, and a small negative step wraps to ``0xFFxx``, so the high bytes are a mix of
0x00 and 0xFF; Blosc's shuffle splits bytes per block, which costs 10-25 % at fast levels. This
codec does what the tar path does before zstd (``codec._predict(.., "delta2d")``: horizontal then
vertical difference and zig-zag on the last two axes, then ``codec._planes``: all low bytes, then
all high bytes), and keeps the chunk's shape and dtype: the encoded chunk is a uint16 array whose
little-endian bytes are the two planes. Followed by ``bytes`` (little endian) and Zarr's standard
``zstd`` codec, a Zarr label shard holds the same bytes per label as a tar one
(``bench/bench_codec.py`` prints both). The arrays still read back as the plain quantised words.

The codec is registered with Zarr on import of this module and through the ``zarr.codecs``
entry point in ``pyproject.toml``, so ``zarr.open_group(store)`` decodes it in any process
where depthdistill is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayArrayCodec
from zarr.registry import register_codec

from .codec import _planes, _predict, _unplanes, _unpredict

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import NDBuffer

CODEC_NAME = "depthdistill.delta2d"


def _as_planes(x: np.ndarray) -> np.ndarray:
    """[..., H, W] -> [K, H, W] (a view when contiguous); 1-D chunks are one row."""
    if x.ndim == 1:
        return x.reshape(1, 1, -1)
    return x.reshape(-1, *x.shape[-2:])


@dataclass(frozen=True)
class Delta2DCodec(ArrayArrayCodec):
    """Lossless 2-D delta + zig-zag + byte planes of uint16 chunks (shape and dtype kept)."""

    is_fixed_size = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Delta2DCodec":
        if data.get("name") != CODEC_NAME:
            raise ValueError(f"expected codec {CODEC_NAME!r}, got {data.get('name')!r}")
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return {"name": CODEC_NAME, "configuration": {}}

    def validate(self, *, shape, dtype, chunk_grid) -> None:  # noqa: ANN001 (zarr's signature)
        if np.dtype(dtype.to_native_dtype()) != np.uint16:
            raise ValueError(f"codec {CODEC_NAME} stores uint16 label words; "
                             f"this array is {dtype}")

    def resolve_metadata(self, chunk_spec: "ArraySpec") -> "ArraySpec":
        return chunk_spec

    def _encode_sync(self, chunk_array: "NDBuffer", chunk_spec: "ArraySpec") -> "NDBuffer":
        x = np.ascontiguousarray(chunk_array.as_numpy_array(), dtype=np.uint16)
        planes = _planes(_predict(_as_planes(x), "delta2d"))  # bytes: low plane, high plane
        out = np.frombuffer(planes, dtype="<u2").astype(np.uint16).reshape(x.shape)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(out)

    def _decode_sync(self, chunk_array: "NDBuffer", chunk_spec: "ArraySpec") -> "NDBuffer":
        y = np.ascontiguousarray(chunk_array.as_numpy_array(), dtype=np.uint16)
        residuals = _unplanes(y.astype("<u2").tobytes(), y.size)  # [N] uint16
        x = _unpredict(_as_planes(residuals.reshape(y.shape)), "delta2d").reshape(y.shape)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(x)

    async def _encode_single(self, chunk_array: "NDBuffer", chunk_spec: "ArraySpec") -> "NDBuffer":
        return self._encode_sync(chunk_array, chunk_spec)

    async def _decode_single(self, chunk_array: "NDBuffer", chunk_spec: "ArraySpec") -> "NDBuffer":
        return self._decode_sync(chunk_array, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, _chunk_spec: "ArraySpec") -> int:
        return input_byte_length


register_codec(CODEC_NAME, Delta2DCodec)
