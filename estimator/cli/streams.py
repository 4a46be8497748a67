"""Output that never fails a command: any locale prints (with ASCII stand-ins for the characters its
encoding lacks), a closed stdout or stderr is quietly replaced, and a reader that stops early (``| head``)
ends the command with status 0."""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import sys
from pathlib import Path

ASCII = {
    "—": "-", "–": "-", "−": "-", "÷": "/", "×": "x", "·": "*", "≥": ">=", "≤": "<=", "→": "->", "≈": "~",
    "✔": "ok", "✗": "X", "⌈": "ceil(", "⌉": ")", "⌊": "floor(", "⌋": ")", "Σ": "sum", "…": "...", "’": "'",
    "‘": "'", "“": '"', "”": '"', "²": "^2", "₁": "1", "ᵀ": "^T", "∞": "inf", "±": "+/-", "µ": "u", "°": " deg",
}  # fmt: skip
HANDLER = "estimator-ascii"


def _stand_in(error: UnicodeError) -> tuple[str, int]:
    """The ASCII stand-in of the characters an encoding lacks ('?' for one we have none for)."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    bad = error.object[error.start : error.end]
    return "".join(ASCII.get(char, "?") for char in bad), error.end


def prepare() -> None:
    """Make stdout and stderr safe to write: open on a closed one, ASCII stand-ins where the locale's
    encoding lacks a character."""
    codecs.register_error(HANDLER, _stand_in)
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:  # closed by the caller (`estimate ... >&-`): write nowhere, quietly
            setattr(sys, name, Path(os.devnull).open("w", encoding="utf-8"))  # noqa: SIM115
        elif isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors=HANDLER)


def silence_stdout() -> None:
    """After a broken pipe: send what is left to /dev/null, so that the final flush cannot fail."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
