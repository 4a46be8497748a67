"""Time the plain query as whole processes, next to the import floor of its two libraries.

    python benchmarks/startup.py [--runs 21]

Prints the median wall time of each command over the runs (after one warm-up run), and the
ratio of the query to the floor `python -c "import typer, pydantic"`. Target: at most 2x.

Python may write bytecode in every run (PYTHONDONTWRITEBYTECODE is removed from the commands'
environment): a user's installed package has its .pyc files, and without them every run compiles
the modules anew (some sandboxes set the variable, which made the query look ~20% slower).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall_ms(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=ENV)
    return (time.perf_counter() - start) * 1000


def medians_ms(commands: dict[str, list[str]], runs: int) -> dict[str, float]:
    """Median wall time of each command; the commands take turns within each round, so that a
    slower or busier moment of the machine weighs on all of them alike."""
    for command in commands.values():
        wall_ms(command)  # warm-up: file cache, .pyc
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, command in commands.items():
            times[label].append(wall_ms(command))
    return {label: statistics.median(values) for label, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    python = sys.executable
    beside = Path(python).with_name("estimate")
    estimate = str(beside) if beside.exists() else shutil.which("estimate") or "estimate"
    queries = (
        "--model llama3-70b --tokens 100k --rank 32",
        "--model llama3-70b --tokens 100k --rank 32 --json",
        "models",
        "serve-memory --model llama3-70b --tokens 8k --tp 1,2,4,8 --batch 1,8",
        "train-memory --model llama3.1-8b --tokens 8k",
    )
    commands = {"floor: python -c 'import typer, pydantic'": [python, "-c", "import typer, pydantic"]}
    commands |= {f"estimate {query}": [estimate, *shlex.split(query)] for query in queries}
    results = medians_ms(commands, args.runs)
    floor = next(iter(results.values()))
    for label, ms in results.items():
        print(f"{ms:7.1f} ms  {ms / floor:4.2f}x floor  {label}")
    heavy = subprocess.run(
        [python, "-X", "importtime", "-m", "estimator.cli", "--model", "llama3-70b"],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    ).stderr
    loaded = sorted(set(re.findall(r"\|\s+(numpy|pandas|matplotlib|torch)$", heavy, flags=re.MULTILINE)))
    print(f"heavy modules imported by the plain query: {', '.join(loaded) or 'none'}")
    for command in ("serve-memory", "train-memory"):
        heavy = subprocess.run([python, "-X", "importtime", "-m", "estimator.cli", command, "--model", "llama3-70b"],
                               capture_output=True, text=True, check=True, env=ENV).stderr  # fmt: skip
        loaded = sorted(set(re.findall(r"\|\s+(numpy|pandas|matplotlib|torch)$", heavy, flags=re.MULTILINE)))
        print(f"heavy modules imported by {command}: {', '.join(loaded) or 'none'}")


if __name__ == "__main__":
    main()
