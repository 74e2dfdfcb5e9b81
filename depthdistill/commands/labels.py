"""`depthdistill labels`: run every teacher once over an image collection and write the store.

Thin: parse -> load_config (ConfigError -> exit 2 before any model loads) -> run_labels ->
closing table. torch / ray are imported inside `command` (CLI start-up stays fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


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

    from depthdistill.config import ConfigError, load_config

    console = Console(stderr=False)
    try:
        overrides = {"labels.format": fmt} if fmt else None
        cfg = load_config(config, overrides)
        from depthdistill.pipeline.run import resolve_settings

        resolve_settings(cfg, images=images, out=out, teachers=teachers, fmt=fmt)  # exit 2 early
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    from depthdistill.pipeline.run import run_labels
    from depthdistill.pipeline.summary import NullProgress, TqdmProgress, render_summary

    try:
        summary = run_labels(cfg, images=images, out=out, teachers=teachers, fmt=fmt,
                             progress=NullProgress() if no_progress else TqdmProgress())
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:  # bad source path, store mismatch, ...: user-fixable input
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    render_summary(summary, console)
    if not summary.ok:
        console.print(f"rerun: depthdistill labels --config {config}"
                      + (f" --images {images}" if images else "")
                      + (f" --out {out}" if out else "")
                      + (f" --teachers {teachers}" if teachers else ""), markup=False)
        raise typer.Exit(1)
