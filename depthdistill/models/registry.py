"""`load_teacher(cfg, device)` and `fingerprint_teacher(cfg)`: any configured teacher, by kind.

The kind (`cfg.kind`, a key of `models.kinds.KINDS`) names the Teacher class; the class loads
itself (`load`) and fingerprints a local folder without building the model
(`fingerprint_folder`). Where the weights come from is `models.hub.resolve_model_path`.
Every failure is a ValueError that names the reference and says how to fix it.
"""

from __future__ import annotations

import logging

from depthdistill.models.hub import is_local, resolve_model_path
from depthdistill.models.kinds import teacher_class

logger = logging.getLogger(__name__)


def load_teacher(cfg, device="cpu"):
    """Build the teacher a `TeacherConfig` describes, on `device` (never chosen here)."""
    teacher = teacher_class(cfg.kind).load(cfg, resolve_model_path(cfg.model), device)
    logger.info("loaded %r from %s", teacher, cfg.model)
    return teacher


def fingerprint_teacher(cfg) -> tuple[str, str]:
    """(fingerprint, space) of a configured teacher; equal to `load_teacher(cfg).fingerprint`.

    For a local or embedded folder only the weight files are hashed (no model is built, no
    transformers / diffusers import); a hub id is loaded on CPU once.
    """
    model = resolve_model_path(cfg.model)
    if not is_local(model):
        teacher = load_teacher(cfg, device="cpu")
        return teacher.fingerprint, teacher.space
    return teacher_class(cfg.kind).fingerprint_folder(model, cfg)
