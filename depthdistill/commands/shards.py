"""`depthdistill shards inspect PATH [--png FILE]` and `depthdistill shards validate PATH`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from depthdistill.commands.errors import user_errors

app = typer.Typer(help="Inspect or validate a label store.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@app.command("inspect")
@user_errors
def inspect(path: Path = typer.Argument(..., help="label store folder (holds manifest.json)"),
            png: Optional[Path] = typer.Option(None, "--png", help="write a preview PNG here"),
            samples: int = typer.Option(3, "--samples", help="samples in the preview")) -> None:
    """Counts, teachers, spaces, sizes on disk and bytes per label pixel; optional preview."""
    from rich.console import Console
    from rich.table import Table

    from depthdistill.shards.inspect import inspect_store, render_preview

    summary = inspect_store(path)
    console = Console()
    console.print(f"[bold]{summary.path}[/]  format={summary.format}  shards={summary.num_shards}  "
                  f"views={summary.num_views}  bad inputs={summary.num_bad_inputs}  "
                  f"codec={summary.codec}  total={_size(summary.total_bytes)}")
    table = Table("folder", "space", "done shards", "samples", "size", "B/label px", "max q-err")
    for f in summary.folders:
        bpp = f"{f.bytes_per_label_pixel:.3f}" if f.bytes_per_label_pixel else "-"
        table.add_row(f.folder.name, f.space or "-", f"{f.done}/{summary.num_shards}",
                      str(f.num_samples), _size(f.bytes), bpp,
                      f"{f.qerr_max:.1e}" if f.space else "-")
    console.print(table)
    if png is not None:
        out = render_preview(path, png, num_samples=samples)
        console.print(f"preview: {out} (columns: view, then per teacher: global, patches on footprints)")


@app.command("validate")
@user_errors
def validate(path: Path = typer.Argument(..., help="label store folder (holds manifest.json)")) -> None:
    """Check checksums, markers, key order, NaN/inf and shapes of every shard; exit 1 on a fault."""
    from rich.console import Console
    from rich.table import Table

    from depthdistill.shards.validate import validate_store

    report = validate_store(path)
    console = Console(width=200)
    if report.leftovers:
        console.print(f"[yellow]{len(report.leftovers)} leftover temp file(s); a rerun of "
                      "`depthdistill labels` cleans them[/]")
    if report.ok:
        console.print(f"[green]OK[/] {report.path}: {report.num_shards} shards, {report.num_files} "
                      f"shard files, {report.num_samples} views")
        return
    table = Table("file", "check", "detail", title=f"{len(report.faults)} fault(s) in {report.path}")
    for f in report.faults:
        table.add_row(str(Path(f.file).relative_to(report.path)) if f.file.startswith(str(report.path))
                      else f.file, f.check, f.detail)
    console.print(table)
    raise typer.Exit(1)
