"""Opening what a checkpoint folder holds, safely: only regular files (never a FIFO, a device or a socket, which
would block a read or never end), only files inside the folder the user named (no symlink out of it), and names
printed without terminal control characters."""

from __future__ import annotations

import stat
import unicodedata
from pathlib import Path

from estimator.errors import EstimatorError


def regular_size(path: Path) -> int:
    """The size of ``path`` in bytes if it is a regular file (a symlink to one counts); one line otherwise."""
    try:
        mode = Path(path).stat()
    except OSError as exc:
        raise EstimatorError(f"cannot read {printable(str(path))} ({exc.strerror or exc}); check the path") from None
    if not stat.S_ISREG(mode.st_mode):
        raise EstimatorError(f"{printable(str(path))} is not a regular file (a FIFO, device or socket); pass a file")
    return mode.st_size


def is_regular(path: Path) -> bool:
    """Whether ``path`` is a regular file (or a symlink to one), never blocking on a FIFO."""
    try:
        return stat.S_ISREG(Path(path).stat().st_mode)
    except OSError:
        return False


def inside(folder: Path, path: Path) -> Path:
    """``path`` if it resolves (symlinks followed) to a regular file inside ``folder``; one line otherwise."""
    real, root = path.resolve(), folder.resolve()
    if not real.is_relative_to(root):
        raise EstimatorError(
            f"{printable(str(path))} points outside {printable(str(folder))} (to {printable(str(real))}); copy the "
            "file into the folder instead of linking it"
        )
    regular_size(real)
    return real


def printable(text: str, limit: int = 200) -> str:
    """``text`` safe for a terminal: control and format characters (escape sequences, bidi overrides) shown as
    ``\\x1b``-style escapes, and at most ``limit`` characters."""
    out = "".join(
        c if unicodedata.category(c)[0] != "C" else c.encode("unicode_escape").decode("ascii") for c in text[:limit]
    )
    return out + ("…" if len(text) > limit else "")
