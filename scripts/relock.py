#!/usr/bin/env python3
"""Re-resolve the test lock against the newest releases, run the whole suite with them, and write
``test-lock.txt`` only if it passes: moving to a new transformers (or anything else) is one commit.

    python scripts/relock.py            # newest releases the ranges in pyproject.toml admit
    python scripts/relock.py --torch 2.13.0 --keep /tmp/relock-venv

Steps, in a fresh virtual environment (a temporary folder unless --keep names one):
1. ``pip install torch==<T>`` first, on its own (any looser request pulls a CUDA build), where T is
   the lock's torch unless --torch says otherwise;
2. ``pip install -e ".[test,validate,web]"`` with no constraints: the newest releases the ranges admit;
3. ``pip freeze`` of that environment (local build labels dropped: torch 2.13.0+cpu pins 2.13.0);
4. the README's checks: ruff check, ruff format --check, mypy estimator, pytest;
5. all green: the lock is rewritten and the changed pins printed; otherwise the lock is left as it
   was, the failing step named, exit status 1.

Standard library only; run it from anywhere with the Python the tests use (3.11).
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "test-lock.txt"
HEADER = """\
# The exact versions the test suite passes with, for Python {python} (torch's CPU build).
# Used by the README's test command (`pip install -c test-lock.txt -e ".[test,validate,web]"`) and so by .ci/run;
# users' installs keep the ranges of pyproject.toml. Do not edit by hand: `python scripts/relock.py`
# re-resolves against the newest releases and rewrites this file only when the whole suite passes.
# Written {date}.
"""
CHECKS = (
    ("ruff check", ["-m", "ruff", "check", "."]),
    ("ruff format --check", ["-m", "ruff", "format", "--check", "."]),
    ("mypy estimator", ["-m", "mypy", "estimator"]),
    ("pytest", ["-m", "pytest", "-q"]),
)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")


def pins(text: str) -> dict[str, str]:
    """name -> version for every ``name==version`` line; local labels (``+cpu``) dropped."""
    found = {}
    for line in text.splitlines():
        if match := PIN.match(line.strip()):
            found[match[1].lower().replace("_", "-")] = match[2].split("+", 1)[0]
    return found


def run(python: Path, args: list[str], what: str) -> None:
    print(f"relock: {what}", flush=True)
    done = subprocess.run([str(python), *args], cwd=ROOT, check=False)
    if done.returncode != 0:
        print(f"relock: {what} failed (exit {done.returncode}); {LOCK.name} is unchanged", file=sys.stderr)
        raise SystemExit(1)


def relock(venv: Path, torch: str) -> dict[str, str]:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    run(python, ["-m", "pip", "install", "--quiet", "--upgrade", "pip"], "upgrade pip")
    run(python, ["-m", "pip", "install", "--quiet", f"torch=={torch}"], f"install torch=={torch}")
    run(python, ["-m", "pip", "install", "--quiet", "-e", ".[test,validate,web]"], "install the newest releases")
    frozen = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True, check=True
    ).stdout
    new = pins(frozen)
    for what, args in CHECKS:
        run(python, args, what)
    return new


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    old = pins(LOCK.read_text(encoding="utf-8")) if LOCK.is_file() else {}
    parser.add_argument(
        "--torch", default=old.get("torch", "2.13.0"), help="torch release to pin (default: the lock's)"
    )
    parser.add_argument("--keep", type=Path, help="build the environment in this folder and keep it")
    args = parser.parse_args()
    if args.keep is not None:
        new = relock(args.keep, args.torch)
    else:
        with tempfile.TemporaryDirectory(prefix="relock-") as folder:
            new = relock(Path(folder) / "venv", args.torch)
    python = ".".join(map(str, sys.version_info[:2]))
    date = datetime.datetime.now(datetime.UTC).date().isoformat()
    body = "".join(f"{name}=={version}\n" for name, version in sorted(new.items()))
    LOCK.write_text(HEADER.format(python=python, date=date) + body, encoding="utf-8")
    changed = [f"  {n}: {old.get(n, '(new)')} -> {v}" for n, v in sorted(new.items()) if old.get(n) != v]
    gone = [f"  {n}: {v} -> (gone)" for n, v in sorted(old.items()) if n not in new]
    print(f"relock: the suite passes; {LOCK.name} written with {len(new)} pins")
    print("\n".join(changed + gone) if changed or gone else "relock: no version changed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
