"""Architectures of the two embedded tiny teachers, and the differentiable forward passes that
`make teachers` trains through.

Both are the real classes — transformers' `DepthAnythingForDepthEstimation` and diffusers'
`UNet2DConditionModel` + `AutoencoderKL` — only small. The training forward of GenPercept is
the one-step inference of `depthdistill.models.genpercept` without the final clip (a clipped
output has no gradient), so what is trained is exactly what the teacher runs.
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_dav2_tiny(input_size: int = 112):
    """A 0.87M-parameter Depth Anything V2 (ViT hidden 96, 4 layers), relative disparity."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        hidden_size=96, num_hidden_layers=4, num_attention_heads=3, mlp_ratio=4, patch_size=14,
        image_size=input_size, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone, patch_size=14, reassemble_hidden_size=96,
        reassemble_factors=[4, 2, 1, 0.5], neck_hidden_sizes=[24, 48, 96, 96],
        fusion_hidden_size=32, head_hidden_size=16, depth_estimation_type="relative",
    )
    model = DepthAnythingForDepthEstimation(config)
    _revive_final_relu(model)
    return model


def _revive_final_relu(model) -> None:
    """DAv2's relative head ends in conv -> ReLU. At random init half the outputs sit below
    zero and a shift-invariant loss never pulls them back (dead ReLU). A positive bias on the
    last conv starts every pixel in the ReLU's linear part."""
    last_conv = [m for m in model.head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    torch.nn.init.constant_(last_conv.bias, 1.0)


def build_genpercept_tiny(input_size: int = 112):
    """A tiny SD-style UNet (latent 4 ch, x8 VAE) and its VAE, with the stand-in prompt size."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=input_size // 8, in_channels=4, out_channels=4, block_out_channels=(32, 48, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=8, use_linear_projection=True,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16, 32, 32),
        layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8, sample_size=input_size,
        scaling_factor=0.18215,
    )
    return unet, vae


def dav2_forward(model, rgb01: torch.Tensor) -> torch.Tensor:
    """rgb01 [B, 3, H, W] in [0, 1] -> relative disparity [B, H, W] (H, W multiples of 14)."""
    mean = torch.tensor(IMAGENET_MEAN, device=rgb01.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=rgb01.device).view(1, 3, 1, 1)
    return model(pixel_values=(rgb01 - mean) / std).predicted_depth  # [B, H, W]


def genpercept_forward_unclipped(unet, vae, rgb01: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
    """The one deterministic GenPercept step before its clip: returns x in ~[-1, 1] [B, H, W];
    the teacher's output is (clip(x, -1, 1) + 1) / 2 (disparity, 1 = near)."""
    scale = vae.config.scaling_factor
    latent = vae.encode(rgb01 * 2 - 1).latent_dist.mean * scale  # [B, 4, H/8, W/8]
    context = prompt.to(latent.dtype).expand(latent.shape[0], -1, -1)  # [B, T, C]
    timestep = torch.ones(latent.shape[0], device=latent.device, dtype=torch.long)
    v = unet(latent, timestep, encoder_hidden_states=context).sample  # [B, 4, H/8, W/8]
    decoded = vae.decode(-v / scale).sample  # [B, 3, H, W]
    return decoded.mean(dim=1)  # [B, H, W]
