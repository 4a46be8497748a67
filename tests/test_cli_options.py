"""One query, declared once: every command that takes a model takes every option of the query; options
before a subcommand apply to it or are refused; a repeated option is refused; library errors are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from estimator.cli.app import app
from estimator.cli.breakeven import BREAKEVEN_OPTIONS
from estimator.cli.figures import FIGURE_OPTIONS
from estimator.cli.main import LAZY_COMMANDS, register_commands
from estimator.compare import estimate
from estimator.errors import EstimatorError
from estimator.query.options import OPTION_NAMES as QUERY_OPTION_NAMES
from estimator.query.options import SERVING_OPTIONS, TRAINING_OPTIONS
from estimator.zoo import load_spec

from .test_cli import run

NO_QUERY = {"models", "constants", "serve", "inspect"}  # the commands that take no model (inspect reads a path)
RESTRICTED = {  # the rest would do nothing there
    "serve-memory": SERVING_OPTIONS,
    "train-memory": TRAINING_OPTIONS,
    "breakeven": BREAKEVEN_OPTIONS,  # no --methods, prefix/prompt, LoReFT, IA3 or pretraining options
    **dict.fromkeys(("figures", "plot", "sweep"), FIGURE_OPTIONS),  # no --methods, prefix/prompt, LoReFT, IA3
}


def _commands() -> dict[str, set[str]]:
    register_commands(["--help"])
    group = typer.main.get_command(app)
    commands = {"(headline)": {p.name for p in group.params if p.name}}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        commands[name] = {p.name for p in command.params if p.name}
    return commands


def test_every_command_that_takes_a_model_takes_the_whole_query() -> None:
    commands = _commands()
    assert set(LAZY_COMMANDS) <= set(commands)
    for name, params in commands.items():
        if name in NO_QUERY:
            assert not params & {"model", "config", "rank"}, name  # `models --tokens` states its T
            continue
        offered = RESTRICTED.get(name, QUERY_OPTION_NAMES)
        missing = [option for option in offered if option not in params]
        assert not missing, f"`estimate {name}` lacks the query options {missing}"
        idle = [option for option in QUERY_OPTION_NAMES if option in params and option not in offered]
        assert not idle, f"`estimate {name}` lists query options it does not read: {idle}"


def test_options_before_a_subcommand_apply_to_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--model", "gpt2", "--tokens", "1k", "sweep", "--rank", "8", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["query"]["model"] == "gpt2"
    assert [(row["tokens"], row["rank"]) for row in data["rows"]] == [(1_000, 8)]  # --tokens 1k: a grid of one


def test_figures_draw_the_model_given_before_the_subcommand(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`estimate --model gpt2 figures --out f` drew Llama 3 70B and exited 0."""
    code, _, err = run(capsys, "--model", "gpt2", "figures", "--out", str(tmp_path), "--format", "png")
    assert code == 0, err
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["model"] == "gpt2"


def test_options_a_subcommand_does_not_take_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--model", "gpt2", "models")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--model does not apply to `estimate models`" in err


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "llama3-8b", "--model", "qwen3-8b"],
        ["-m", "llama3-8b", "--model", "qwen3-8b"],
        ["--model", "gpt2", "sweep", "--model", "llama3-8b"],
        ["--rank", "8", "--rank=16", "--model", "gpt2"],
        ["sweep", "--tokens", "1k", "--tokens", "2k"],
    ],
)
def test_a_repeated_option_is_refused(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and err.count("\n") == 1 and "given twice" in err, err


def test_sweep_takes_every_cache_convention(capsys: pytest.CaptureFixture[str]) -> None:
    """`sweep --mla-cache expanded` was refused as an unknown option."""
    code, out, err = run(capsys, "sweep", "--model", "deepseek-v3", "--mla-cache", "expanded", "--tokens", "1k",
                         "--ranks", "8", "--json")  # fmt: skip
    assert code == 0, err
    row = json.loads(out)["rows"][0]
    assert row["kv_cache_bytes"] == 1_000 * 61 * 128 * (192 + 128) * 2  # H keys of 192 and values of 128


def test_breakeven_takes_the_kv_dtype_and_the_experts(capsys: pytest.CaptureFixture[str]) -> None:
    """`breakeven --kv-dtype int4` was refused, and breakeven had no --experts."""
    code, out, err = run(capsys, "breakeven", "--model", "llama3-70b", "--kv-dtype", "int4", "--json")
    assert code == 0, err
    assert json.loads(out)["kv_cache_bytes_held"] == 100_000 * 92_160  # int4, groups of 64: 4.5 bits
    code, out, err = run(capsys, "breakeven", "--model", "mixtral-8x7b", "--experts", "none", "--json")
    assert code == 0, err
    d, kv, n, r = 4096, 1024, 32, 32
    assert json.loads(out)["adapter_params"] == n * r * (2 * (d + d) + 2 * (d + kv))  # attention only


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["breakeven", "--model", "gpt2", "--epochs", "0"], "--epochs 0 must be at least 1"),
        (["capacity", "--model", "gpt2", "--bits-per-param", "0"], "--bits-per-param 0 must be positive"),
    ],
)
def test_library_errors_reach_the_cli_as_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err, err


def test_library_code_raises_the_projects_error() -> None:
    """cost.py and capacity.py raised plain ValueError, which the CLI does not turn into one line."""
    from estimator.capacity import capacity
    from estimator.cost import breakeven

    est = estimate(load_spec("gpt2"), 1_000, 8)
    with pytest.raises(EstimatorError, match="at least 1"):
        breakeven(est, epochs=0)
    with pytest.raises(EstimatorError, match="positive"):
        capacity(est, bits_per_param=0)
    with pytest.raises(EstimatorError, match="100 and 1000"):
        from estimator.constants import knowledge_bits_per_param

        knowledge_bits_per_param(300)
