"""`depthdistill teachers ...`: teacher utilities (sub-app).

    depthdistill teachers embed-prompt --text-encoder prs-eth/marigold-depth-v1-1 --out FILE

Thin commands: parse -> one library call -> summary. torch / transformers load inside.
"""

from __future__ import annotations

from pathlib import Path

import typer

from depthdistill.commands.errors import user_errors

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Teacher utilities: train the embedded tiny teachers, cache GenPercept's prompt embedding.")


@app.callback()
def teachers() -> None:
    """Teacher utilities (a group even while it has one command)."""


@app.command("embed-prompt")
@user_errors
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

    embedding = embed_prompt_to_file(text_encoder, out, text_encoder_subfolder=text_encoder_subfolder,
                                     tokenizer_subfolder=tokenizer_subfolder)
    typer.echo(f"wrote {out}: empty-prompt embedding {list(embedding.shape)} from {text_encoder}")


@app.command("train")
@user_errors
def train(
    out: Path = typer.Option(Path("depthdistill/assets/teachers"), help="Folder that receives dav2-tiny/ and genpercept-tiny/."),
    device: str = typer.Option("cpu", help="cpu or cuda; the schedule is in steps, so both give the same recipe."),
    pool_images: int = typer.Option(1200, help="teacher-train renders held in memory."),
    dav2_steps: int = typer.Option(3000), vae_steps: int = typer.Option(400),
    genpercept_steps: int = typer.Option(1500), batch_size: int = typer.Option(16),
    genpercept_batch_size: int = typer.Option(8),
    crop_max: int = typer.Option(0, help="largest training crop side in native px (0 = the short side)."),
    whole_image_fraction: float = typer.Option(0.3, help="batches fed whole (squashed) images."),
    eval_images: int = typer.Option(64, help="eval-split renders the model cards are measured on."),
    seed: int = typer.Option(0),
    suffix: str = typer.Option("", help="appended to the folder names (dav2-tiny<suffix>, genpercept-tiny<suffix>)."),
) -> None:
    """Train the embedded tiny teachers on the world's teacher-train split and write their cards."""
    import json
    import sys

    from depthdistill.models.make_teachers import make_teachers
    from depthdistill.models.teacher_training import TeacherSchedule

    schedule = TeacherSchedule(pool_images=pool_images, dav2_steps=dav2_steps, vae_steps=vae_steps,
                               genpercept_steps=genpercept_steps, batch_size=batch_size,
                               genpercept_batch_size=genpercept_batch_size, crop_max=crop_max,
                               whole_image_fraction=whole_image_fraction, seed=seed)
    command = "depthdistill teachers " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "make teachers"
    summary = make_teachers(out, schedule, device=device, eval_images=eval_images, command=command, suffix=suffix)
    typer.echo(json.dumps(summary, indent=2))


@app.command("card")
@user_errors
def card(
    out: Path = typer.Option(Path("depthdistill/assets/teachers"), help="Folder holding dav2-tiny/ and genpercept-tiny/."),
    device: str = typer.Option("cpu"),
    eval_images: int = typer.Option(64, help="eval-split renders the cards are measured on."),
    trained_with: str = typer.Option("make teachers", help="The command that trained the weights (goes on the card)."),
    training_time: str = typer.Option("", help="JSON of the training run's timing (goes on the card)."),
    suffix: str = typer.Option("", help="the folders' name suffix (as given to `teachers train`)."),
    crop_max: int = typer.Option(0, help="the schedule's crop_max (goes on the card)."),
    whole_image_fraction: float = typer.Option(0.3, help="the schedule's whole_image_fraction (goes on the card)."),
) -> None:
    """Re-measure saved teachers on the eval split and rewrite their model cards (no training)."""
    import json

    from depthdistill.models.make_teachers import write_cards
    from depthdistill.models.teacher_training import TeacherSchedule

    timing = json.loads(training_time) if training_time else {}
    schedule = TeacherSchedule(crop_max=crop_max, whole_image_fraction=whole_image_fraction)
    summary = write_cards(out, schedule, timing, {}, device=device, eval_images=eval_images,
                          command=trained_with, suffix=suffix)
    typer.echo(json.dumps(summary, indent=2))
