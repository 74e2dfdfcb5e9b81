"""Teacher layer: offline loading, predict contract, GenPercept's one step, fingerprints, errors.

Every model here is a tiny random one built in the test, saved with save_pretrained and loaded
back through the real loading path (local_files_only, HF_HUB_OFFLINE=1 from conftest).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from depthdistill.config import TeacherConfig
from depthdistill.models import configs, hub
from depthdistill.models.configs import build_dav2, build_genpercept, count_parameters
from depthdistill.models.dav2 import IMAGENET_MEAN, IMAGENET_STD, DepthAnythingTeacher
from depthdistill.models.fingerprint import hash_state_dict, teacher_fingerprint
from depthdistill.models.genpercept import GenPerceptTeacher, genpercept_one_step, save_genpercept_folder
from depthdistill.models.prompt_embedding import (load_prompt_embedding, save_prompt_embedding,
                                                  tiny_prompt_embedding)
from depthdistill.models.hub import resolve_model_path
from depthdistill.models.registry import fingerprint_teacher, load_teacher
from depthdistill.views import resize
from test_teacher_kind_dpt import _tiny_dpt

REPO = Path(__file__).resolve().parents[1]


def _images(batch=2, height=96, width=128, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def dav2_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dav2") / "dav2-tiny"
    build_dav2("tiny", seed=0).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def gp_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gp") / "genpercept-tiny"
    unet, vae = build_genpercept("tiny", seed=0)
    save_genpercept_folder(unet, vae, tiny_prompt_embedding(unet.config.cross_attention_dim), folder)
    return folder


def _dav2_cfg(model, **kw) -> TeacherConfig:
    return TeacherConfig(name="dav2", kind="dav2", model=str(model), **kw)


def _gp_cfg(model, **kw) -> TeacherConfig:
    kw.setdefault("input_size", 64)
    return TeacherConfig(name="gp", kind="genpercept", model=str(model), **kw)


# ------------------------------------------------------------------------------------------
# Configs

def test_real_size_configs_match_published_parameter_counts():
    assert count_parameters(build_dav2("tiny")) == 121_865
    expected = {"small": 24.8e6, "base": 97.5e6, "large": 335e6}
    with torch.device("meta"):
        counts = {size: count_parameters(build_dav2(size, seed=None)) for size in expected}
        unet, vae = build_genpercept("sd21", seed=None)
    for size, want in expected.items():
        assert abs(counts[size] - want) / want < 0.01, (size, counts[size])
    assert abs(count_parameters(unet) - 865e6) / 865e6 < 0.01
    assert abs(count_parameters(vae) * 2 - 167e6) / 167e6 < 0.01  # 167 MB in fp16


def test_unknown_size_is_a_clear_error():
    with pytest.raises(ValueError, match="huge.*tiny, small, base, large"):
        configs.dav2_config("huge")


# ------------------------------------------------------------------------------------------
# Depth Anything V2

def test_dav2_loads_offline_and_matches_manual_reference(dav2_dir):
    teacher = load_teacher(_dav2_cfg(dav2_dir), device="cpu")
    images = _images()
    maps = teacher.predict(images)
    assert maps.shape == (2, 96, 128) and maps.dtype == torch.float32 and maps.device.type == "cpu"
    assert teacher.space == "disparity" and teacher.input_multiple == 14 and teacher.input_size == 112

    reference_model = build_dav2("tiny", seed=0)  # same seed -> same weights as the saved folder
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255  # [B, 3, H, W]
    x = resize(x, (112, 112))
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = resize(reference_model(pixel_values=x).predicted_depth, (96, 128))  # [B, H, W]
    torch.testing.assert_close(maps, expected, rtol=1e-5, atol=1e-6)


def test_dav2_input_forms_agree_and_native_size_skips_resize(dav2_dir):
    teacher = DepthAnythingTeacher.from_pretrained(str(dav2_dir), input_size=56)
    images = _images(height=56, width=56)
    as_uint8 = teacher.predict(images)
    as_torch = teacher.predict(torch.from_numpy(images))
    as_float = teacher.predict(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    torch.testing.assert_close(as_uint8, as_torch, rtol=0, atol=0)
    torch.testing.assert_close(as_uint8, as_float, rtol=0, atol=0)
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - teacher.mean) / teacher.std
    with torch.no_grad():
        direct = teacher.model(pixel_values=x).predicted_depth  # [B, 56, 56], no resize anywhere
    torch.testing.assert_close(as_uint8, direct, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"batch \[B, H, W, 3\]"):
        teacher.predict(images[0])


def test_dav2_bf16_on_cpu(dav2_dir):
    fp32 = load_teacher(_dav2_cfg(dav2_dir), device="cpu")
    bf16 = load_teacher(_dav2_cfg(dav2_dir, precision="bf16"), device=torch.device("cpu"))
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    images = _images()
    low, high = bf16.predict(images), fp32.predict(images)
    assert low.dtype == torch.float32 and low.shape == high.shape
    assert not torch.equal(low, high)  # really ran in bf16
    assert ((low - high).abs().max() / high.abs().max()).item() < 0.05


def test_dav2_features_are_the_encoder_taps(dav2_dir):
    teacher = DepthAnythingTeacher.from_pretrained(str(dav2_dir), input_size=112)
    images = _images(height=112, width=112)
    out = teacher.infer(images, features=True)
    assert [tuple(f.shape) for f in out.features] == [(2, 1 + 64, 32)] * 4  # (112/14)^2 tokens + CLS
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - teacher.mean) / teacher.std
    with torch.no_grad():
        taps = teacher.model.backbone(x).feature_maps
    for got, want in zip(out.features, taps):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(out.depth, teacher.predict(images))  # the hook changes nothing
    assert teacher.encoder_features(images).shape == (2, 64, 32)
    assert teacher.infer(images).features == []


def test_output_space_from_config(tmp_path, dav2_dir):
    assert load_teacher(_dav2_cfg(dav2_dir)).space == "disparity"
    build_dav2("tiny", depth_estimation_type="metric", max_depth=20).save_pretrained(tmp_path / "metric")
    metric = load_teacher(_dav2_cfg(tmp_path / "metric"))
    assert metric.space == "depth"
    maps = metric.predict(_images())
    assert maps.min() >= 0 and maps.max() <= 20.0  # sigmoid * max_depth: metres


def test_preprocessor_mean_std_is_read_from_the_folder(tmp_path):
    folder = tmp_path / "dpt-like"
    build_dav2("tiny").save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    teacher = load_teacher(_dav2_cfg(folder))
    torch.testing.assert_close(teacher.mean.flatten(), torch.full((3,), 0.5))


# ------------------------------------------------------------------------------------------
# GenPercept

def _reference_step(unet, vae, rgb01, embeds):
    """GenPercept's step written out independently of the library (TEACHERS.md)."""
    with torch.no_grad():
        posterior = vae.encode(2 * rgb01 - 1).latent_dist
        z = posterior.mean * 0.18215  # [B, 4, h, w]
        t = torch.tensor([1] * rgb01.shape[0])
        out = unet(z, t, encoder_hidden_states=embeds.repeat(rgb01.shape[0], 1, 1)).sample
        image = vae.decode(-out / 0.18215).sample  # [B, 3, H, W]
        return (torch.clip(image.mean(1), -1, 1) + 1) / 2  # [B, H, W]


def test_genpercept_one_step_matches_reference():
    unet, vae = build_genpercept("tiny", seed=1)
    embeds = tiny_prompt_embedding(16, seed=3)  # [1, 2, 16]
    rgb01 = torch.rand(3, 3, 64, 48, generator=torch.Generator().manual_seed(0))  # [B, 3, H, W]
    with torch.no_grad():
        got = genpercept_one_step(unet, vae, rgb01, embeds)
    want = _reference_step(unet, vae, rgb01, embeds)
    assert got.shape == (3, 64, 48)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert got.min() >= 0 and got.max() <= 1


def test_genpercept_teacher_loads_offline_and_predicts(gp_dir):
    teacher = load_teacher(_gp_cfg(gp_dir), device="cpu")
    assert teacher.space == "disparity" and teacher.input_multiple == 8 and teacher.input_size == 64
    images = _images(height=80, width=72)
    maps = teacher.predict(images)
    assert maps.shape == (2, 80, 72) and maps.dtype == torch.float32
    unet, vae = build_genpercept("tiny", seed=0)
    rgb01 = resize(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255, (64, 64))
    expected = resize(_reference_step(unet, vae, rgb01, tiny_prompt_embedding(16)), (80, 72))
    torch.testing.assert_close(maps, expected, rtol=0, atol=1e-5)
    out = teacher.infer(images, features=True)
    assert len(out.features) == len(teacher.unet.up_blocks)


def test_genpercept_bf16_and_depth_space(gp_dir, tmp_path):
    bf16 = load_teacher(_gp_cfg(gp_dir, precision="bf16"))
    assert bf16.unet.dtype == torch.bfloat16 and bf16.vae.dtype == torch.bfloat16
    maps = bf16.predict(_images())
    assert maps.dtype == torch.float32 and 0 <= maps.min() and maps.max() <= 1
    unet, vae = build_genpercept("tiny", seed=0)
    save_genpercept_folder(unet, vae, tiny_prompt_embedding(16), tmp_path / "gp", unet_subfolder="unet_depth_v2")
    assert load_teacher(_gp_cfg(tmp_path / "gp", unet_subfolder="unet_depth_v2")).space == "depth"


def test_genpercept_prompt_embedding_errors(gp_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPTHDISTILL_CACHE", str(tmp_path / "cache"))
    unet, vae = build_genpercept("tiny", seed=0)
    unet.save_pretrained(tmp_path / "bare" / "unet_disparity_v2")
    vae.save_pretrained(tmp_path / "bare" / "vae")
    with pytest.raises(ValueError, match="embed-prompt"):
        load_teacher(_gp_cfg(tmp_path / "bare"))
    save_prompt_embedding(torch.zeros(1, 2, 24), tmp_path / "cache" / "empty_prompt_sd21.safetensors")
    with pytest.raises(ValueError, match=r"expects \[1, T, 16\]"):
        load_teacher(_gp_cfg(tmp_path / "bare"))
    with pytest.raises(ValueError, match="no UNet subfolder 'unet_x'.*unet_disparity_v2"):
        load_teacher(_gp_cfg(gp_dir, unet_subfolder="unet_x"))


# ------------------------------------------------------------------------------------------
# Prompt embedding and the embed-prompt command

def test_tiny_prompt_embedding_is_seeded_and_round_trips(tmp_path):
    a, b, c = tiny_prompt_embedding(16, seed=0), tiny_prompt_embedding(16, seed=0), tiny_prompt_embedding(16, seed=1)
    assert a.shape == (1, 2, 16) and torch.equal(a, b) and not torch.equal(a, c)
    for name in ("e.safetensors", "e.pt"):
        assert torch.equal(load_prompt_embedding(save_prompt_embedding(a, tmp_path / name)), a)
    assert save_prompt_embedding(a, tmp_path) == tmp_path / "empty_prompt.safetensors"  # a folder
    with pytest.raises(ValueError, match=r"\.safetensors or \.pt"):
        save_prompt_embedding(a, tmp_path / "e.npy")


def _tiny_text_encoder_folder(root: Path):
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab = {ch: i for i, ch in enumerate("abcdefghijklmnopqrstuvwxyz")}
    vocab.update({f"{ch}</w>": 26 + i for i, ch in enumerate("abcdefghijklmnopqrstuvwxyz")})
    vocab.update({"<|startoftext|>": 52, "<|endoftext|>": 53})
    (root / "tokenizer").mkdir(parents=True)
    (root / "tokenizer" / "vocab.json").write_text(json.dumps(vocab))
    (root / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    (root / "tokenizer" / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}))
    torch.manual_seed(0)
    encoder = CLIPTextModel(CLIPTextConfig(vocab_size=54, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                           num_attention_heads=2, max_position_embeddings=77,
                                           bos_token_id=52, eos_token_id=53, pad_token_id=53)).eval()
    encoder.save_pretrained(root / "text_encoder")
    return encoder


def test_embed_prompt_command_writes_the_empty_prompt_embedding(tmp_path):
    from typer.testing import CliRunner

    from depthdistill.commands.teachers import app

    encoder = _tiny_text_encoder_folder(tmp_path / "sd2")
    out = tmp_path / "out" / "empty_prompt.safetensors"
    result = CliRunner().invoke(app, ["embed-prompt", "--text-encoder", str(tmp_path / "sd2"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with torch.no_grad():
        want = encoder(torch.tensor([[52, 53]]))[0]  # [BOS, EOS]: "" without padding
    torch.testing.assert_close(load_prompt_embedding(out), want)
    bad = CliRunner().invoke(app, ["embed-prompt", "--text-encoder", str(tmp_path / "nope/x/"), "--out", str(out)])
    assert bad.exit_code == 2 and "folder not found" in bad.output


# ------------------------------------------------------------------------------------------
# Fingerprints

def test_fingerprint_stable_and_sensitive(dav2_dir, tmp_path):
    first = load_teacher(_dav2_cfg(dav2_dir)).fingerprint
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert load_teacher(_dav2_cfg(dav2_dir)).fingerprint == first
    assert load_teacher(_dav2_cfg(dav2_dir, precision="bf16")).fingerprint != first
    assert load_teacher(_dav2_cfg(dav2_dir, input_size=98)).fingerprint != first
    model = build_dav2("tiny", seed=0)
    with torch.no_grad():
        model.head.conv3.bias[0] += 1e-3  # one weight
    model.save_pretrained(tmp_path / "changed")
    assert load_teacher(_dav2_cfg(tmp_path / "changed")).fingerprint != first
    build_dav2("tiny", seed=0).save_pretrained(tmp_path / "copy")  # same weights elsewhere
    assert load_teacher(_dav2_cfg(tmp_path / "copy")).fingerprint == first


def test_state_dict_hash_and_genpercept_fingerprint(gp_dir, tmp_path):
    sd = {"a": torch.arange(6.0).view(2, 3), "b": torch.ones(2, dtype=torch.bfloat16)}
    assert hash_state_dict(sd) == hash_state_dict({k: v.clone() for k, v in reversed(sd.items())})
    assert hash_state_dict(sd) != hash_state_dict({**sd, "a": sd["a"].view(3, 2)})
    assert teacher_fingerprint("k", "w", "fp32", 112) != teacher_fingerprint("k", "w", "fp32", 112, {"x": "1"})
    base = load_teacher(_gp_cfg(gp_dir)).fingerprint
    assert load_teacher(_gp_cfg(gp_dir)).fingerprint == base
    assert load_teacher(_gp_cfg(gp_dir, input_size=56)).fingerprint != base
    unet, vae = build_genpercept("tiny", seed=0)
    save_genpercept_folder(unet, vae, tiny_prompt_embedding(16, seed=5), tmp_path / "other-prompt")
    assert load_teacher(_gp_cfg(tmp_path / "other-prompt")).fingerprint != base


def test_fingerprint_without_loading_equals_the_loaded_teachers(dav2_dir, gp_dir, tmp_path):
    cfgs = [_dav2_cfg(dav2_dir), _dav2_cfg(dav2_dir, precision="fp16", input_size=56), _gp_cfg(gp_dir),
            _gp_cfg(gp_dir, precision="bf16", input_size=32)]
    build_dav2("tiny", depth_estimation_type="metric", max_depth=10).save_pretrained(tmp_path / "metric")
    cfgs.append(_dav2_cfg(tmp_path / "metric"))
    results = [fingerprint_teacher(cfg) for cfg in cfgs]
    assert len({fp for fp, _ in results}) == len(cfgs)
    for cfg, (fp, space) in zip(cfgs, results):
        teacher = load_teacher(cfg)
        assert (fp, space) == (teacher.fingerprint, teacher.space)


@pytest.mark.slow
def test_fingerprint_is_the_same_in_another_process(dav2_dir):
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "from depthdistill.config import TeacherConfig; from depthdistill.models import load_teacher;"
            "print(load_teacher(TeacherConfig(name='dav2', model=sys.argv[2])).fingerprint)")
    out = subprocess.run([sys.executable, "-c", code, str(REPO), str(dav2_dir)], capture_output=True, text=True,
                         check=True, env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip().splitlines()[-1] == load_teacher(_dav2_cfg(dav2_dir)).fingerprint


# ------------------------------------------------------------------------------------------
# Resolution and errors

def test_embedded_ids_resolve_under_assets(dav2_dir, monkeypatch, tmp_path):
    assert hub.EMBEDDED_ROOT == REPO / "depthdistill" / "assets" / "teachers"
    monkeypatch.setattr(hub, "EMBEDDED_ROOT", dav2_dir.parent)
    assert resolve_model_path("embedded://dav2-tiny") == str(dav2_dir)
    assert load_teacher(_dav2_cfg("embedded://dav2-tiny")).space == "disparity"
    with pytest.raises(ValueError, match="make teachers"):
        resolve_model_path("embedded://genpercept-tiny")


@pytest.mark.parametrize("model, message", [
    ("/no/such/folder", "folder not found"),
    ("./relative/missing", "folder not found"),
    ("nobody-here/not-a-cached-model", "can't be downloaded here"),
    ("s3://bucket/model", "unknown scheme"),
])
def test_bad_model_references_are_clear_errors(model, message):
    with pytest.raises(ValueError, match=message):
        load_teacher(_dav2_cfg(model))


def test_bad_folders_and_settings(tmp_path, dav2_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        load_teacher(_dav2_cfg(tmp_path / "empty"))
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file"):
        load_teacher(_dav2_cfg(tmp_path / "file.bin"))
    with pytest.raises(ValueError, match=r"precision.*'fp8'"):
        DepthAnythingTeacher.from_pretrained(str(dav2_dir), precision="fp8")
    with pytest.raises(ValueError, match="multiple of 14"):
        DepthAnythingTeacher.from_pretrained(str(dav2_dir), input_size=100)


def test_command_module_imports_no_heavy_libraries():
    code = ("import sys, depthdistill.commands.teachers, depthdistill.models;"
            "heavy = [m for m in ('torch', 'transformers', 'diffusers', 'ray') if m in sys.modules];"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# ------------------------------------------------------------------------------------------
# The kind table, and a third kind (DPT / MiDaS) added as one module + one entry


def test_kind_table_recognises_folders_and_hub_ids(dav2_dir, gp_dir, tmp_path):
    from depthdistill.models.kinds import KINDS, guess_kind, teacher_class

    dpt_dir = _tiny_dpt(tmp_path / "dpt-tiny")
    assert guess_kind(str(dav2_dir)) == "dav2" and guess_kind(str(gp_dir)) == "genpercept"
    assert guess_kind(str(dpt_dir)) == "dpt"
    assert guess_kind("embedded://genpercept-tiny") == "genpercept" and guess_kind("embedded://dav2-tiny") == "dav2"
    assert guess_kind("Intel/dpt-large") == "dpt" and guess_kind("guangkaixu/GenPercept") == "genpercept"
    assert guess_kind("depth-anything/Depth-Anything-V2-Large-hf") == "dav2"
    for name, k in KINDS.items():
        cls = teacher_class(name)
        assert cls.kind == name and k.input_multiple >= 1 and k.hub_input_size % k.input_multiple == 0
    with pytest.raises(ValueError, match="teachers\\[x\\].kind"):
        TeacherConfig(name="x", kind="marigold")
    with pytest.raises(ValueError, match="only genpercept teachers read it"):
        TeacherConfig(name="x", kind="dav2", prompt_embedding="p.safetensors")
    assert TeacherConfig(name="d", kind="dpt", input_size=64).input_multiple == 32
