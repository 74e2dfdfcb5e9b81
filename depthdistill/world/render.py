"""The world's public entry: `render(split, index, seed=...)`, deterministic and split-disjoint.

Each (split, index, seed) seeds its own numpy Generator from sha256 of the three, so the
`teacher-train`, `unlabeled`, `val` and `eval` splits draw from unrelated random streams: no scene
is shared between splits, and the same triple always renders the same arrays on any machine.
`val` is where settings are chosen (the trainer's periodic eval, `make science`'s choices);
`eval` is only scored, never tuned on.
"""

from __future__ import annotations

import hashlib

import numpy as np

from depthdistill.world.camera import Camera
from depthdistill.world.raycast import Scene, WorldSample, render_scene
from depthdistill.world.scenes import random_scene

SPLITS = ("teacher-train", "unlabeled", "val", "eval")
MIN_SIZE = 16


def check_args(split: str, index: int, height: int, width: int) -> None:
    if split not in SPLITS:
        raise ValueError(f"world split {split!r} is unknown; choose one of {SPLITS}")
    if int(index) < 0:
        raise ValueError(f"world index {index} must be >= 0")
    if int(height) < MIN_SIZE or int(width) < MIN_SIZE:
        raise ValueError(f"world image size {height}x{width} is too small; height and width must be >= {MIN_SIZE}")


def split_rng(split: str, index: int, seed: int = 0) -> np.random.Generator:
    """The random stream of one world image: sha256 of (split, index, seed) seeds it."""
    digest = hashlib.sha256(f"depthdistill-world/{split}/{int(seed)}/{int(index)}".encode()).digest()
    return np.random.default_rng(np.frombuffer(digest, dtype=np.uint32))


def sample_scene(split: str, index: int, *, seed: int = 0, height: int = 384, width: int = 512) -> tuple[Scene, Camera]:
    """The scene description and camera behind `render(split, index, seed=...)`."""
    check_args(split, index, height, width)
    return random_scene(split_rng(split, index, seed), int(height), int(width))


def render(split: str, index: int, *, seed: int = 0, height: int = 384, width: int = 512) -> WorldSample:
    """One RGB-D image of the world: rgb uint8 [H, W, 3], z-depth float32 [H, W] in metres (0 where
    invalid), valid bool [H, W], intrinsics float32 [3, 3], scene kind, thin-structure mask."""
    scene, camera = sample_scene(split, index, seed=seed, height=height, width=width)
    sample = render_scene(scene, camera)
    return WorldSample(rgb=sample.rgb, depth=sample.depth, valid=sample.valid, intrinsics=sample.intrinsics,
                       scene=sample.scene, thin=sample.thin, split=split, index=int(index), seed=int(seed))
