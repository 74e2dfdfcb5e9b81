"""Test-only labeling actors (fault injection lives here, not in the pipeline).

`DyingLabelWorker` is a `LabelWorker` whose process exits hard in the middle of a shard after
`KILL_AFTER` teacher calls, once per run (the first actor to create the claim file in the store
dies; the retried shard and the other actors carry on). Ray pickles this module by value
(`ray_by_value`), so its actors need no import of the tests folder."""

from __future__ import annotations

import os
from pathlib import Path

from depthdistill.pipeline.label import LabelWorker

CLAIM_FILE = ".fault-kill-claimed"
KILL_AFTER = 3


def claim(store: Path) -> bool:
    """True for exactly one caller per store (atomic O_EXCL file)."""
    try:
        fd = os.open(Path(store) / CLAIM_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


class DyingLabelWorker(LabelWorker):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        predict, calls = self.teacher.predict, [0]

        def dying_predict(images):
            calls[0] += 1
            if calls[0] > KILL_AFTER and claim(self.store):
                os._exit(1)  # a hard death mid-shard: no exception, no cleanup
            return predict(images)

        self.teacher.predict = dying_predict


def ray_by_value() -> None:
    import sys

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
