"""Typer options that several commands share, declared once so their flags and help agree."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

CONFIG: Optional[Path] = typer.Option(None, "--config", "-c", help="stages.yaml (default ./stages.yaml)")
DEVICE: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ...")
INPUT_SIZE: Optional[int] = typer.Option(None, "--input-size",
                                         help="model input short side (default: teacher's, 518 for hub ids)")
NO_PROGRESS: bool = typer.Option(False, "--no-progress", help="hide the progress bar")
