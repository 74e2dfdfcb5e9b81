"""Random scenes of the synthetic world: furnished indoor rooms and outdoor streets / parks.

`random_scene(rng, height, width) -> (Scene, Camera)` draws a scene kind, a camera pose and
field of view, textured planes and objects. Every scene holds thin structures (table and chair
legs, floor-lamp poles, railings; street poles, fences), a few pixels wide at 384x512, placed
inside the camera's view wedge so that they show. All randomness comes from `rng`.
"""

from __future__ import annotations

import math

import numpy as np

from depthdistill.world.camera import Camera, make_camera
from depthdistill.world.primitives import Box, Cylinder, Material, Plane, Sphere
from depthdistill.world.raycast import Light, Scene

WOODS = [(0.45, 0.28, 0.15), (0.62, 0.45, 0.28), (0.30, 0.18, 0.10), (0.75, 0.62, 0.45)]
PAINTS = [(0.80, 0.78, 0.72), (0.62, 0.70, 0.78), (0.80, 0.70, 0.55), (0.55, 0.72, 0.60),
          (0.85, 0.60, 0.55), (0.70, 0.70, 0.70), (0.90, 0.88, 0.80)]
VIVID = [(0.80, 0.15, 0.12), (0.15, 0.35, 0.75), (0.90, 0.70, 0.10), (0.20, 0.60, 0.30),
         (0.55, 0.25, 0.60), (0.95, 0.45, 0.10), (0.10, 0.10, 0.12), (0.85, 0.85, 0.85)]
METALS = [(0.25, 0.25, 0.27), (0.55, 0.55, 0.58), (0.15, 0.15, 0.15), (0.70, 0.65, 0.55)]
GROUNDS = [((0.18, 0.35, 0.10), (0.30, 0.45, 0.15), "noise"),  # grass
           ((0.25, 0.25, 0.26), (0.33, 0.33, 0.34), "noise"),  # asphalt
           ((0.60, 0.52, 0.38), (0.70, 0.62, 0.48), "noise"),  # sand
           ((0.50, 0.48, 0.45), (0.35, 0.33, 0.31), "checker")]  # paving


def _jitter(rng: np.random.Generator, color, amount: float = 0.06) -> tuple[float, float, float]:
    return tuple(float(c) for c in np.clip(np.asarray(color) + rng.uniform(-amount, amount, 3), 0.02, 0.98))


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def material(rng: np.random.Generator, palette, patterns=("solid", "checker", "stripes", "noise", "gradient"),
             scale=(0.1, 0.6), grain: float = 0.08) -> Material:
    """A random procedural material whose two colours come from `palette`."""
    a = _jitter(rng, _pick(rng, palette))
    b = _jitter(rng, _pick(rng, palette)) if rng.random() < 0.5 else _jitter(rng, np.asarray(a) * 0.6)
    return Material(pattern=_pick(rng, patterns), color_a=a, color_b=b, scale=float(rng.uniform(*scale)),
                    angle_deg=float(rng.choice([0.0, 90.0, rng.uniform(0, 180)])), grain=grain,
                    seed=int(rng.integers(1 << 30)))


class Layout:
    """Keeps objects apart: footprints are circles on the floor (x, z, radius)."""

    def __init__(self, keep_clear: list[tuple[float, float, float]]):
        self.taken = list(keep_clear)

    def place(self, rng: np.random.Generator, radius: float, sample, tries: int = 12):
        for _ in range(tries):
            x, z = sample()
            if all(math.hypot(x - tx, z - tz) > radius + tr for tx, tz, tr in self.taken):
                self.taken.append((x, z, radius))
                return float(x), float(z)
        return None


def _turn(dx: float, dz: float, yaw_deg: float) -> tuple[float, float]:
    """A floor offset turned like Box(yaw_deg) turns its local axes."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    return dx * c + dz * s, -dx * s + dz * c


def legged_top(x, z, yaw, size, top_y, leg, wood: Material, legs: Material, back: float = 0.0) -> list:
    """A table (or, with a back height, a chair): a board on four thin legs."""
    w, d = size
    parts = [Box((x, top_y - 0.02, z), (w / 2, 0.02, d / 2), yaw, wood)]
    for sx in (-1, 1):
        for sz in (-1, 1):
            ox, oz = _turn(sx * (w / 2 - leg), sz * (d / 2 - leg), yaw)
            parts.append(Box((x + ox, (top_y - 0.04) / 2, z + oz), (leg / 2, (top_y - 0.04) / 2, leg / 2),
                             yaw, legs, thin=True))
    if back > 0:
        ox, oz = _turn(0.0, d / 2 - 0.02, yaw)
        parts.append(Box((x + ox, top_y + back / 2, z + oz), (w / 2, back / 2, 0.02), yaw, wood))
    return parts


def pole(x, z, radius, height, mat: Material, base_y: float = 0.0) -> Cylinder:
    return Cylinder((x, base_y, z), radius, height, mat, thin=True)


def railing(x, z, yaw, length, height, post: float, spacing: float, mat: Material) -> list:
    """Posts every `spacing` metres under a top rail and a middle rail, all thin."""
    n = max(2, int(length / spacing) + 1)
    parts = []
    for i in range(n):
        ox, oz = _turn(-length / 2 + i * length / (n - 1), 0.0, yaw)
        parts.append(Box((x + ox, height / 2, z + oz), (post / 2, height / 2, post / 2), yaw, mat, thin=True))
    for y in (height, height * 0.55):
        parts.append(Box((x, y, z), (length / 2 + post / 2, post / 2, post / 2), yaw, mat, thin=True))
    return parts


def _room_planes(rng, w, d, h) -> list:
    floor = material(rng, WOODS + PAINTS, ("checker", "stripes", "noise"), scale=(0.15, 0.6))
    wall = material(rng, PAINTS, ("solid", "noise", "gradient", "stripes"), scale=(0.3, 1.5), grain=0.05)
    wall2 = material(rng, PAINTS, ("solid", "noise", "gradient", "stripes"), scale=(0.3, 1.5), grain=0.05)
    ceiling = Material("solid", _jitter(rng, (0.88, 0.88, 0.86), 0.04), grain=0.03)
    return [Plane((0, 1, 0), 0.0, floor), Plane((0, -1, 0), -h, ceiling),
            Plane((1, 0, 0), 0.0, wall), Plane((-1, 0, 0), -w, wall),
            Plane((0, 0, 1), 0.0, wall2), Plane((0, 0, -1), -d, wall2)]


def _furniture(rng, layout: Layout, sample) -> list:
    """Tables, chairs, cabinets, balls, barrels, floor lamps and a railing for one room."""
    parts: list = []
    wood = material(rng, WOODS, ("solid", "stripes", "noise"), scale=(0.05, 0.2))
    metal = Material("solid", _jitter(rng, _pick(rng, METALS)), grain=0.02)
    plan = ["table"] * int(rng.integers(1, 3)) + ["lamp"] * int(rng.integers(1, 3)) + \
        ["chair"] * int(rng.integers(0, 3)) + ["railing"] * int(rng.random() < 0.5) + \
        ["cabinet"] * int(rng.integers(1, 4)) + ["ball"] * int(rng.integers(1, 3)) + \
        ["barrel"] * int(rng.integers(0, 3))  # thin-legged things first: they get the free floor
    for kind in plan:
        yaw = float(rng.uniform(0, 180))
        if kind == "table":
            size = (float(rng.uniform(0.8, 1.6)), float(rng.uniform(0.6, 1.0)))
            spot = layout.place(rng, 0.5 * math.hypot(*size), sample)
            if spot:
                parts += legged_top(*spot, yaw, size, float(rng.uniform(0.68, 0.8)),
                                    float(rng.uniform(0.03, 0.05)), wood, _pick(rng, [wood, metal]))
        elif kind == "chair":
            spot = layout.place(rng, 0.35, sample)
            if spot:
                parts += legged_top(*spot, yaw, (0.45, 0.45), 0.46, float(rng.uniform(0.025, 0.035)),
                                    material(rng, WOODS + VIVID, ("solid", "noise")), metal,
                                    back=float(rng.uniform(0.35, 0.5)))
        elif kind == "cabinet":
            half = (float(rng.uniform(0.2, 0.6)), float(rng.uniform(0.25, 1.0)), float(rng.uniform(0.15, 0.35)))
            spot = layout.place(rng, math.hypot(half[0], half[2]), sample)
            if spot:
                parts.append(Box((spot[0], half[1], spot[1]), half, yaw,
                                 material(rng, WOODS + PAINTS + VIVID, scale=(0.1, 0.4))))
        elif kind == "ball":
            r = float(rng.uniform(0.12, 0.4))
            spot = layout.place(rng, r, sample)
            if spot:
                parts.append(Sphere((spot[0], r, spot[1]), r, material(rng, VIVID, scale=(0.08, 0.3))))
        elif kind == "barrel":
            r = float(rng.uniform(0.15, 0.35))
            spot = layout.place(rng, r, sample)
            if spot:
                parts.append(Cylinder((spot[0], 0.0, spot[1]), r, float(rng.uniform(0.4, 1.1)),
                                      material(rng, VIVID + METALS, ("solid", "stripes", "noise"))))
        elif kind == "lamp":
            spot = layout.place(rng, 0.2, sample)
            if spot:
                height = float(rng.uniform(1.3, 1.8))
                parts += [Cylinder((spot[0], 0.0, spot[1]), 0.16, 0.03, metal),
                          pole(spot[0], spot[1], float(rng.uniform(0.012, 0.02)), height, metal),
                          Sphere((spot[0], height + 0.12, spot[1]), 0.16, Material("solid", (0.95, 0.92, 0.8)))]
        else:
            length = float(rng.uniform(1.2, 3.0))
            spot = layout.place(rng, length / 2, sample)
            if spot:
                parts += railing(*spot, yaw, length, float(rng.uniform(0.8, 1.1)), float(rng.uniform(0.025, 0.04)),
                                 float(rng.uniform(0.3, 0.5)), _pick(rng, [metal, wood]))
    return parts


def indoor_scene(rng: np.random.Generator, height: int, width: int) -> tuple[Scene, Camera]:
    """A box room (floor, ceiling, four walls) with furniture; the camera stands near the
    wall z = 0 and looks into the room under a point light near the ceiling."""
    w, d, h = float(rng.uniform(4, 8)), float(rng.uniform(4.5, 9)), float(rng.uniform(2.5, 3.3))
    cam_pos = (float(rng.uniform(0.8, w - 0.8)), float(rng.uniform(1.0, 1.7)), float(rng.uniform(0.3, 1.0)))
    target = (rng.uniform(0.25 * w, 0.75 * w), rng.uniform(0.5 * d, d))  # look into the room
    yaw = math.degrees(math.atan2(target[0] - cam_pos[0], target[1] - cam_pos[2])) + float(rng.uniform(-12, 12))
    pitch, hfov = float(rng.uniform(-30, -5)), float(rng.uniform(55, 80))
    camera = make_camera(height, width, hfov_deg=hfov, position=cam_pos, yaw_deg=yaw, pitch_deg=pitch)
    layout = Layout([(cam_pos[0], cam_pos[2], 0.9)])

    def sample():  # a floor spot inside the view wedge (most of the time)
        for _ in range(20):
            x, z = rng.uniform(0.35, w - 0.35), rng.uniform(1.2, d - 0.35)
            bearing = math.degrees(math.atan2(x - cam_pos[0], z - cam_pos[2])) - yaw
            if abs((bearing + 180) % 360 - 180) < hfov / 2 + 5:
                break
        return x, z

    parts = _room_planes(rng, w, d, h) + _furniture(rng, layout, sample)
    lamp = (float(rng.uniform(0.8, w - 0.8)), h - 0.25, float(rng.uniform(1.0, d - 0.8)))
    light = Light("point", lamp, intensity=float(rng.uniform(0.9, 1.3)), ambient=float(rng.uniform(0.22, 0.35)),
                  falloff=0.02)
    params = {"kind": "indoor", "room": (w, d, h), "camera": cam_pos, "yaw": yaw, "pitch": pitch,
              "hfov": hfov, "light": lamp, "num_primitives": len(parts)}
    return Scene("indoor", tuple(parts), light, params=params), camera


def _outdoor_objects(rng, layout: Layout, wedge) -> list:
    """Buildings, trees, street poles, a fence, boulders, crates and pillars in the view wedge."""
    parts: list = []
    metal = Material("solid", _jitter(rng, _pick(rng, METALS)), grain=0.02)
    for _ in range(int(rng.integers(3, 7))):  # buildings: far backdrop
        half = (float(rng.uniform(3, 8)), float(rng.uniform(3, 12)), float(rng.uniform(3, 8)))
        spot = layout.place(rng, math.hypot(half[0], half[2]), wedge(22, 50))
        if spot:
            facade = material(rng, PAINTS + WOODS, ("stripes", "checker", "noise", "gradient"), scale=(0.8, 3.0))
            parts.append(Box((spot[0], half[1], spot[1]), half, float(rng.uniform(0, 90)), facade))
    for _ in range(int(rng.integers(2, 7))):  # trees: trunk + crown
        spot = layout.place(rng, 1.5, wedge(6, 40))
        if spot:
            trunk_h, crown = float(rng.uniform(1.8, 3.5)), float(rng.uniform(1.2, 2.6))
            parts += [Cylinder((spot[0], 0.0, spot[1]), float(rng.uniform(0.12, 0.3)), trunk_h + 0.3,
                               Material("noise", _jitter(rng, (0.30, 0.20, 0.12)), (0.20, 0.13, 0.08), 0.15)),
                      Sphere((spot[0], trunk_h + crown * 0.8, spot[1]), crown,
                             Material("noise", _jitter(rng, (0.15, 0.40, 0.12)), (0.08, 0.22, 0.06), 0.4))]
    for _ in range(int(rng.integers(2, 6))):  # street poles, some with an arm and a lamp head
        spot = layout.place(rng, 0.3, wedge(3, 22))
        if spot:
            height = float(rng.uniform(3.0, 7.0))
            parts.append(pole(*spot, float(rng.uniform(0.04, 0.08)), height, metal))
            if rng.random() < 0.6:
                yaw, arm = float(rng.uniform(0, 180)), float(rng.uniform(0.8, 2.0))
                ox, oz = _turn(arm / 2, 0.0, yaw)
                parts.append(Box((spot[0] + ox, height - 0.05, spot[1] + oz), (arm / 2, 0.03, 0.03), yaw, metal,
                                 thin=True))
    if rng.random() < 0.7:  # a fence
        length = float(rng.uniform(5, 14))
        spot = layout.place(rng, length / 2, wedge(4, 16))
        if spot:
            parts += railing(*spot, float(rng.uniform(0, 180)), length, float(rng.uniform(0.9, 1.4)),
                             float(rng.uniform(0.05, 0.08)), float(rng.uniform(1.2, 2.5)),
                             _pick(rng, [metal, material(rng, WOODS, ("solid", "noise"))]))
    for _ in range(int(rng.integers(2, 7))):  # boulders, crates, pillars
        kind = _pick(rng, ["boulder", "crate", "pillar"])
        size = float(rng.uniform(0.3, 1.2))
        spot = layout.place(rng, size * 1.2, wedge(3, 25))
        if not spot:
            continue
        if kind == "boulder":
            parts.append(Sphere((spot[0], size * 0.55, spot[1]), size,
                                Material("noise", _jitter(rng, (0.5, 0.48, 0.45)), (0.3, 0.29, 0.27), 0.3)))
        elif kind == "crate":
            parts.append(Box((spot[0], size * 0.8, spot[1]), (size, size * 0.8, size * 0.9), float(rng.uniform(0, 90)),
                             material(rng, WOODS + VIVID, scale=(0.1, 0.4))))
        else:
            parts.append(Cylinder((spot[0], 0.0, spot[1]), size * 0.5, float(rng.uniform(1.0, 4.0)),
                                  material(rng, PAINTS + VIVID, ("solid", "stripes", "noise", "gradient"))))
    return parts


def outdoor_scene(rng: np.random.Generator, height: int, width: int) -> tuple[Scene, Camera]:
    """A ground plane under the sun with buildings far back (sky and far ground are invalid)."""
    cam_pos = (0.0, float(rng.uniform(1.2, 3.0)), 0.0)
    yaw, pitch = float(rng.uniform(0, 360)), float(rng.uniform(-16, 2))
    hfov = float(rng.uniform(60, 85))
    camera = make_camera(height, width, hfov_deg=hfov, position=cam_pos, yaw_deg=yaw, pitch_deg=pitch)
    spread = hfov / 2 + 5

    def wedge(near: float, far: float):
        def sample():
            angle = math.radians(yaw + rng.uniform(-spread, spread))
            dist = math.sqrt(rng.uniform(near * near, far * far))  # uniform over the wedge's area
            return dist * math.sin(angle), dist * math.cos(angle)
        return sample

    g0, g1, pattern = _pick(rng, GROUNDS)
    ground = Material(pattern, _jitter(rng, g0, 0.04), _jitter(rng, g1, 0.04), float(rng.uniform(0.5, 2.0)),
                      float(rng.uniform(0, 90)), 0.08, int(rng.integers(1 << 30)))
    parts = [Plane((0, 1, 0), 0.0, ground)] + _outdoor_objects(rng, Layout([(0.0, 0.0, 1.5)]), wedge)
    elevation, azimuth = math.radians(rng.uniform(20, 65)), math.radians(rng.uniform(0, 360))
    sun = (math.cos(elevation) * math.sin(azimuth), math.sin(elevation), math.cos(elevation) * math.cos(azimuth))
    light = Light("sun", sun, intensity=float(rng.uniform(0.9, 1.2)), ambient=float(rng.uniform(0.28, 0.4)))
    params = {"kind": "outdoor", "camera": cam_pos, "yaw": yaw, "pitch": pitch, "hfov": hfov, "sun": sun,
              "num_primitives": len(parts)}
    return Scene("outdoor", tuple(parts), light, sky_zenith=_jitter(rng, (0.25, 0.45, 0.80), 0.05),
                 params=params), camera


def random_scene(rng: np.random.Generator, height: int, width: int) -> tuple[Scene, Camera]:
    """Indoor or outdoor with equal probability."""
    if rng.random() < 0.5:
        return indoor_scene(rng, height, width)
    return outdoor_scene(rng, height, width)
