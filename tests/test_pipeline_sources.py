"""Sources and decoding: every collection kind and every bad-input kind, on tiny files."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from depthdistill.pipeline.decode import BadImageError, content_hash, decode_image
from depthdistill.pipeline.sources import (
    FolderSource, ListSource, TarSource, WorldSource, open_source,
)


def _encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _gradient(h: int = 20, w: int = 30) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 8, yy * 12, (xx + yy) * 4], axis=-1).astype(np.uint8)  # [H, W, 3]


# -- decode ----------------------------------------------------------------------------------

def test_decode_rgb_png_is_exact():
    rgb = _gradient()
    out = decode_image(_encode(Image.fromarray(rgb)))
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, rgb)


def test_decode_grayscale_becomes_rgb():
    gray = (np.arange(20 * 30).reshape(20, 30) % 256).astype(np.uint8)
    out = decode_image(_encode(Image.fromarray(gray, mode="L")))
    assert out.shape == (20, 30, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_decode_16bit_png_scales_to_8bit():
    arr = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    img = Image.fromarray(arr)  # mode I;16
    out = decode_image(_encode(img))
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 255, 128])


def test_decode_rgba_composites_over_white_and_palette_converts():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half fully transparent
    out = decode_image(_encode(Image.fromarray(rgba, mode="RGBA")))
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[3, 3], [255, 255, 255])
    pal = Image.fromarray(_gradient()).convert("P")
    out = decode_image(_encode(pal))
    assert out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGB")))


def test_decode_cmyk_jpeg_converts_to_rgb():
    cmyk = Image.fromarray(_gradient()).convert("CMYK")
    out = decode_image(_encode(cmyk, "JPEG", quality=95))
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    ref = np.asarray(cmyk.convert("RGB")).astype(int)
    assert np.abs(out.astype(int) - ref).mean() < 6


def test_decode_honours_exif_rotation():
    rgb = _gradient(10, 30)
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    out = decode_image(_encode(img, "JPEG", quality=95, exif=exif.tobytes()))
    assert out.shape == (30, 10, 3)  # displayed portrait


@pytest.mark.parametrize("data, reason", [
    (b"", "zero-byte"),
    (b"this is not an image at all", "not-an-image"),
])
def test_decode_bad_bytes_give_reasons(data, reason):
    with pytest.raises(BadImageError) as info:
        decode_image(data)
    assert info.value.reason == reason


def test_decode_truncated_jpeg():
    data = _encode(Image.fromarray(_gradient(64, 64)), "JPEG", quality=90)
    with pytest.raises(BadImageError) as info:
        decode_image(data[: len(data) // 2])
    assert info.value.reason == "truncated"


def test_decode_pixel_limit_is_a_reason_not_a_crash():
    data = _encode(Image.fromarray(_gradient(20, 30)))
    with pytest.raises(BadImageError, match="max_image_pixels=599") as info:
        decode_image(data, max_pixels=599)
    assert info.value.reason == "too-many-pixels"
    assert decode_image(data, max_pixels=600).shape == (20, 30, 3)


def test_content_hash_is_sha256_of_bytes():
    assert content_hash(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


# -- sources ---------------------------------------------------------------------------------

def _write_png(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_encode(Image.fromarray(_gradient() + np.uint8(seed))))


def test_folder_source_ids_are_sorted_relative_paths(tmp_path):
    _write_png(tmp_path / "b" / "x.png", 1)
    _write_png(tmp_path / "a.png", 2)
    (tmp_path / "notes.txt").write_text("not an image")
    src = open_source(str(tmp_path))
    assert isinstance(src, FolderSource)
    refs = src.list_refs()
    assert [r.id for r in refs] == ["a.png", "b/x.png"]
    assert [r.index for r in refs] == [0, 1]
    assert src.read_bytes(refs[1]) == (tmp_path / "b" / "x.png").read_bytes()


def test_list_source_relative_to_list_file(tmp_path):
    _write_png(tmp_path / "imgs" / "one.png", 1)
    lst = tmp_path / "list.txt"
    lst.write_text("# comment\nimgs/one.png\n\nimgs/missing.png\n")
    src = open_source(str(lst))
    assert isinstance(src, ListSource) and src.name == "list"
    refs = src.list_refs()
    assert [r.id for r in refs] == ["imgs/one.png", "imgs/missing.png"]
    assert src.read_bytes(refs[0]) == (tmp_path / "imgs" / "one.png").read_bytes()
    with pytest.raises(OSError):
        src.read_bytes(refs[1])


def _img2dataset_tar(path, n):
    """img2dataset's webdataset output: 000000000.jpg + .json + .txt per sample."""
    with tarfile.open(path, "w") as tar:
        for i in range(n):
            for ext, data in ((".jpg", _encode(Image.fromarray(_gradient() + np.uint8(i)), "JPEG")),
                              (".json", json.dumps({"key": f"{i:09d}"}).encode()),
                              (".txt", b"a caption")):
                info = tarfile.TarInfo(f"{i:09d}{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_tar_source_img2dataset_layout(tmp_path):
    _img2dataset_tar(tmp_path / "00000.tar", 3)
    _img2dataset_tar(tmp_path / "00001.tar", 2)
    (tmp_path / "00000_stats.json").write_text("{}")
    src = open_source(str(tmp_path))
    assert isinstance(src, TarSource)
    refs = src.list_refs()
    assert [r.id for r in refs] == ["00000/000000000", "00000/000000001", "00000/000000002",
                                    "00001/000000000", "00001/000000001"]
    data = src.read_bytes(refs[4])
    assert decode_image(data).shape == (20, 30, 3)
    single = open_source(str(tmp_path / "00001.tar"))
    assert [r.id for r in single.list_refs()] == ["00001/000000000", "00001/000000001"]
    import pickle
    clone = pickle.loads(pickle.dumps(src))  # open handles do not travel
    assert clone.read_bytes(refs[0]) == src.read_bytes(refs[0])


def test_world_source_spec_parsing():
    src = open_source("world://unlabeled?n=5&seed=3")
    assert isinstance(src, WorldSource)
    assert (src.split, src.n, src.seed) == ("unlabeled", 5, 3)
    assert [r.id for r in src.list_refs()][:2] == ["unlabeled/000000", "unlabeled/000001"]
    with pytest.raises(ValueError, match="n must be > 0"):
        open_source("world://unlabeled?n=0")


def test_open_source_rejects_missing_path(tmp_path):
    with pytest.raises(ValueError, match="no such file or folder"):
        open_source(str(tmp_path / "nope"))
