"""One output seam: every format of an answer is written by ``estimator.cli.output.emit`` from one report, and
``--json``/``--csv``/``--markdown`` are aliases of ``--format``. The numbers checked here are derived by hand
from Llama 3 8B's config.json (32 layers, 8 KV heads of 128, hidden 4,096, MLP 14,336)."""

from __future__ import annotations

import csv
import io
import json

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
