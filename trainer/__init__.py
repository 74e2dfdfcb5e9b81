"""`depthdistill.trainer`: label shards -> distilled student (see ARCHITECTURE.md).

Importing it sets OMP_WAIT_POLICY=PASSIVE when no policy is set and torch is not loaded yet:
libgomp's default spin-waiting makes CPU steps ~10x slower on shared cores (`threads.py`)."""

from .threads import prefer_passive_openmp

prefer_passive_openmp()
