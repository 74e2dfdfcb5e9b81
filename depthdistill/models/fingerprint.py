"""Teacher fingerprints: 16 hex chars naming (weights, precision, input size, settings).

A label folder is `<teacher>@<fingerprint>`; rerunning the same teacher finds it and skips the
work, while any change of weights, precision or input size gives a new folder. The hash is a
SHA-256 over content, so it is stable across processes and machines:
- weights loaded from a folder: the bytes of its weight files (`*.safetensors`, else `*.bin`),
  streamed from disk (~1-2 s for DAv2-L's 1.3 GB, no second copy in memory);
- weights from anywhere else (a hub id): the state dict tensors' names, dtypes, shapes, bytes;
- plus the model config (canonical JSON without library-version keys): a metric head's
  max_depth changes the labels with identical weights.
The folder's path or the hub id is not hashed: moving a folder keeps its labels valid.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Mapping

FINGERPRINT_CHARS = 16
_CHUNK = 1 << 22  # 4 MiB reads
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_VOLATILE_CONFIG_KEYS = {"transformers_version", "_diffusers_version", "_name_or_path", "_commit_hash", "dtype",
                         "torch_dtype"}


def weight_files(folder: str | Path) -> list[Path]:
    """The weight files directly inside `folder`: safetensors if any, else pytorch .bin files."""
    folder = Path(folder)
    for suffix in _WEIGHT_SUFFIXES:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(suffix))
        if files:
            return files
    return []


def hash_files(files: Iterable[str | Path], root: str | Path | None = None) -> str:
    """SHA-256 hex over each file's name (relative to `root`) and bytes, in the given order."""
    digest = hashlib.sha256()
    for path in files:
        path = Path(path)
        name = path.relative_to(root).as_posix() if root is not None else path.name
        digest.update(name.encode() + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def config_digest(config: Mapping) -> str:
    """SHA-256 hex of a model config dict as canonical JSON, without library-version keys.

    The config changes outputs too (a metric head's max_depth, the depth type) even when the
    weights are identical; the library version that wrote it does not.
    """
    kept = {k: v for k, v in config.items() if k not in _VOLATILE_CONFIG_KEYS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def hash_folder_weights(folder: str | Path) -> str:
    """SHA-256 hex over the weight files of `folder` and its config.json (canonical); ValueError
    when it has no weight files."""
    files = weight_files(folder)
    if not files:
        raise ValueError(f"{folder}: no *.safetensors or *.bin weight files to fingerprint; "
                         "point the teacher at a folder written by save_pretrained")
    config_file = Path(folder, "config.json")
    config = config_digest(json.loads(config_file.read_text())) if config_file.is_file() else "no-config"
    return hash_files(files, root=Path(folder)) + config


def hash_state_dict(state_dict: Mapping[str, "torch.Tensor"]) -> str:  # noqa: F821
    """SHA-256 hex over a state dict's names, dtypes, shapes and raw bytes (sorted by name)."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\0".encode())
        raw = tensor.to("cpu").contiguous().reshape(-1).view(torch.uint8)  # [numel * itemsize]
        digest.update(raw.numpy())  # buffer protocol: no extra copy
    return digest.hexdigest()


def teacher_fingerprint(kind: str, weights_digest: str, precision: str, input_size: int,
                        extra: Mapping[str, str] | None = None) -> str:
    """The 16-hex-char fingerprint of a teacher from its weights digest and run settings.

    `extra` carries anything else that changes the labels (GenPercept's prompt embedding).
    """
    parts = [f"kind={kind}", f"weights={weights_digest}", f"precision={precision}", f"input_size={int(input_size)}"]
    parts += [f"{key}={value}" for key, value in sorted((extra or {}).items())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:FINGERPRINT_CHARS]
