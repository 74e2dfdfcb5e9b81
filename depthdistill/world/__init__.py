"""The embedded synthetic RGB-D world: procedural scenes, a numpy ray caster with exact z-depth.

    render(split, index, seed=0, height=384, width=512) -> WorldSample
    export_split(split, n, out, ...) -> Path        # rgb/, depth/, mask/, thin/, meta.json
    SPLITS = ("teacher-train", "unlabeled", "val", "eval")  # disjoint random streams

Modules: camera (pinhole, rays), primitives (plane/sphere/box/cylinder intersections),
textures, raycast (visibility, shading, shadows), scenes (random rooms and streets),
render (splits, determinism), export (files on disk), sheet (contact sheet).
"""

from depthdistill.world.camera import Camera, make_camera
from depthdistill.world.export import export_split
from depthdistill.world.primitives import Box, Cylinder, Material, Plane, Sphere
from depthdistill.world.raycast import Light, Scene, WorldSample, raycast, render_scene
from depthdistill.world.render import SPLITS, render, sample_scene

__all__ = ["SPLITS", "Box", "Camera", "Cylinder", "Light", "Material", "Plane", "Scene", "Sphere",
           "WorldSample", "export_split", "make_camera", "raycast", "render", "render_scene", "sample_scene"]
