"""Model configurations: Depth Anything V2 tiny/S/B/L and GenPercept's UNet/VAE (tiny, SD2.1).

One place for every architecture the project builds from scratch: the embedded tiny
teachers (`make teachers`), the students (tiny, small, base, large), and real-size
random-weight models for GPU benchmarks (build them on the meta device to count parameters
without allocating). The real sizes follow the released configs (TEACHERS.md):
DAv2-S/B/L 24.8M / 97.5M / 335M parameters, SD2.1 UNet ~865M, SD2.1 VAE ~83.7M.

transformers / diffusers are imported inside the functions (they are slow to import).
"""

from __future__ import annotations

from typing import Any

DAV2_SIZES = ("tiny", "small", "base", "large")
GENPERCEPT_SIZES = ("tiny", "sd21")

# size -> (backbone kwargs, head kwargs); the real ones match the *-hf configs on the hub.
_DAV2: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "tiny": (
        dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, mlp_ratio=2, image_size=98,
             out_indices=[1, 2, 3, 4]),
        dict(reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
             head_hidden_size=8),
    ),
    "small": (
        dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4, image_size=518,
             out_indices=[3, 6, 9, 12]),
        dict(reassemble_hidden_size=384, neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64,
             head_hidden_size=32),
    ),
    "base": (
        dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, mlp_ratio=4, image_size=518,
             out_indices=[3, 6, 9, 12]),
        dict(reassemble_hidden_size=768, neck_hidden_sizes=[96, 192, 384, 768], fusion_hidden_size=128,
             head_hidden_size=32),
    ),
    "large": (
        dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4, image_size=518,
             out_indices=[5, 12, 18, 24]),
        dict(reassemble_hidden_size=1024, neck_hidden_sizes=[256, 512, 1024, 1024], fusion_hidden_size=256,
             head_hidden_size=32),
    ),
}

_UNET: dict[str, dict[str, Any]] = {
    "tiny": dict(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4, use_linear_projection=True,
    ),
    # stabilityai/stable-diffusion-2-1 unet/config.json (GenPercept fine-tunes this UNet).
    "sd21": dict(
        sample_size=96, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), norm_num_groups=32,
        use_linear_projection=True, upcast_attention=True, flip_sin_to_cos=True, freq_shift=0,
    ),
}

_VAE: dict[str, dict[str, Any]] = {
    "tiny": dict(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=4, sample_size=64, scaling_factor=0.18215,
    ),
    "sd21": dict(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
        layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, sample_size=768, scaling_factor=0.18215,
    ),
}


def _check_size(size: str, allowed: tuple[str, ...], what: str) -> None:
    if size not in allowed:
        raise ValueError(f"{what} size {size!r} is unknown; use one of {', '.join(allowed)}")


def dav2_config(size: str = "tiny", *, depth_estimation_type: str = "relative", max_depth: int | None = None):
    """A transformers `DepthAnythingConfig` for DAv2 `size` in tiny | small | base | large."""
    from transformers import DepthAnythingConfig, Dinov2Config

    _check_size(size, DAV2_SIZES, "Depth Anything V2")
    backbone_kwargs, head_kwargs = _DAV2[size]
    backbone = Dinov2Config(patch_size=14, reshape_hidden_states=False, **backbone_kwargs,
                            out_features=[f"stage{i}" for i in backbone_kwargs["out_indices"]])
    extra = {} if max_depth is None else {"max_depth": max_depth}
    return DepthAnythingConfig(backbone_config=backbone, patch_size=14, reassemble_factors=[4, 2, 1, 0.5],
                               depth_estimation_type=depth_estimation_type, **head_kwargs, **extra)


def build_dav2(size: str = "tiny", *, seed: int | None = 0, **config_kwargs):
    """A randomly initialised `DepthAnythingForDepthEstimation` (seeded when `seed` is given).

    Wrap the call in `with torch.device("meta"):` to build a real-size model without memory.
    """
    import torch
    from transformers import DepthAnythingForDepthEstimation

    if seed is not None:
        torch.manual_seed(seed)
    return DepthAnythingForDepthEstimation(dav2_config(size, **config_kwargs)).eval()


def unet_config(size: str = "tiny") -> dict[str, Any]:
    """Keyword arguments of `diffusers.UNet2DConditionModel` for GenPercept's UNet (tiny | sd21)."""
    _check_size(size, GENPERCEPT_SIZES, "GenPercept UNet")
    return dict(_UNET[size])


def vae_config(size: str = "tiny") -> dict[str, Any]:
    """Keyword arguments of `diffusers.AutoencoderKL` for GenPercept's VAE (tiny | sd21)."""
    _check_size(size, GENPERCEPT_SIZES, "GenPercept VAE")
    return dict(_VAE[size])


def build_genpercept(size: str = "tiny", *, seed: int | None = 0):
    """(unet, vae) with random weights: the tiny stand-in or the SD2.1-size pair."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    if seed is not None:
        torch.manual_seed(seed)
    unet = UNet2DConditionModel(**unet_config(size)).eval()
    vae = AutoencoderKL(**vae_config(size)).eval()
    return unet, vae


def count_parameters(module) -> int:
    """Number of parameters (works on meta-device models)."""
    return sum(p.numel() for p in module.parameters())
