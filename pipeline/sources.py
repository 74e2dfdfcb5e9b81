"""Image collections: a folder tree, `.tar` shards, a list file, or `world://unlabeled?n=N`.

A source lists `ImageRef`s in a stable order with stable ids (relative path, tar key or world
index) and reads their encoded bytes. Sources are small picklable objects so Ray actors can
re-open them; decoding and bad-input handling live in `decode.py`.
"""

from __future__ import annotations

import glob
import io
import logging
import os
import re
import tarfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, urlparse

from depthdistill.config import WORLD_IMAGE_HW

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


@dataclass(frozen=True)
class ImageRef:
    """One image of a collection. `id` is stable; `locator` says where its bytes live
    (relative path, `tarname::member`, or world index) and goes into the plan."""

    index: int
    id: str
    locator: str


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "images"


class ImageSource(ABC):
    """Base class: `name` (collection name), `spec`, `iter_refs()`, `read_bytes(ref)`.

    `iter_refs` streams the listing (the planner takes it in chunks, so a driver never holds
    the listing of millions of images); `list_refs` is the same as a list."""

    name: str
    spec: str

    @abstractmethod
    def iter_refs(self) -> Iterator[ImageRef]:
        """Every image of the collection, in a stable order."""

    def list_refs(self) -> list[ImageRef]:
        return list(self.iter_refs())

    @abstractmethod
    def read_bytes(self, ref: ImageRef) -> bytes:
        """The encoded bytes of one image."""


class FolderSource(ImageSource):
    """Every image file under a folder (recursive), ids = POSIX paths relative to the root.

    Listed folder by folder (`os.walk`, names sorted: a folder's files, then its subfolders),
    so only one folder's entries are in memory at a time."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.spec = str(root)
        self.name = _slug(self.root.resolve().name)

    def iter_refs(self) -> Iterator[ImageRef]:
        index = 0
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            rel = Path(folder).relative_to(self.root)
            for name in sorted(files):
                if _is_image_name(name):
                    path = (rel / name).as_posix()
                    yield ImageRef(index, path, path)
                    index += 1

    def read_bytes(self, ref: ImageRef) -> bytes:
        return (self.root / ref.locator).read_bytes()


class ListSource(ImageSource):
    """A text file of image paths, one per line (relative to the list file's folder);
    blank lines and `#` comments are ignored. Ids are the paths as written."""

    def __init__(self, list_file: str | Path) -> None:
        self.list_file = Path(list_file)
        self.spec = str(list_file)
        self.name = _slug(self.list_file.stem)

    def iter_refs(self) -> Iterator[ImageRef]:
        seen: set[str] = set()
        index = 0
        with open(self.list_file) as fh:
            for line in fh:
                path = line.strip()
                if not path or path.startswith("#") or path in seen:  # a line twice is one image
                    continue
                seen.add(path)
                yield ImageRef(index, path, path)
                index += 1

    def read_bytes(self, ref: ImageRef) -> bytes:
        path = Path(ref.locator)
        if not path.is_absolute():
            path = self.list_file.parent / path
        return path.read_bytes()


class TarSource(ImageSource):
    """Images inside `.tar` shards (webdataset / img2dataset layout). A sample's key is the
    member name up to its first dot; its image is the first member with an image extension
    (`.json`/`.txt` siblings are ignored). Ids are `<tar stem>/<key>`."""

    def __init__(self, tars: list[Path], spec: str, name: str) -> None:
        self.tars = sorted(tars)
        self.spec = spec
        self.name = _slug(name)
        self._open_tars: dict[str, tarfile.TarFile] = {}

    def iter_refs(self) -> Iterator[ImageRef]:
        index = 0
        for tar_path in self.tars:  # one tar's member names in memory at a time
            with tarfile.open(tar_path, "r:") as tar:
                keys: dict[str, str] = {}
                for member in tar:
                    if not member.isfile() or not _is_image_name(member.name):
                        continue
                    folder, _, base = member.name.rpartition("/")
                    key = f"{folder}/{base.split('.', 1)[0]}" if folder else base.split(".", 1)[0]
                    keys.setdefault(key, member.name)
            for key in sorted(keys):
                yield ImageRef(index, f"{tar_path.stem}/{key}", f"{tar_path.name}::{keys[key]}")
                index += 1

    def read_bytes(self, ref: ImageRef) -> bytes:
        tar_name, member_name = ref.locator.split("::", 1)
        tar = self._open_tars.get(tar_name)
        if tar is None:  # keep each tar open: its member index is read once, not per image
            tar_path = next(p for p in self.tars if p.name == tar_name)
            tar = self._open_tars[tar_name] = tarfile.open(tar_path, "r:")
        handle = tar.extractfile(member_name)
        if handle is None:
            raise OSError(f"{ref.locator}: not a regular file in the tar")
        return handle.read()

    def __getstate__(self) -> dict:  # open file handles do not travel to Ray workers
        state = dict(self.__dict__)
        state["_open_tars"] = {}
        return state


class WorldSource(ImageSource):
    """`world://<split>?n=N[&seed=S]`: images rendered on the fly by depthdistill.world.
    The pipeline only uses the RGB (encoded as PNG so it hashes like any file)."""

    def __init__(self, spec: str, image_size: tuple[int, int] = WORLD_IMAGE_HW) -> None:
        parsed = urlparse(spec)
        query = parse_qs(parsed.query)
        self.split = parsed.netloc or parsed.path.strip("/")
        try:
            self.n = int(query.get("n", ["64"])[0])
            self.seed = int(query.get("seed", ["0"])[0])
        except ValueError as err:
            raise ValueError(f"images.source={spec!r}: n and seed must be integers, "
                             "e.g. world://unlabeled?n=64") from err
        if self.n <= 0:
            raise ValueError(f"images.source={spec!r}: n must be > 0")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.spec = spec
        self.name = _slug(f"world-{self.split}-n{self.n}")

    def iter_refs(self) -> Iterator[ImageRef]:
        return (ImageRef(i, f"{self.split}/{i:06d}", str(i)) for i in range(self.n))

    def read_bytes(self, ref: ImageRef) -> bytes:
        from PIL import Image

        from depthdistill.world import render

        height, width = self.image_size
        sample = render(self.split, int(ref.locator), seed=self.seed, height=height, width=width)
        buf = io.BytesIO()
        Image.fromarray(sample.rgb).save(buf, format="PNG", compress_level=1)
        return buf.getvalue()


def open_source(spec: str, *, image_size: tuple[int, int] = WORLD_IMAGE_HW) -> ImageSource:
    """Pick the source kind from `spec` (the `images.source` key or `--images`)."""
    spec = str(spec)
    if spec.startswith("world://"):
        return WorldSource(spec, image_size)
    if any(ch in spec for ch in "*?["):
        tars = [Path(p) for p in glob.glob(spec) if p.endswith(".tar")]
        if not tars:
            raise ValueError(f"images.source={spec!r}: the glob matches no .tar files")
        return TarSource(tars, spec, Path(spec).parent.name)
    path = Path(spec)
    if not path.exists():
        raise ValueError(f"images.source={spec!r}: no such file or folder; give a folder of "
                         "images, a .tar, a list file (.txt) or world://unlabeled?n=N")
    if path.is_dir():
        has_images = any(_is_image_name(p.name) for p in path.rglob("*"))
        tars = sorted(path.glob("*.tar"))
        if tars and not has_images:
            return TarSource(tars, spec, path.resolve().name)
        return FolderSource(path)
    if path.suffix == ".tar":
        return TarSource([path], spec, path.stem)
    if path.suffix in (".txt", ".lst", ".list"):
        return ListSource(path)
    raise ValueError(f"images.source={spec!r}: unknown kind; use a folder, a .tar file, "
                     "a list file ending .txt, or world://unlabeled?n=N")
