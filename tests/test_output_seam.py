"""One output seam: every format of an answer is written by ``estimator.cli.output.emit`` from one report, and
``--json``/``--csv``/``--markdown`` are aliases of ``--format``. The numbers checked here are derived by hand
from Llama 3 8B's config.json (32 layers, 8 KV heads of 128, hidden 4,096, MLP 14,336)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from estimator.cli.main import main

KV_BYTES_PER_TOKEN = 2 * 32 * 8 * 128 * 2  # K and V, layers, KV heads, head_dim, bf16: 131,072
# LoRA r=32 all-linear: 32 layers · 32 · (q 4096+4096, k 4096+1024, v 4096+1024, o 4096+4096,
# gate 4096+14336, up 4096+14336, down 14336+4096)
LORA_PARAMS = 32 * 32 * (8192 + 5120 + 5120 + 8192 + 3 * 18432)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--model", "llama3-8b", "--tokens", "1k", "--methods", "kv,lora", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_format_says_the_same_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert LORA_PARAMS == 83_886_080
    code, out, _ = run(capsys, "--format", "json")
    record = json.loads(out)
    assert code == 0 and record["kv_cache"]["bytes_per_token"] == KV_BYTES_PER_TOKEN
    assert run(capsys, "--json")[1] == out  # the alias writes the same document
    rows = list(csv.reader(io.StringIO(run(capsys, "--format", "csv")[1])))
    assert rows[0][:4] == ["mechanism", "method", "params", "bytes"]
    assert [r[1] for r in rows[1:]] == ["kv", "lora"] and int(rows[2][2]) == LORA_PARAMS
    assert int(rows[1][3]) == KV_BYTES_PER_TOKEN * 1_000 and int(rows[2][3]) == 2 * LORA_PARAMS
    assert run(capsys, "--csv")[1] == run(capsys, "--format", "csv")[1]
    markdown = run(capsys, "--format", "markdown")[1]
    assert "| LoRA r=32, all-linear (bf16) | 83,886,080 | 167,772,160 |" in markdown
    assert "|---|---:|---:|---:|---:|---:|" in markdown and "\n- KV cache: 2 (K and V)" in markdown
    table = run(capsys)[1]
    assert "131,072,000" in table and "\nAssumptions:\n- KV cache" in table and "|" not in table


@pytest.mark.parametrize("args", [("--json", "--csv"), ("--format", "csv", "--json"), ("--markdown", "--csv")])
def test_two_formats_are_refused_in_one_line(capsys: pytest.CaptureFixture[str], args: tuple[str, ...]) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and err.count("\n") == 1 and "exclude each other" in err


def test_an_unknown_format_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--format", "yaml")
    assert code == 2 and out == "" and "table" in err and "markdown" in err


# The other commands through the same seam: each a report in present/, its --format and aliases. Hand-derived
# numbers for Llama 3 8B as above: KV 131,072 bytes per token in bf16; LoRA r=32 all-linear 83,886,080
# parameters, 167,772,160 bytes in bf16 (2 bytes each) and, at 2 bits per parameter, 167,772,160 bits.
COMMANDS = {
    "compare": ["compare", "-m", "llama3-8b", "-t", "1k"],
    "models": ["models", "--tokens", "100k"],
    "capacity": ["capacity", "--model", "llama3-8b", "--tokens", "1k", "--methods", "kv,lora"],
    "constants": ["constants"],
    "sweep": ["sweep", "--model", "llama3-8b", "--tokens", "1k", "--ranks", "32"],
}
MARKDOWN_ROWS = {  # a row of each command's Markdown table, its numbers derived by hand
    "compare": "| llama3-8b | 8,030,261,248 | 131,072 | 131,072 | 0 B | 1,000 | 167.77 MB |",
    "models": "| llama3-8b | Llama 3 8B | 8,030,261,248 | — | 131,072 | 100,000 |",
    "capacity": f"| LoRA r=32, all-linear (bf16) | {LORA_PARAMS:,} | {2 * LORA_PARAMS:,} | 20.97 MB |",
    "constants": "| knowledge_bits_per_param | 2 | bits per parameter | --bits-per-param |",  # Physics of LMs 3.3
    "sweep": f"| 1,000 | 32 | 131.07 MB | {KV_BYTES_PER_TOKEN:,} | 167.77 MB | {2 * LORA_PARAMS / 1_000:,.2f} |",
}


def command(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_s_format_and_its_aliases_agree(capsys: pytest.CaptureFixture[str], name: str) -> None:
    args = COMMANDS[name]
    code, as_json, _ = command(capsys, *args, "--format", "json")
    assert code == 0 and json.loads(as_json) and command(capsys, *args, "--json")[1] == as_json
    code, as_csv, _ = command(capsys, *args, "--format", "csv")
    assert code == 0 and len(list(csv.reader(io.StringIO(as_csv)))) >= 2
    assert command(capsys, *args, "--csv")[1] == as_csv
    markdown = command(capsys, *args, "--format", "markdown")[1]
    assert command(capsys, *args, "--markdown")[1] == markdown
    assert MARKDOWN_ROWS[name] in markdown and "|---" in markdown
    table = command(capsys, *args)[1]
    assert command(capsys, *args, "--format", "table")[1] == table and "|---" not in table


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_refuses_two_formats_in_one_line(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, err = command(capsys, *COMMANDS[name], "--format", "markdown", "--json")
    assert code == 2 and out == "" and err.count("\n") == 1 and "exclude each other" in err


def test_the_compare_note_of_models_left_out_follows_the_tables_or_goes_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ("compare", "-m", "llama3-8b,mamba-2.8b", "-t", "1k", "--targets", "q_proj,v_proj")  # no q_proj in Mamba
    code, out, err = command(capsys, *args, "--format", "json")
    assert code == 0 and [r["model"] for r in json.loads(out)] == ["llama3-8b"] and err.startswith("Left out")
    code, out, err = command(capsys, *args, "--format", "markdown")
    assert err == "" and out.rstrip().endswith("x_proj.") and "\n\nLeft out (the query does not apply): mamba" in out
    # q and v on 32 layers, r=32: 32 · 32 · (4096+4096 + 4096+1024) = 13,631,488 parameters, 27.26 MB in bf16
    assert "| 27.26 MB |" in out and 32 * 32 * (8192 + 5120) * 2 == 27_262_976


def test_a_sweep_s_out_file_is_its_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = COMMANDS["sweep"]
    code, _, err = command(capsys, *args, "--out", str(tmp_path / "sweep.json"))
    assert code == 0 and err == f"1 rows written to {tmp_path / 'sweep.json'}\n"
    assert (tmp_path / "sweep.json").read_text() == command(capsys, *args, "--format", "json")[1]
    code, out, err = command(capsys, *args, "--format", "csv", "--out", str(tmp_path / "sweep.csv"))
    assert code == 2 and out == "" and err.count("\n") == 1 and "exclude each other" in err


def test_markdown_right_aligns_numbers_and_leaves_text_columns_left() -> None:
    from estimator.present.report import markdown_table

    rows = [["model", "parameters", "pretrained on", "source"], ["gpt2", "124,439,808", "—", "https://x | y"]]
    assert markdown_table(rows).splitlines() == [
        "| model | parameters | pretrained on | source |",
        "|---|---:|---:|---|",
        "| gpt2 | 124,439,808 | — | https://x \\| y |",
    ]
