"""Teachers (DAv2 via transformers, GenPercept via diffusers, DPT), their kind table, model configs, the registry.

Names are re-exported lazily (PEP 562): `import depthdistill.models` stays cheap, and a DAv2
user never imports diffusers.

    from depthdistill.models import load_teacher, resolve_model_path
    teacher = load_teacher(cfg.teacher("dav2"), device="cuda")
    maps = teacher.predict(images_uint8_bhwc)      # float32 [B, H, W], teacher.space
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Teacher": "base", "TeacherOutput": "base", "to_float_images": "base",
    "DepthAnythingTeacher": "dav2", "capture_neck_inputs": "dav2",
    "GenPerceptTeacher": "genpercept", "genpercept_one_step": "genpercept", "save_genpercept_folder": "genpercept",
    "dav2_config": "configs", "build_dav2": "configs", "unet_config": "configs", "vae_config": "configs",
    "build_genpercept": "configs", "count_parameters": "configs",
    "load_teacher": "registry", "fingerprint_teacher": "registry", "resolve_model_path": "hub",
    "KINDS": "kinds", "guess_kind": "kinds", "teacher_class": "kinds",
    "compute_empty_prompt_embedding": "prompt_embedding", "tiny_prompt_embedding": "prompt_embedding",
    "load_prompt_embedding": "prompt_embedding", "save_prompt_embedding": "prompt_embedding",
    "teacher_fingerprint": "fingerprint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)
