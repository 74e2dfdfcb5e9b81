"""A world split rendered in memory, as a benchmark: what the trainer's periodic eval scores.

Same samples as `depthdistill world export --split SPLIT` read back by the `world` loader
(z-depth, valid mask, thin-structure mask, the world's depth range), without files: the
trainer renders its `train.eval_images` images of the `val` split once and keeps them.
"""

from __future__ import annotations

import numpy as np

from depthdistill.config import WORLD_IMAGE_HW
from depthdistill.evaluation.datasets import SPECS, EvalSample


class RenderedWorldDataset:
    """The first `n` images of a world split; `BenchmarkDataset`'s interface, rendered once."""

    def __init__(self, split: str, n: int, *, seed: int = 0, image_hw: tuple[int, int] = WORLD_IMAGE_HW):
        from depthdistill.world.render import check_args

        check_args(split, 0, *image_hw)
        self.spec = SPECS["world"]
        self.split, self.n, self.seed, self.image_hw = split, int(n), int(seed), tuple(image_hw)
        self.list_file = None
        self.skipped: list[tuple[str, str]] = []
        self._samples: list[EvalSample] | None = None

    @property
    def depth_range(self) -> tuple[float, float]:
        return self.spec.depth_range

    def _render(self) -> list[EvalSample]:
        from depthdistill.world import render

        lo, hi = self.depth_range
        samples = []
        for index in range(self.n):
            s = render(self.split, index, seed=self.seed, height=self.image_hw[0], width=self.image_hw[1])
            mask = s.valid & (s.depth > lo) & (s.depth < hi)
            samples.append(EvalSample(key=f"{self.split}/{index:06d}", rgb=s.rgb, depth=s.depth.astype(np.float32),
                                      mask=mask, thin=s.thin))
        return samples

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        if self._samples is None:
            self._samples = self._render()
        yield from self._samples
