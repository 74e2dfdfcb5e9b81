"""Decode encoded image bytes to uint8 RGB, turning every kind of bad input into a reason.

A labeling run never stops for one bad image: `decode_image` raises `BadImageError` with a
short machine-friendly reason (`zero-byte`, `not-an-image`, `truncated`, `too-many-pixels`,
...) and the caller records it in `bad_inputs.jsonl`. Everything decodable is normalised to
`uint8 [H, W, 3]` RGB in its display orientation (EXIF rotation applied).
"""

from __future__ import annotations

import hashlib
import io
import warnings

import numpy as np

# PIL's own default limit (~179 MP; an 89 MP SA-1B-sized photo passes, a bomb does not).
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970


class BadImageError(ValueError):
    """An input image that cannot be labeled; `reason` is the short tag written to disk."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def content_hash(data: bytes) -> str:
    """sha256 of the encoded bytes (the plan's content hash and duplicate detector)."""
    return hashlib.sha256(data).hexdigest()


def _to_rgb(img) -> np.ndarray:
    """Any PIL mode -> uint8 [H, W, 3] RGB (16-bit scaled, CMYK/L/LA/P/RGBA converted)."""
    from PIL import Image

    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)  # [H, W]
        # 16-bit PNGs span 0..65535; a 32-bit "I" image is treated the same way.
        arr = np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)  # [H, W, 3]
    if mode == "F":
        arr = np.asarray(img).astype(np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # alpha over white
        img = Image.alpha_composite(background, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")  # CMYK, YCbCr, L, 1, ...
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))  # [H, W, 3]


def _reason(err: BaseException) -> str:
    """'truncated' for data that ends early (header or pixels), else 'corrupt'."""
    text = str(err).lower()
    return "truncated" if "truncated" in text or isinstance(err, EOFError) else "corrupt"


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Encoded bytes -> uint8 RGB [H, W, 3]; raises BadImageError with the reason otherwise."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if len(data) == 0:
        raise BadImageError("zero-byte", "the file is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as err:
            raise BadImageError("not-an-image", str(err)) from err
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise BadImageError("too-many-pixels", str(err)) from err
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise BadImageError(_reason(err), str(err)) from err
        width, height = img.size
        if width * height > max_pixels:
            raise BadImageError(
                "too-many-pixels", f"{width}x{height} > max_image_pixels={max_pixels}"
            )
        try:
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise BadImageError("too-many-pixels", str(err)) from err
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise BadImageError(_reason(err), str(err)) from err
