"""depthdistill: Distill Any Depth as an offline pseudo-label pipeline plus a streaming trainer.

The core package never imports `depthdistill.pipeline` or `depthdistill.trainer`.
Importing it must stay cheap: no torch, transformers, diffusers or ray at import time.
"""

__version__ = "0.1.0"
