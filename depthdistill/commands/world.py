"""`depthdistill world export|sheet`: write a world split to disk, or draw a contact sheet.

Thin: parse, call one function of `depthdistill.world` (imported inside the command so that
`depthdistill --help` loads no numpy renderer), print a one-line summary.
"""

from __future__ import annotations

from pathlib import Path

import typer

from depthdistill.commands.errors import user_errors

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Render the embedded synthetic RGB-D world (export a split, draw a contact sheet).")

SPLIT_HELP = "teacher-train | unlabeled | val | eval (disjoint random streams)"


@app.command("export")
@user_errors
def export(
    split: str = typer.Option("unlabeled", "--split", help=SPLIT_HELP),
    n: int = typer.Option(64, "--n", help="number of images (indices 0..n-1)"),
    out: Path = typer.Option(..., "--out", help="output folder (rgb/, depth/, mask/, thin/, meta.json)"),
    seed: int = typer.Option(0, "--seed", help="world seed; with split and index it fixes every image"),
    height: int = typer.Option(384, "--height"),
    width: int = typer.Option(512, "--width"),
    fmt: str = typer.Option("png", "--fmt", help="RGB file format: png | jpg (depth is always 16-bit PNG)"),
    with_depth: bool | None = typer.Option(None, "--with-depth/--no-depth",
                                    help="write depth/mask/thin maps (default: only for val and eval)"),
    workers: int = typer.Option(0, "--workers", help="render processes (0 = os.cpu_count())"),
) -> None:
    """Render images 0..n-1 of a split into OUT (uint16 mm depth PNGs, 0 = invalid)."""
    from depthdistill.world import export_split

    path = export_split(split, n, out, seed=seed, height=height, width=width, fmt=fmt,
                        with_depth=with_depth, num_workers=workers or None)
    typer.echo(f"wrote {n} {split} images ({height}x{width}, seed {seed}) to {path}")


@app.command("sheet")
@user_errors
def sheet(
    split: str = typer.Option("eval", "--split", help=SPLIT_HELP),
    n: int = typer.Option(12, "--n", help="number of images on the sheet"),
    out: Path = typer.Option(Path("docs/world_contact_sheet.png"), "--out", help="PNG to write"),
    seed: int = typer.Option(0, "--seed"),
    height: int = typer.Option(384, "--height"),
    width: int = typer.Option(512, "--width"),
    columns: int = typer.Option(3, "--columns", help="(RGB | depth) pairs per row"),
) -> None:
    """Draw a contact sheet: each image's RGB next to its turbo-coloured depth (invalid black)."""
    from depthdistill.world.sheet import contact_sheet

    path = contact_sheet(split, n, out, seed=seed, height=height, width=width, columns=columns)
    typer.echo(f"wrote contact sheet of {n} {split} images to {path}")
