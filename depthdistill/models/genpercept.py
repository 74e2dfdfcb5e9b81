"""GenPercept (ICLR'25) as a Teacher: SD2.1's UNet + VAE, one deterministic step.

Weights: `guangkaixu/genpercept-models` (subfolders `unet_disparity_v2/`, `unet_depth_v2/`,
`vae/`), or a local folder with the same layout (the embedded `genpercept-tiny`). The UNet
subfolder decides the space: `*disparity*` -> disparity in [0, 1] (1 = near, DAv2's
polarity), `*depth*` -> depth in [0, 1]. The empty-prompt embedding is read from a file
(see prompt_embedding.py); no text encoder is loaded.

`genpercept_one_step` is the whole inference (TEACHERS.md): RGB [0, 1] -> x2-1 -> VAE encode,
posterior mean x scaling_factor -> UNet at timestep 1 with the empty-prompt embedding ->
prediction latent = -UNet output (v-prediction with alpha_bar = 0) -> / scaling_factor ->
VAE decode -> mean over the 3 channels -> clip [-1, 1] -> (x + 1) / 2.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch

from depthdistill.models.base import Teacher, precision_dtype
from depthdistill.models.fingerprint import config_digest, hash_folder_weights, hash_state_dict, teacher_fingerprint
from depthdistill.models.prompt_embedding import find_prompt_embedding, load_prompt_embedding, save_prompt_embedding
from depthdistill.models.hub import from_pretrained_checked, is_local

logger = logging.getLogger(__name__)

TIMESTEP = 1
VAE_SUBFOLDER = "vae"


def genpercept_one_step(unet, vae, rgb01: torch.Tensor, prompt_embeds: torch.Tensor) -> torch.Tensor:
    """One deterministic GenPercept pass: rgb01 float [B, 3, H, W] in [0, 1] -> [B, H, W] in [0, 1].

    H and W must be multiples of 8 (the VAE's downsampling). Runs in the UNet's / VAE's own
    dtypes on their device; `prompt_embeds` is [1, T, D] (broadcast) or [B, T, D].
    """
    batch = rgb01.shape[0]
    scaling = vae.config.scaling_factor
    x = (rgb01 * 2.0 - 1.0).to(device=vae.device, dtype=vae.dtype)  # [B, 3, H, W] in [-1, 1]
    latents = vae.encode(x).latent_dist.mean * scaling  # [B, 4, H/8, W/8]
    embeds = prompt_embeds.to(device=unet.device, dtype=unet.dtype).expand(batch, -1, -1)  # [B, T, D]
    timestep = torch.full((batch,), TIMESTEP, device=unet.device, dtype=torch.long)  # [B]
    v = unet(latents.to(unet.dtype), timestep, encoder_hidden_states=embeds).sample  # [B, 4, H/8, W/8]
    pred_latents = -v  # x0 = sqrt(a) x_t - sqrt(1 - a) v with a = 0
    decoded = vae.decode((pred_latents / scaling).to(vae.dtype)).sample  # [B, 3, H, W]
    mono = decoded.mean(dim=1).clamp(-1.0, 1.0)  # [B, H, W]
    return (mono + 1.0) / 2.0  # [B, H, W] in [0, 1]


def space_of_unet_subfolder(unet_subfolder: str) -> str:
    name = Path(unet_subfolder).name.lower()
    return "depth" if "depth" in name and "disparity" not in name else "disparity"


def genpercept_folder_digest(folder: str | Path, unet_subfolder: str) -> str:
    """Weights digest of a GenPercept folder: its UNet subfolder's and vae/'s weight files."""
    return hash_folder_weights(Path(folder, unet_subfolder)) + hash_folder_weights(Path(folder, VAE_SUBFOLDER))


def genpercept_fingerprint(weights_digest: str, prompt_embeds: torch.Tensor, precision: str, input_size: int,
                           space: str) -> str:
    """The fingerprint of a GenPercept teacher: weights, prompt embedding, precision, size, space."""
    prompt_digest = hash_state_dict({"prompt_embeds": prompt_embeds.float().cpu()})
    return teacher_fingerprint("genpercept", weights_digest, precision, input_size,
                               {"prompt": prompt_digest, "space": space})


def save_genpercept_folder(unet, vae, prompt_embeds: torch.Tensor, out: str | Path,
                           unet_subfolder: str = "unet_disparity_v2") -> Path:
    """Write a GenPercept folder (unet subfolder, vae/, empty_prompt.safetensors) that loads back."""
    out = Path(out)
    unet.save_pretrained(out / unet_subfolder)
    vae.save_pretrained(out / VAE_SUBFOLDER)
    save_prompt_embedding(prompt_embeds, out / "empty_prompt.safetensors")
    return out


class GenPerceptTeacher(Teacher):
    """GenPercept's one-step UNet + VAE at a fixed square input size (a multiple of 8)."""

    kind = "genpercept"

    def __init__(self, unet, vae, prompt_embeds: torch.Tensor, *, name: str, input_size: int, precision: str,
                 device, weights_digest: str, space: str = "disparity", input_multiple: int | None = None) -> None:
        super().__init__(name=name, space=space, input_multiple=input_multiple or 8, input_size=input_size,
                         precision=precision, device=device)
        if input_size % 8:
            raise ValueError(f"teachers[{name}].input_size: got {input_size}; GenPercept's VAE needs a multiple of 8")
        width = unet.config.cross_attention_dim
        if prompt_embeds.ndim != 3 or prompt_embeds.shape[-1] != width:
            raise ValueError(f"teacher {name!r}: prompt embedding has shape {tuple(prompt_embeds.shape)} but the "
                             f"UNet expects [1, T, {width}]; recompute it with the matching text encoder "
                             "(`depthdistill teachers embed-prompt`)")
        self.unet = unet.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        self.vae = vae.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        self.prompt_embeds = prompt_embeds.to(device=self.device, dtype=self.dtype)  # [1, T, D]
        self.fingerprint = genpercept_fingerprint(weights_digest, prompt_embeds, precision, input_size, space)

    @classmethod
    def from_pretrained(cls, id_or_path: str, *, name: str = "genpercept", unet_subfolder: str = "unet_disparity_v2",
                        prompt_embedding: str | Path | None = None, input_size: int = 112, precision: str = "fp32",
                        device="cpu", input_multiple: int | None = None):
        """Load the UNet (`unet_subfolder`), the VAE (`vae/`) and the cached prompt embedding."""
        from diffusers import AutoencoderKL, UNet2DConditionModel

        local = is_local(id_or_path)
        if local and not Path(id_or_path, unet_subfolder).is_dir():
            have = sorted(p.name for p in Path(id_or_path).iterdir() if p.is_dir())
            raise ValueError(f"{id_or_path}: no UNet subfolder {unet_subfolder!r} (subfolders: {have}); set the "
                             "teacher's unet_subfolder to one of them")
        # Load straight into the run dtype (865M params: no fp32 copy); without accelerate, say
        # so up front instead of letting diffusers warn on every load.
        kwargs = dict(torch_dtype=precision_dtype(precision, name))
        if importlib.util.find_spec("accelerate") is None:
            kwargs["low_cpu_mem_usage"] = False
        unet = from_pretrained_checked(UNet2DConditionModel, id_or_path, subfolder=unet_subfolder, **kwargs)
        vae = from_pretrained_checked(AutoencoderKL, id_or_path, subfolder=VAE_SUBFOLDER, **kwargs)
        prompt_embeds = load_prompt_embedding(find_prompt_embedding(id_or_path if local else None, prompt_embedding))
        if local:
            digest = genpercept_folder_digest(id_or_path, unet_subfolder)
        else:
            digest = "".join(hash_state_dict(m.state_dict()) + config_digest(dict(m.config)) for m in (unet, vae))
        return cls(unet, vae, prompt_embeds, name=name, input_size=input_size, precision=precision, device=device,
                   weights_digest=digest, space=space_of_unet_subfolder(unet_subfolder),
                   input_multiple=input_multiple)

    @classmethod
    def load(cls, cfg, path: str, device) -> "GenPerceptTeacher":
        return cls.from_pretrained(path, name=cfg.name, unet_subfolder=cfg.unet_subfolder,
                                   prompt_embedding=cfg.prompt_embedding or None, input_size=cfg.input_size,
                                   precision=cfg.precision, device=device, input_multiple=cfg.input_multiple or None)

    @classmethod
    def fingerprint_folder(cls, path: str, cfg) -> tuple[str, str]:
        precision_dtype(cfg.precision, cfg.name)
        prompt = load_prompt_embedding(find_prompt_embedding(path, cfg.prompt_embedding or None))
        space = space_of_unet_subfolder(cfg.unet_subfolder)
        digest = genpercept_folder_digest(path, cfg.unet_subfolder)
        return genpercept_fingerprint(digest, prompt, cfg.precision, cfg.input_size, space), space

    def _forward(self, rgb01: torch.Tensor, features: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if not features:
            return genpercept_one_step(self.unet, self.vae, rgb01, self.prompt_embeds), []  # [B, S, S]
        captured: list[torch.Tensor] = []
        hooks = [block.register_forward_hook(lambda _m, _a, out: captured.append(out.detach().float()))
                 for block in self.unet.up_blocks]  # GenPercept's multi-level features
        try:
            maps = genpercept_one_step(self.unet, self.vae, rgb01, self.prompt_embeds)  # [B, S, S]
        finally:
            for hook in hooks:
                hook.remove()
        return maps, captured  # each [B, C_i, h_i, w_i]
