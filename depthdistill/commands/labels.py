"""`depthdistill labels`: run every teacher once over an image collection and write the store.

Thin: parse -> load_config -> run_labels (which resolves the CLI overrides first) -> closing
table. A ConfigError (a ValueError) exits 2 before any model loads; torch / ray are imported
inside `command` (CLI start-up stays fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from depthdistill.commands.errors import user_errors


@user_errors
def command(
    config: Path = typer.Option(Path("stages.yaml"), "--config", "-c", help="stages file"),
    images: Optional[str] = typer.Option(
        None, "--images", help="override images.source: folder, .tar, list file or world://unlabeled?n=N"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="the store's parent folder (labels.out)"),
    teachers: Optional[str] = typer.Option(None, "--teachers", help="comma-separated subset, e.g. dav2"),
    fmt: Optional[str] = typer.Option(None, "--format", help="webdataset | zarr (labels.format)"),
    no_progress: bool = typer.Option(False, "--no-progress", help="hide the progress bars"),
) -> None:
    """Label an image collection with the configured teachers (Ray), once."""
    from rich.console import Console

    from depthdistill.config import load_config
    from depthdistill.pipeline.run import run_labels
    from depthdistill.pipeline.summary import NullProgress, TqdmProgress, render_summary

    console = Console(stderr=False)
    cfg = load_config(config, {"labels.format": fmt} if fmt else None)
    # a bad key, teacher subset or format is a ConfigError before any model or Ray starts

    summary = run_labels(cfg, images=images, out=out, teachers=teachers, fmt=fmt,
                         progress=NullProgress() if no_progress else TqdmProgress())
    render_summary(summary, console)
    if not summary.ok:
        console.print(f"rerun: depthdistill labels --config {config}"
                      + (f" --images {images}" if images else "")
                      + (f" --out {out}" if out else "")
                      + (f" --teachers {teachers}" if teachers else ""), markup=False)
        raise typer.Exit(1)
