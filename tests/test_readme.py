"""The README is the contract with a newcomer: its commands and its sample output must be true."""

from __future__ import annotations

import re
from pathlib import Path

from estimator.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = next(block.strip() for block in _bash_blocks() if "pytest" in block)
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci_lines[-1] == test_command


def test_readme_shows_the_real_output_of_the_main_query(capsys) -> None:  # type: ignore[no-untyped-def]
    install = next(block.strip() for block in _bash_blocks() if "estimate --model" in block)
    args = install.split("estimate ", 1)[1].split()
    assert main(args) == 0
    out = capsys.readouterr().out
    shown = re.search(r"```text\n(.*?)```", README, flags=re.DOTALL)
    assert shown is not None
    assert shown.group(1) == out


def test_readme_python_example_runs_and_its_comment_is_true(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    block = re.search(r"```python\n(.*?)```", README, flags=re.DOTALL)
    assert block is not None
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {}
    exec(block.group(1), namespace)
    est = namespace["est"]
    shown = re.search(r"# \((.*?)\)\n", block.group(1))
    assert shown is not None
    values = (
        est.kv_bytes_per_token,
        est.lora_params,
        est.kv_to_lora_bytes_ratio,
        est.crossover_tokens,
        est.parity_rank,
    )  # type: ignore[attr-defined]
    assert shown.group(1) == ", ".join(repr(v) for v in values)


def test_every_shown_command_prints_what_the_readme_shows(capsys) -> None:  # type: ignore[no-untyped-def]
    """Each ```text block that starts with `$ estimate ...` (the validation sample, abridged with '...', aside)
    is that command's output, byte for byte."""
    blocks = re.findall(r"```text\n\$ estimate (.*?)\n(.*?)```", README, flags=re.DOTALL)
    checked = 0
    for command, shown in blocks:
        if command.startswith("validate") or "\n...\n" in shown:
            continue
        assert main(command.split()) == 0, command
        assert capsys.readouterr().out == shown, command
        checked += 1
    assert checked >= 3
