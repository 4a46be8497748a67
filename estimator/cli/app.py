"""The typer application every command registers on, and the printing helpers they share."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    add_completion=False,
    invoke_without_command=True,
    help="Bytes per token for each way of teaching a model new text: the KV cache (in context), adapters "
    "(LoRA, DoRA, IA3, LoReFT, prefix and prompt tuning), full fine-tuning, pretraining.",
    epilog="Example: estimate --model llama3-70b --tokens 100k --rank 32",
)

EXIT_BAD_INPUT = 2


def say(text: str, bullet: str = "") -> None:
    """Print a paragraph: wrapped to a terminal's width, one unbroken line when piped."""
    if sys.stdout.isatty():
        import shutil
        import textwrap

        width = shutil.get_terminal_size().columns
        text = textwrap.fill(text, width=width, initial_indent=bullet, subsequent_indent=" " * len(bullet))
        typer.echo(text)
    else:
        typer.echo(bullet + text)
