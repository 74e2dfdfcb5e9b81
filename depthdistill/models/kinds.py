"""The table of teacher kinds: one entry per kind of teacher model the project can run.

    KINDS["dav2"].input_multiple          # 14
    guess_kind("Intel/dpt-large")         # "dpt"
    teacher_class("genpercept")           # GenPerceptTeacher (imported on first use)

An entry says which class implements the kind (a `models.base.Teacher` with the classmethods
`load(cfg, path, device)` and `fingerprint_folder(path, cfg)`), its input multiple, the input
size its hub checkpoints expect, the config options only it reads, and how a save_pretrained
folder or a hub id is recognised as this kind. Adding a teacher kind = one module with its
class + one entry here; config validation, the loader, the fingerprint and `depthdistill eval`'s
model guessing all read this table. Importing it is cheap (no torch): `config.py` uses it.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


def _config_model_type(folder: Path) -> str:
    try:
        return str(json.loads((folder / "config.json").read_text()).get("model_type", ""))
    except (OSError, ValueError):
        return ""


def _is_genpercept_folder(folder: Path) -> bool:
    return (folder / "vae").is_dir() and any(p.name.startswith("unet") for p in folder.iterdir() if p.is_dir())


@dataclass(frozen=True)
class TeacherKind:
    name: str
    module: str  # the module holding the Teacher class
    class_name: str
    input_multiple: int  # inputs must be multiples of this (the patch / VAE stride)
    hub_input_size: int  # the input side its hub checkpoints are run at
    description: str
    is_folder: Callable[[Path], bool]  # a save_pretrained folder of this kind?
    is_hub_id: Callable[[str], bool]  # a hub id of this kind? (the catch-all kind says True)
    options: tuple[str, ...] = ()  # TeacherConfig fields only this kind reads


KINDS: dict[str, TeacherKind] = {
    "genpercept": TeacherKind(
        "genpercept", "depthdistill.models.genpercept", "GenPerceptTeacher", 8, 768,
        "GenPercept: SD2.1 UNet + VAE (diffusers), one deterministic step",
        is_folder=_is_genpercept_folder, is_hub_id=lambda s: "genpercept" in s.lower(),
        options=("unet_subfolder", "prompt_embedding")),
    "dpt": TeacherKind(
        "dpt", "depthdistill.models.dpt", "DPTTeacher", 32, 384,
        "MiDaS v3 / DPT (transformers DPTForDepthEstimation)",
        is_folder=lambda p: _config_model_type(p) == "dpt",
        is_hub_id=lambda s: any(k in s.lower() for k in ("dpt", "midas"))),
    "dav2": TeacherKind(
        "dav2", "depthdistill.models.dav2", "DepthAnythingTeacher", 14, 518,
        "Depth Anything V2 and any transformers depth-estimation model",
        is_folder=lambda p: (p / "config.json").is_file(), is_hub_id=lambda s: True),
}
TEACHER_KINDS = tuple(KINDS)
# recognition order: the specific kinds first, the catch-all (any transformers depth model) last
_GUESS_ORDER = ("genpercept", "dpt", "dav2")


def kind(name: str) -> TeacherKind:
    if name not in KINDS:
        raise ValueError(f"teacher kind {name!r} is unknown; use one of {', '.join(KINDS)}")
    return KINDS[name]


def teacher_class(name: str):
    """The Teacher subclass of a kind (its module is imported now, not at table import)."""
    k = kind(name)
    return getattr(importlib.import_module(k.module), k.class_name)


def guess_kind(spec: str) -> str:
    """The kind of a model named by an embedded://, folder or hub-id string.

    ValueError for a file, or a string that is none of those."""
    if spec.startswith("embedded://"):
        from depthdistill.models.hub import resolve_model_path

        spec = resolve_model_path(spec)
    path = Path(spec)
    if path.is_dir():
        return next((n for n in _GUESS_ORDER if KINDS[n].is_folder(path)), "dav2")
    if path.exists():
        raise ValueError(f"--model {spec}: a file, not a model folder; pass the save_pretrained folder")
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return next(n for n in _GUESS_ORDER if KINDS[n].is_hub_id(spec))
    raise ValueError(f"--model {spec}: no such folder, and not a hub id (owner/name), embedded://NAME "
                     "or teacher:NAME")
