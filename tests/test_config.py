"""Config loading: the embedded default is valid; every kind of bad value is one clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from depthdistill.config import ConfigError, StagesConfig, config_from_dict, load_config

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _default() -> dict:
    return yaml.safe_load((REPO / "stages.yaml").read_text())


def test_embedded_default_loads_with_expected_values():
    cfg = load_config(REPO / "stages.yaml")
    assert isinstance(cfg, StagesConfig)
    assert cfg.views.view_size == 112 and cfg.views.crop_min == 129
    assert [t.name for t in cfg.teachers] == ["dav2", "genpercept"]
    assert cfg.teacher("genpercept").input_multiple == 8
    assert cfg.teacher("dav2").input_multiple == 14
    assert cfg.teacher_probabilities() == pytest.approx({"dav2": 0.7, "genpercept": 0.3})


def test_paper_config_loads():
    cfg = load_config(REPO / "configs" / "paper.yaml")
    assert cfg.views.view_size == 560 and cfg.views.crop_min == 644


def _mutate(data: dict, dotted: str, value) -> dict:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value
    return data


BAD_VALUES = [
    # (dotted key to set, value, text the error must contain)
    ("views.colour", 3, "views.colour: unknown key"),
    ("views.view_size", "big", "views.view_size: got 'big'; use an integer"),
    ("views.crop_min", 100, "views.crop_min: got 100; must be >= views.view_size (112)"),
    ("views.view_size", 120, "views.view_size: got 120; must be a multiple of teacher 'dav2' patch size 14"),
    ("views.patch_size", 100, "views.patch_size: got 100; must be a multiple of teacher"),
    ("views.min_overlap", 1.5, "views.min_overlap: got 1.5"),
    ("teachers.0.precision", "fp8", "teachers[0].precision: got 'fp8'; use one of 'fp32', 'fp16', 'bf16'"),
    ("teachers.0.input_size", 100, "teachers[dav2].input_size: got 100; must be a multiple of 14"),
    ("labels.format", "parquet", "labels.format: got 'parquet'; use one of 'webdataset', 'zarr'"),
    ("labels.shard_size", 0, "labels.shard_size: got 0"),
    ("train.norm_sc", "ssi", "train.norm_sc: got 'ssi'"),
    ("train.steps", 1.5, "train.steps: got 1.5; use an integer"),
    ("train.strict", "yes", "train.strict: got 'yes'; use true or false"),
    ("eval.datasets.0.name", "sintel", "eval.datasets[0].name: got 'sintel'"),
]


@pytest.mark.parametrize("dotted,value,message", BAD_VALUES, ids=[b[0] + "=" + repr(b[1]) for b in BAD_VALUES])
def test_bad_value_names_file_key_and_fix(tmp_path, dotted, value, message):
    path = _write(tmp_path, _mutate(_default(), dotted, value))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert text.startswith(str(path) + ": ")
    assert message in text


def test_teacher_weights_must_sum_positive(tmp_path):
    data = _default()
    for t in data["teachers"]:
        t["weight"] = 0.0
    with pytest.raises(ConfigError, match="weights must sum to a positive number"):
        load_config(_write(tmp_path, data))


def test_negative_teacher_weight_rejected(tmp_path):
    data = _mutate(_default(), "teachers.1.weight", -0.3)
    with pytest.raises(ConfigError, match=r"teachers\[genpercept\].weight: got -0.3"):
        load_config(_write(tmp_path, data))


def test_duplicate_teacher_names_rejected(tmp_path):
    data = _mutate(_default(), "teachers.1.name", "dav2")
    with pytest.raises(ConfigError, match="teacher names must be unique"):
        load_config(_write(tmp_path, data))


def test_unknown_stage_and_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="augment: unknown key; allowed keys here: eval, images"):
        load_config(_write(tmp_path, {**_default(), "augment": {}}))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("views: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_overrides_are_type_checked(tmp_path):
    cfg = load_config(REPO / "stages.yaml", {"labels.format": "zarr", "train.steps": 7})
    assert cfg.labels.format == "zarr" and cfg.train.steps == 7
    with pytest.raises(ConfigError, match="labels.format: got 'tar'"):
        load_config(REPO / "stages.yaml", {"labels.format": "tar"})


def test_missing_keys_fall_back_to_defaults_and_dict_round_trip(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text("views:\n  seed: 5\n")
    cfg = load_config(path)
    assert cfg.views.seed == 5 and cfg.views.view_size == 112
    again = config_from_dict(cfg.to_dict())
    assert again.to_dict() | {"source_path": ""} == cfg.to_dict() | {"source_path": ""}


def test_frozen():
    cfg = load_config(REPO / "stages.yaml")
    with pytest.raises(AttributeError):
        cfg.views.view_size = 1  # type: ignore[misc]


def test_cli_labels_bad_config_exits_2_before_loading_models(tmp_path):
    path = _write(tmp_path, _mutate(_default(), "views.crop_min", 50))
    probe = (
        "import sys; from depthdistill.cli import main; sys.argv=['depthdistill','labels','--config',%r]\n"
        "try:\n    main()\nexcept SystemExit as e:\n"
        "    heavy=[m for m in ('torch','transformers','diffusers','ray') if m in sys.modules]\n"
        "    print('HEAVY', heavy); raise\n" % str(path)
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "views.crop_min: got 50" in proc.stderr and str(path) in proc.stderr
    assert "HEAVY []" in proc.stdout


def test_view_size_must_fit_the_student_not_only_the_teachers(tmp_path):
    """A GenPercept-only config with 120-px views passes every teacher rule (multiple of 8) but the
    DAv2 student needs a multiple of 14: caught at load, not at export after training."""
    cfg = {"views": {"view_size": 120, "crop_min": 130, "patch_size": 120},
           "teachers": [{"name": "gp", "kind": "genpercept", "model": "embedded://genpercept-tiny", "input_size": 120}],
           "train": {"student": "tiny"}}
    path = tmp_path / "gp-only.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"views.view_size: got 120; must be a multiple of the student's patch \(14"):
        load_config(path)
    cfg["train"]["student"] = "embedded://dav2-tiny"  # the patch is read from the folder's config.json
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="student's patch"):
        load_config(path)
    cfg["views"] = {"view_size": 112, "crop_min": 129, "patch_size": 112}
    cfg["teachers"][0]["input_size"] = 112
    path.write_text(yaml.safe_dump(cfg))
    assert load_config(path).views.view_size == 112
