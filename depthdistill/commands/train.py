"""`depthdistill train`: distill a student from a label store.

    depthdistill train --shards STORE [--config stages.yaml] [--out DIR] [--steps N] [--nproc N]

`--nproc N > 1` launches N DDP processes through `torch.distributed.run` (torchrun) running
`python -m depthdistill.trainer` (gloo on CPU, nccl on GPU). torch is imported inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from depthdistill.commands.errors import user_errors


def torchrun_args(nproc: int, shards: Path, config: Path, out: Optional[Path], steps: Optional[int]) -> list[str]:
    """The argv of `torch.distributed.run` for a single-node DDP run."""
    args = ["--standalone", f"--nproc_per_node={nproc}", "-m", "depthdistill.trainer",
            "--shards", str(shards), "--config", str(config)]
    if out is not None:
        args += ["--out", str(out)]
    if steps is not None:
        args += ["--steps", str(steps)]
    return args


@user_errors
def command(
    shards: Path = typer.Option(..., "--shards", "-s", help="label store folder (made by `depthdistill labels`)"),
    config: Path = typer.Option(Path("stages.yaml"), "--config", "-c", help="stages.yaml"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run folder (default train.out)"),
    steps: Optional[int] = typer.Option(None, "--steps", help="override train.steps"),
    nproc: int = typer.Option(1, "--nproc", help="DDP processes on this node (torchrun)"),
) -> None:
    """Distill a student; checkpoints, TensorBoard logs and DIR/student/ go to the run folder."""
    from depthdistill.config import load_config

    cfg = load_config(config)  # validate before any process starts
    if steps is not None and steps < 1:
        raise typer.BadParameter("--steps must be 1 or more")
    if nproc < 1:
        raise typer.BadParameter("--nproc must be 1 or more")
    if nproc > 1:
        from torch.distributed import run as torchrun

        torchrun.main(torchrun_args(nproc, shards, config, out, steps))
        return
    from depthdistill.trainer.loop import train

    result = train(cfg, shards, out, steps=steps)
    typer.echo(f"trained {result.steps} steps ({result.skipped_steps} skipped, {result.skipped_shards} bad shards); "
               f"best eval AbsRel {result.best_abs_rel:.4f}; student: {result.export_dir}")
