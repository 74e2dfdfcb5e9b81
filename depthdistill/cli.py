"""The `depthdistill` command: a typer app that registers one module per command.

Each module in `depthdistill/commands/` exposes either `command` (a typer command function)
or `app` (a typer sub-app). Start-up imports only those thin modules: torch, transformers,
diffusers and ray are imported inside the commands, so `depthdistill --help` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging

import typer

app = typer.Typer(
    name="depthdistill",
    help="Distill Any Depth: label images once with big teachers (Ray), then train students from the shards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# name -> one-line help; the order is the data flow.
COMMANDS = {
    "world": "Render the embedded synthetic RGB-D world (export a split, draw a contact sheet).",
    "teachers": "Teacher utilities: train the embedded tiny teachers, cache GenPercept's prompt embedding.",
    "labels": "Run every teacher once over an image collection (Ray) and write the label store.",
    "shards": "Inspect or validate a label store.",
    "train": "Distill a student from a label store with the cross-context losses.",
    "eval": "Score models on the zero-shot benchmarks (affine-aligned AbsRel / delta1).",
    "predict": "Write depth maps (16-bit PNG, .npy, colour) for images or folders.",
}


def _not_built(name: str):
    def command() -> None:
        typer.echo(f"depthdistill {name}: not built yet in this version.", err=True)
        raise typer.Exit(2)

    command.__doc__ = f"[not built yet] {COMMANDS[name]}"
    return command


def _register(name: str) -> None:
    module_name = f"depthdistill.commands.{name}"
    if importlib.util.find_spec(module_name) is None:
        app.command(name=name, help=f"[not built yet] {COMMANDS[name]}")(_not_built(name))
        return
    module = importlib.import_module(module_name)
    if hasattr(module, "app"):
        app.add_typer(module.app, name=name, help=COMMANDS[name])
    else:
        app.command(name=name, help=COMMANDS[name])(module.command)


for _name in COMMANDS:
    _register(_name)


def setup_logging(verbose: bool = False) -> None:
    """The one logging set-up of the project; library modules only use module loggers."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def main() -> None:
    setup_logging()
    app()  # each command maps a user-fixable error to `error: ...` + exit 2 (commands/errors.py)


if __name__ == "__main__":
    main()
