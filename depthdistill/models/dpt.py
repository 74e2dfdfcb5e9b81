"""MiDaS v3 / DPT (`transformers.DPTForDepthEstimation`) as a Teacher: the third kind.

Hub ids `Intel/dpt-large`, `Intel/dpt-hybrid-midas`, `Intel/dpt-beit-large-512`, or a
save_pretrained folder whose config says `model_type: dpt`. The model outputs relative inverse
depth (disparity, >= 0) like Depth Anything, and is run the same way: fixed square input (a
multiple of 32, as DPT's processors ensure; 384 for the hub checkpoints), the normalization of
its preprocessor_config.json (DPT's is mean = std = 0.5), output resized back. So the class
only differs from `DepthAnythingTeacher` by its kind, which enters the fingerprint.
"""

from __future__ import annotations

from depthdistill.models.dav2 import DepthAnythingTeacher


class DPTTeacher(DepthAnythingTeacher):
    """A DPT / MiDaS depth model at a fixed square input size (kind `dpt`)."""

    kind = "dpt"
