"""Procedural surface textures: value noise, checker, stripes, gradients.

Textures are functions of the surface coordinates (metres along the surface), never of the
distance to the camera, so colour carries no direct depth cue beyond real perspective.
"""

from __future__ import annotations

import math

import numpy as np

from depthdistill.world.primitives import Material

PATTERNS = ("solid", "checker", "stripes", "noise", "gradient")


def _hash2(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Integer lattice -> float32 in [0, 1): a small avalanche hash on uint32 (wrapping)."""
    h = ix.astype(np.uint32) * np.uint32(0x27D4EB2D) ^ iy.astype(np.uint32) * np.uint32(0x165667B1)
    h ^= np.uint32((seed * 0x9E3779B1) & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def value_noise(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    """Smooth lattice noise in [0, 1] at unit frequency: [M] -> [M]."""
    fu, fv = np.floor(u), np.floor(v)
    iu, iv = fu.astype(np.int64), fv.astype(np.int64)
    su, sv = u - fu, v - fv
    su, sv = su * su * (3 - 2 * su), sv * sv * (3 - 2 * sv)  # smoothstep
    c00, c10 = _hash2(iu, iv, seed), _hash2(iu + 1, iv, seed)
    c01, c11 = _hash2(iu, iv + 1, seed), _hash2(iu + 1, iv + 1, seed)
    top = c00 + (c10 - c00) * su
    bottom = c01 + (c11 - c01) * su
    return top + (bottom - top) * sv


def fbm(u: np.ndarray, v: np.ndarray, seed: int, octaves: int = 3) -> np.ndarray:
    """Fractal sum of value noise, normalised to [0, 1]: [M] -> [M]."""
    total = np.zeros_like(u)
    amp, norm = 1.0, 0.0
    for octave in range(octaves):
        f = np.float32(2.0 ** octave)
        total += np.float32(amp) * value_noise(u * f, v * f, seed + 101 * octave)
        norm += amp
        amp *= 0.5
    return total / np.float32(norm)


def pattern_mix(material: Material, uv: np.ndarray) -> np.ndarray:
    """How much of colour_b each surface point gets: uv [M, 2] metres -> weight [M] in [0, 1]."""
    angle = math.radians(material.angle_deg)
    ca, sa = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    u = (uv[:, 0] * ca + uv[:, 1] * sa) / np.float32(material.scale)  # [M] along the pattern
    v = (-uv[:, 0] * sa + uv[:, 1] * ca) / np.float32(material.scale)
    kind = material.pattern
    if kind == "solid":
        return np.zeros_like(u)
    if kind == "checker":
        return ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
    if kind == "stripes":
        return (np.sin(np.float32(2 * math.pi) * u) > 0).astype(np.float32)
    if kind == "noise":
        return fbm(u, v, material.seed)
    if kind == "gradient":  # a ramp repeating every `scale` metres, soft-edged
        return np.float32(0.5) - np.float32(0.5) * np.cos(np.float32(math.pi) * u)
    raise ValueError(f"material pattern {kind!r} is unknown; choose one of {PATTERNS}")


def albedo(material: Material, uv: np.ndarray, footprint: np.ndarray | None = None) -> np.ndarray:
    """Surface colour (linear RGB) at uv [M, 2] -> [M, 3] in [0, 1].

    `footprint` [M] (metres per pixel on the surface) fades patterns finer than a few pixels
    towards their mean, as a camera's pixel area does; without it patterns alias into moire."""
    mix = pattern_mix(material, uv)  # [M]
    if footprint is not None and material.pattern != "solid":
        contrast = np.clip((np.float32(material.scale) / footprint - 2.0) / 4.0, 0.0, 1.0)
        mix = np.float32(0.5) + (mix - np.float32(0.5)) * contrast.astype(np.float32)
    mix = mix[:, None]  # [M, 1]
    a = np.asarray(material.color_a, dtype=np.float32)
    b = np.asarray(material.color_b, dtype=np.float32)
    color = a + (b - a) * mix  # [M, 3]
    if material.grain > 0:
        grain = value_noise(uv[:, 0] * np.float32(9.0), uv[:, 1] * np.float32(9.0), material.seed + 7)
        amount = np.full_like(grain, material.grain)  # [M]
        if footprint is not None:  # grain has a 0.11 m period: fade it where pixels are coarser
            amount = amount * np.clip((np.float32(0.11) / footprint - 1.0) / 3.0, 0.0, 1.0)
        color = color * (1 - amount + 2 * amount * grain)[:, None]
    return np.clip(color, 0.0, 1.0)
