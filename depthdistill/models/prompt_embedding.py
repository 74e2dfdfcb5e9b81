"""GenPercept's empty-prompt text embedding: compute it once, cache it as a file, load it.

GenPercept conditions its UNet on the SD2.1 text encoder's embedding of the empty prompt
("" tokenised without padding: [BOS, EOS] -> [1, 2, 1024] for OpenCLIP-H). The teacher never
loads the 1.4 GB text encoder: `depthdistill teachers embed-prompt --text-encoder
prs-eth/marigold-depth-v1-1 --out FILE` (the same OpenCLIP-H `text_encoder/` + `tokenizer/`
as SD2.1) writes the embedding once, and the teacher reads the file.

Where the teacher looks, in order: an explicit path; `empty_prompt.safetensors` or
`empty_prompt.pt` in the model folder; the user cache `default_prompt_cache_file()`.

The tiny embedded GenPercept has no real text encoder. Its embedding is `tiny_prompt_embedding`:
the same [BOS, EOS] input run through a *seeded random* CLIPTextModel of width
`cross_attention_dim` (2 layers), so it is a deterministic function of (width, seed) with the
statistics of a real text-encoder output (layer-normed tokens) rather than arbitrary noise.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

PROMPT_FILE_NAMES = ("empty_prompt.safetensors", "empty_prompt.pt")
TENSOR_KEY = "prompt_embeds"


def default_prompt_cache_file() -> Path:
    """`$DEPTHDISTILL_CACHE/empty_prompt_sd21.safetensors` (default cache: ~/.cache/depthdistill)."""
    root = os.environ.get("DEPTHDISTILL_CACHE") or Path("~/.cache/depthdistill").expanduser()
    return Path(root) / "empty_prompt_sd21.safetensors"


@torch.inference_mode()
def compute_empty_prompt_embedding(text_encoder, tokenizer) -> torch.Tensor:
    """The text encoder's last hidden state for "" (no padding): float32 [1, T, D], T = 2 for CLIP."""
    max_length = min(int(tokenizer.model_max_length), int(text_encoder.config.max_position_embeddings))
    ids = tokenizer("", padding="do_not_pad", max_length=max_length, truncation=True,
                    return_tensors="pt").input_ids  # [1, T]
    device = next(text_encoder.parameters()).device
    return text_encoder(ids.to(device))[0].float().cpu()  # [1, T, D]


def _sub_or_root(id_or_path: str, subfolder: str) -> dict:
    """from_pretrained kwargs: use `subfolder` unless a local folder lacks it (then its root)."""
    if Path(id_or_path).is_dir():
        return {"subfolder": subfolder} if subfolder and Path(id_or_path, subfolder).is_dir() else {}
    return {"subfolder": subfolder} if subfolder else {}


def load_text_encoder(id_or_path: str, *, text_encoder_subfolder: str = "text_encoder",
                      tokenizer_subfolder: str = "tokenizer"):
    """(CLIPTextModel, CLIPTokenizer) from a folder or hub id with text_encoder/ + tokenizer/."""
    from transformers import CLIPTextModel, CLIPTokenizer

    from depthdistill.models.hub import from_pretrained_checked, resolve_model_path

    source = resolve_model_path(id_or_path)
    encoder = from_pretrained_checked(CLIPTextModel, source, **_sub_or_root(source, text_encoder_subfolder))
    local = Path(source).is_dir()
    tok_kwargs = _sub_or_root(source, tokenizer_subfolder)
    try:
        tokenizer = CLIPTokenizer.from_pretrained(source, local_files_only=local, **tok_kwargs)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{id_or_path}: no CLIP tokenizer in {tok_kwargs.get('subfolder', '.')}/ ({exc}); "
                         "pass a folder with tokenizer/ (vocab.json + merges.txt) beside text_encoder/") from exc
    return encoder.eval(), tokenizer


def save_prompt_embedding(embedding: torch.Tensor, path: str | Path) -> Path:
    """Write [1, T, D] as .safetensors (key 'prompt_embeds') or .pt; returns the path.

    An existing folder gets `empty_prompt.safetensors` inside (where the teacher looks).
    """
    path = Path(path)
    if path.is_dir():
        path = path / PROMPT_FILE_NAMES[0]
    if embedding.ndim != 3 or embedding.shape[0] != 1:
        raise ValueError(f"prompt embedding has shape {tuple(embedding.shape)}; expected [1, T, D]")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensor = embedding.detach().float().cpu().contiguous()
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({TENSOR_KEY: tensor}, str(path))
    elif path.suffix == ".pt":
        torch.save(tensor, path)
    else:
        raise ValueError(f"{path}: unknown prompt-embedding file type; use a .safetensors or .pt name")
    return path


def load_prompt_embedding(path: str | Path) -> torch.Tensor:
    """Read a file written by `save_prompt_embedding`: float32 [1, T, D]."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: prompt-embedding file not found; create it with `depthdistill teachers "
                         f"embed-prompt --text-encoder prs-eth/marigold-depth-v1-1 --out {path}`")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        if TENSOR_KEY not in tensors:
            raise ValueError(f"{path}: no '{TENSOR_KEY}' tensor; rewrite it with `depthdistill teachers embed-prompt`")
        tensor = tensors[TENSOR_KEY]
    else:
        tensor = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != 3 or tensor.shape[0] != 1:
        raise ValueError(f"{path}: expected one tensor [1, T, D]; rewrite it with `depthdistill teachers embed-prompt`")
    return tensor.float()


def find_prompt_embedding(folder: str | None, explicit: str | Path | None = None) -> Path:
    """The embedding file a GenPercept teacher uses (see the module docstring for the order)."""
    candidates = [Path(explicit)] if explicit else []
    if folder and Path(folder).is_dir():
        candidates += [Path(folder, name) for name in PROMPT_FILE_NAMES]
    candidates.append(default_prompt_cache_file())
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    target = explicit or default_prompt_cache_file()
    raise ValueError(f"no empty-prompt embedding for GenPercept (looked at {', '.join(map(str, candidates))}); "
                     f"create it once with `depthdistill teachers embed-prompt --text-encoder "
                     f"prs-eth/marigold-depth-v1-1 --out {target}`")


@torch.inference_mode()
def tiny_prompt_embedding(cross_attention_dim: int, *, seed: int = 0) -> torch.Tensor:
    """Deterministic stand-in embedding [1, 2, D]: [BOS, EOS] through a seeded random tiny CLIP."""
    from transformers import CLIPTextConfig, CLIPTextModel

    heads = 2 if cross_attention_dim % 2 == 0 else 1
    config = CLIPTextConfig(vocab_size=16, hidden_size=cross_attention_dim, intermediate_size=2 * cross_attention_dim,
                            num_hidden_layers=2, num_attention_heads=heads, max_position_embeddings=8,
                            bos_token_id=0, eos_token_id=1, pad_token_id=1)
    with torch.random.fork_rng(devices=[]):  # seed locally, leave the caller's RNG alone
        torch.manual_seed(seed)
        encoder = CLIPTextModel(config).eval()
    ids = torch.tensor([[config.bos_token_id, config.eos_token_id]])  # [1, 2]
    return encoder(ids)[0].float()  # [1, 2, D]


def embed_prompt_to_file(text_encoder: str, out: str | Path, *, text_encoder_subfolder: str = "text_encoder",
                         tokenizer_subfolder: str = "tokenizer") -> torch.Tensor:
    """Load the text encoder, compute the empty-prompt embedding, save it to `out`; return it."""
    encoder, tokenizer = load_text_encoder(text_encoder, text_encoder_subfolder=text_encoder_subfolder,
                                           tokenizer_subfolder=tokenizer_subfolder)
    embedding = compute_empty_prompt_embedding(encoder, tokenizer)  # [1, T, D]
    save_prompt_embedding(embedding, out)
    logger.info("wrote empty-prompt embedding %s %s", tuple(embedding.shape), out)
    return embedding
