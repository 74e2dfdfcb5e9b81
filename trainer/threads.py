"""OpenMP waiting policy for CPU training on shared machines (no torch import here).

torch's CPU wheels run intra-op parallelism on GNU OpenMP (libgomp). By default a libgomp
thread that reaches the end of a parallel region spins (GOMP_SPINCOUNT, ~300k iterations)
before it sleeps. When the cores are shared with other processes, the spinning thread burns
the time slice its descheduled partner needs, so each of the thousands of small parallel ops
of a training step waits for the scheduler. Measured on the team machine (2 shared cores,
load ~4; tiny student, batch 8, 112 px views, stages.yaml losses; `loop.train` s/step):

    OMP_NUM_THREADS=2, default policy        3.0 - 7.0 s/step
    OMP_NUM_THREADS=2, OMP_WAIT_POLICY=PASSIVE   0.36 - 0.37 s/step
    OMP_NUM_THREADS=1                        0.28 - 0.32 s/step

`prefer_passive_openmp()` sets OMP_WAIT_POLICY=PASSIVE unless the user already chose a policy
(OMP_WAIT_POLICY or GOMP_SPINCOUNT), and only while torch is not imported yet: libgomp reads
the variable once, when torch loads. Importing `depthdistill.trainer` calls it, which comes
before the first torch import in `depthdistill train` and in every torchrun rank (ranks also
inherit it from the launcher). `OMP_WAIT_POLICY=ACTIVE` opts out.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import MutableMapping

logger = logging.getLogger(__name__)

USER_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def prefer_passive_openmp(environ: MutableMapping[str, str] | None = None,
                          torch_loaded: bool | None = None) -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE if the user chose no policy and torch is not loaded yet.

    Returns True when it set the variable."""
    environ = os.environ if environ is None else environ
    torch_loaded = "torch" in sys.modules if torch_loaded is None else torch_loaded
    if torch_loaded or any(key in environ for key in USER_KEYS):
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
