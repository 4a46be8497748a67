"""Random command lines from the real option grammar and mutated configs (tools/fuzz_cli.py, a copy of the
team's fuzzer): no traceback, hang, impossible number or malformed error, over a fixed seed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261129
CALLS = 160  # two jobs, ~0.2 s a call: the suite's time budget


def test_random_command_lines_never_crash_hang_or_lie(tmp_path: Path) -> None:
    beside = Path(sys.executable).with_name("estimate")
    exe = str(beside) if beside.exists() else shutil.which("estimate")
    if exe is None:
        pytest.skip("the estimate command is not installed in this environment (pip install -e .)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "fuzz_cli.py"), exe, "--count", str(CALLS), "--seed", str(SEED),
         "--jobs", "2", "--timeout", "60", "--slow", "60", "--workdir", str(tmp_path),
         "--configs", str(ROOT / "tests" / "data" / "hf_configs")],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"{CALLS} calls" in done.stdout and "traceback: 0" in done.stdout and "hang: 0" in done.stdout
