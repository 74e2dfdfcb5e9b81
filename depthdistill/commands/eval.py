"""`depthdistill eval`: models x benchmarks -> a Table-5-style table + results.json / .csv.

Heavy imports (torch, transformers, the evaluation package) happen inside `command`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from depthdistill.commands.errors import user_errors

from depthdistill.commands import options

DATASET_NAMES = ("nyuv2", "kitti", "eth3d", "scannet", "diode", "world", "middlebury")
NO_ROOT = ("world", "middlebury")  # rendered / bundled: a root is optional


def pair_datasets(datasets: list[str], roots: list[str]) -> list[tuple[str, str]]:
    """--dataset / --root lists -> (name, root) pairs.

    `--dataset name=DIR` carries its own root. Otherwise roots pair with data sets in order;
    when there are fewer roots than data sets, `world` and `middlebury` entries take none (the
    rendered split, the frame bundled with scikit-image) and the roots go to the others in order.
    """
    pairs = [tuple(d.split("=", 1)) if "=" in d else (d, None) for d in datasets]
    for name, _ in pairs:
        if name not in DATASET_NAMES:
            raise ValueError(f"--dataset {name}: unknown data set; choose from {', '.join(DATASET_NAMES)}")
    open_slots = [i for i, (_, r) in enumerate(pairs) if r is None]
    if len(roots) == len(open_slots):
        targets = open_slots
    else:
        targets = [i for i in open_slots if pairs[i][0] not in NO_ROOT]
        if len(roots) != len(targets):
            raise ValueError(f"--root given {len(roots)} times for {len(targets)} data sets that need one "
                             f"({', '.join(pairs[i][0] for i in targets)}); give one --root per data set in "
                             "order, or write --dataset NAME=DIR")
    out = [(n, r or "") for n, r in pairs]
    for i, root in zip(targets, roots):
        out[i] = (out[i][0], root)
    return out


def load_stages(config: Optional[Path]):
    """The given stages file, else ./stages.yaml if present, else the built-in defaults."""
    from depthdistill.config import StagesConfig, load_config

    if config is not None:
        return load_config(config)
    if Path("stages.yaml").is_file():
        return load_config("stages.yaml")
    return StagesConfig()


@user_errors
def command(
    model: List[str] = typer.Option(..., "--model", "-m",
                                    help="embedded://NAME, hub id, folder, or teacher:NAME; repeat for a table"),
    dataset: List[str] = typer.Option([], "--dataset", "-d",
                                      help=f"one of {', '.join(DATASET_NAMES)} (or NAME=DIR); repeatable; "
                                           "default: the config's eval.datasets"),
    root: List[str] = typer.Option([], "--root", help="data set root (tar or folder), paired in order"),
    config: Optional[Path] = options.CONFIG,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="results folder (default eval.out, runs/eval)"),
    device: str = options.DEVICE,
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="default eval.batch_size"),
    input_size: Optional[int] = options.INPUT_SIZE,
    no_progress: bool = options.NO_PROGRESS,
) -> None:
    """Score models with the Marigold protocol (affine-aligned AbsRel / delta1)."""
    from rich.console import Console

    stages = load_stages(config)
    pairs = (pair_datasets(dataset, root) if dataset else
             [(d.name, d.root) for d in stages.eval.datasets])
    from depthdistill.evaluation.report import build_table
    from depthdistill.evaluation.runner import run_eval

    out_dir = out or Path(stages.eval.out)
    results = run_eval(model, pairs, stages, device=device, batch_size=batch_size,
                       input_size=input_size, out=out_dir, progress=not no_progress)
    console = Console()
    console.print(build_table(results))
    for r in results:
        if r.num_skipped:
            reasons = "; ".join(f"{k}: {why}" for k, why in r.skipped[:3])
            console.print(f"[yellow]{r.model} / {r.dataset}: {r.num_skipped} images skipped[/] ({reasons}"
                          f"{' ...' if r.num_skipped > 3 else ''})")
    console.print(f"wrote {out_dir / 'results.json'}, {out_dir / 'results.csv'}, {out_dir / 'per_image.jsonl'}")
