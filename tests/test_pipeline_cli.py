"""`depthdistill labels`: config errors exit 2 before any model or Ray starts; the closing lines."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from depthdistill.cli import app


def test_importing_the_command_stays_light():
    code = ("import sys, depthdistill.commands.labels; "
            "print(sorted(m for m in ('torch', 'ray', 'transformers', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_config_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["labels", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "config file not found" in result.output


def _write_cfg(tmp_path, **labels) -> str:
    data = {"images": {"source": "world://unlabeled?n=2"},
            "teachers": [{"name": "dav2", "kind": "dav2", "model": str(tmp_path / "dav2"),
                          "input_size": 112, "batch_size": 8}],
            "labels": {"out": str(tmp_path / "out"), "shard_size": 1, "num_actors": 1, **labels}}
    path = tmp_path / "stages.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("args, match", [
    (["--teachers", "dav2,nope"], "unknown teacher"),
    (["--format", "parquet"], "labels.format"),
])
def test_bad_overrides_exit_2_before_anything_loads(tmp_path, args, match):
    import sys as _sys
    cfg = _write_cfg(tmp_path)
    result = CliRunner().invoke(app, ["labels", "--config", cfg, *args])
    assert result.exit_code == 2, result.output
    assert match in result.output
    assert not (tmp_path / "out").exists()  # nothing planned or written
    ray = _sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()


@pytest.mark.slow
def test_cli_run_prints_summary_and_rerun_is_a_cache_hit(tmp_path):
    from depthdistill.models import build_dav2

    build_dav2("tiny").save_pretrained(tmp_path / "dav2")
    cfg = _write_cfg(tmp_path)
    runner = CliRunner()
    first = runner.invoke(app, ["labels", "--config", cfg, "--no-progress"])
    assert first.exit_code == 0, first.output
    assert "bad inputs: 0" in first.output and "store: " in first.output
    calls = [ln for ln in first.output.splitlines() if ln.startswith("teacher calls:")]
    assert calls and not calls[0].startswith("teacher calls: 0 ")
    second = runner.invoke(app, ["labels", "--config", cfg, "--no-progress", "--format", "webdataset"])
    assert second.exit_code == 0, second.output
    assert "teacher calls: 0 " in second.output and "cache hit" in second.output
