"""A stand-in teacher for benchmarks of the labeling pipeline: no model, same interface.

`StandInWorker` is a `LabelWorker` whose teacher returns a cheap map of each input (its grey
level plus a vertical ramp) under the configured teacher's name, fingerprint and space, so the
store it writes is a valid store of that teacher. Ray pickles this module by value (see the
end), so its actors need no import of the bench folder.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from depthdistill.pipeline.label import LabelWorker


class StandInTeacher:
    def __init__(self, name: str, fingerprint: str, space: str) -> None:
        self.name, self.fingerprint, self.space = name, fingerprint, space

    def predict(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [B, S, S, 3] -> float32 [B, S, S]."""
        x = torch.from_numpy(np.ascontiguousarray(images)).float().mean(-1) / 255.0  # [B, S, S]
        return x + torch.linspace(0.0, 1.0, x.shape[1])[None, :, None]


class StandInWorker(LabelWorker):
    def __init__(self, teacher_cfg, source, store, **kwargs) -> None:
        from depthdistill.models import fingerprint_teacher

        fingerprint, space = fingerprint_teacher(teacher_cfg)
        super().__init__(teacher_cfg, source, store, teacher=StandInTeacher(teacher_cfg.name, fingerprint, space),
                         **kwargs)


import ray.cloudpickle  # noqa: E402

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
