"""Self-describing checkpoints, written atomically.

A checkpoint (nanoGPT style) holds everything a resume needs: `model` (state dict),
`model_args` (architecture, so resume rebuilds it without the config's student name),
`optimizer`, `scheduler`, `scaler`, `rng` (python / numpy / torch / cuda), `step`,
`data` (the loader position), `config` (the resolved StagesConfig dict), `best` (metric).

Writes go to a temp file in the same folder, are fsynced, then `os.replace`d over the
target: a crash or a full disk leaves the previous checkpoint intact.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

LAST = "ckpt_last.pt"
BEST = "ckpt_best.pt"


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed; the previous file at that path is untouched."""


def rng_state() -> dict[str, Any]:
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Atomically write `state` to `path` (temp file + fsync + rename)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, (OSError, RuntimeError)):
            raise CheckpointWriteError(f"{path}: checkpoint write failed ({exc}); the previous "
                                       "checkpoint there is kept; free disk space and resume") from exc
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    import torch

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no checkpoint here; pass a run folder that holds {LAST}")
    # weights_only=False: the file holds numpy RNG state and plain dicts we wrote ourselves.
    return torch.load(path, map_location=map_location, weights_only=False)


def find_resume(out: str | Path) -> Path | None:
    """The last checkpoint of a run folder, or None for a fresh run."""
    path = Path(out) / LAST
    return path if path.is_file() else None
