"""`depthdistill teachers ...`: teacher utilities (sub-app).

    depthdistill teachers embed-prompt --text-encoder prs-eth/marigold-depth-v1-1 --out FILE

Thin commands: parse -> one library call -> summary. torch / transformers load inside.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Teacher utilities: train the embedded tiny teachers, cache GenPercept's prompt embedding.")


@app.callback()
def teachers() -> None:
    """Teacher utilities (a group even while it has one command)."""


@app.command("embed-prompt")
def embed_prompt(
    text_encoder: str = typer.Option(..., "--text-encoder",
                                     help="Hub id or folder with text_encoder/ + tokenizer/ (SD2 OpenCLIP-H, "
                                          "e.g. prs-eth/marigold-depth-v1-1)."),
    out: Path = typer.Option(..., "--out", help="Where to write the embedding (.safetensors or .pt)."),
    text_encoder_subfolder: str = typer.Option("text_encoder", help="Subfolder of the CLIPTextModel."),
    tokenizer_subfolder: str = typer.Option("tokenizer", help="Subfolder of the CLIPTokenizer."),
) -> None:
    """Compute GenPercept's empty-prompt text embedding once and cache it as a file."""
    from depthdistill.models.prompt_embedding import embed_prompt_to_file

    try:
        embedding = embed_prompt_to_file(text_encoder, out, text_encoder_subfolder=text_encoder_subfolder,
                                         tokenizer_subfolder=tokenizer_subfolder)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {out}: empty-prompt embedding {list(embedding.shape)} from {text_encoder}")
