"""Where model weights come from: `resolve_model_path` and `from_pretrained_checked`.

A model reference is one of
- `embedded://<name>`: a save_pretrained folder under `depthdistill/assets/teachers/<name>/`
  (written by `make teachers`), loaded exactly like a downloaded model;
- a local folder written by save_pretrained (or a hub snapshot copied by hand);
- a Hugging Face hub id (`depth-anything/Depth-Anything-V2-Large-hf`), loaded from the local
  cache, downloaded where the machine has internet.
Every failure is a ValueError that names the reference and says how to fix it.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

logger = logging.getLogger(__name__)

EMBEDDED_SCHEME = "embedded://"
EMBEDDED_ROOT = Path(__file__).resolve().parents[1] / "assets" / "teachers"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def _embedded_names() -> list[str]:
    root = EMBEDDED_ROOT
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _looks_like_path(model: str) -> bool:
    return (model.startswith(("/", "./", "../", "~")) or "\\" in model or model.count("/") > 1
            or model.endswith("/"))


def resolve_model_path(model: str) -> str:
    """`embedded://x` -> its folder; an existing folder -> its absolute path; a hub id -> itself.

    Raises ValueError for a missing embedded teacher (run `make teachers`), a missing folder,
    a file instead of a folder, or a string that is neither a path nor a hub id.
    """
    if model.startswith(EMBEDDED_SCHEME):
        name = model[len(EMBEDDED_SCHEME):]
        folder = EMBEDDED_ROOT / name
        if not name or "/" in name or not folder.is_dir():
            have = ", ".join(_embedded_names()) or "none"
            raise ValueError(f"{model}: no embedded teacher folder {folder} (embedded teachers here: {have}); "
                             "run `make teachers` to train and save the tiny teachers, or set the teacher's "
                             "model to a hub id or a local folder")
        return str(folder)
    if "://" in model:
        raise ValueError(f"{model}: unknown scheme; use embedded://<name>, a local folder or a hub id")
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{model}: is a file; point the teacher at the folder written by save_pretrained "
                             "(the one holding config.json)")
        return str(path.resolve())
    if _looks_like_path(model) or not _HUB_ID.match(model):
        raise ValueError(f"{model}: folder not found (and not a hub id like 'owner/name'); check the path "
                         "or use a hub id such as depth-anything/Depth-Anything-V2-Small-hf")
    return model


def is_local(id_or_path: str) -> bool:
    return Path(id_or_path).is_dir()


def hub_unavailable_message(model: str, exc: BaseException) -> str:
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
    return (f"{model}: not a local folder and not in the local Hugging Face cache ({cache}); weights can't be "
            f"downloaded here ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            f"On a machine with internet run `hf download {model}` and copy the cache, or save the model "
            "into a folder and set the teacher's `model:` to that folder's path")


def from_pretrained_checked(cls, id_or_path: str, *, subfolder: str | None = None, **kwargs):
    """`cls.from_pretrained` with one clear ValueError for a bad folder or an uncached hub id.

    Local folders are always loaded with local_files_only=True (no hub traffic at all).
    """
    local = is_local(id_or_path)
    if local:
        kwargs["local_files_only"] = True
        where = Path(id_or_path, subfolder) if subfolder else Path(id_or_path)
        if not (where / "config.json").is_file():
            raise ValueError(f"{where}: no config.json, so this is not a {cls.__name__} folder written by "
                             "save_pretrained; point the teacher's model at such a folder")
    if subfolder:
        kwargs["subfolder"] = subfolder
    try:
        return cls.from_pretrained(id_or_path, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        if local:
            raise ValueError(f"{id_or_path}{'/' + subfolder if subfolder else ''}: could not load a "
                             f"{cls.__name__} ({exc}); re-save it with save_pretrained") from exc
        raise ValueError(hub_unavailable_message(id_or_path, exc)) from exc
