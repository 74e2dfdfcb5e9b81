"""`depthdistill predict IMAGES_OR_DIR... --model ... --out DIR [--sheet]`.

Heavy imports happen inside `command`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from depthdistill.commands.errors import user_errors

from depthdistill.commands import options


@user_errors
def command(
    inputs: List[Path] = typer.Argument(..., help="images and/or folders (folders recurse)"),
    model: str = typer.Option(..., "--model", "-m", help="embedded://NAME, hub id, folder, or teacher:NAME"),
    out: Path = typer.Option(Path("runs/predict"), "--out", "-o", help="output folder"),
    sheet: bool = typer.Option(False, "--sheet", help="also write sheet.png (RGB | depth, first 8 images)"),
    config: Optional[Path] = options.CONFIG,
    device: str = options.DEVICE,
    batch_size: int = typer.Option(8, "--batch-size"),
    input_size: Optional[int] = options.INPUT_SIZE,
    no_progress: bool = options.NO_PROGRESS,
) -> None:
    """Write a 16-bit PNG (+ min/max json), a float32 .npy and a colour PNG per image."""
    from depthdistill.commands.eval import load_stages

    stages = load_stages(config)
    from depthdistill.evaluation.predict import predict_images
    from depthdistill.evaluation.predictor import DepthPredictor

    predictor = DepthPredictor(model, stages, device=device, input_size=input_size, batch_size=batch_size)
    summary = predict_images(inputs, predictor, out, sheet=sheet, batch_size=batch_size,
                             progress=not no_progress)
    for path, reason in summary.bad:
        typer.echo(f"skipped {path}: {reason}", err=True)
    typer.echo(f"{len(summary.written)} images written to {summary.out}, {len(summary.bad)} skipped"
               + (f"; sheet {summary.sheet}" if summary.sheet else ""))
    if not summary.written and summary.bad:
        raise typer.Exit(1)
