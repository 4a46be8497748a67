"""serve-memory and train-memory through the one output seam: ``--format json`` is ``--json``, and CSV and
Markdown carry the numbers derived by hand from Llama 3 8B's config.json (32 layers, 8 KV heads of 128,
hidden 4,096, MLP 14,336, 8,030,261,248 parameters)."""

from __future__ import annotations

import csv
import io

import pytest

from estimator.cli.main import main

CACHE_BYTES = 2 * 32 * 8 * 128 * 2 * 8_192  # one sequence of 8,192 tokens in bf16: 1 GiB exactly
LORA_PARAMS = 32 * 32 * (8192 + 5120 + 5120 + 8192 + 3 * 18432)  # r=32 all-linear: 83,886,080


def out(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


def test_serve_memory_in_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("serve-memory", "-m", "llama3-8b")
    assert out(capsys, *args, "--format", "json") == out(capsys, *args, "--json")
    header, row = list(csv.reader(io.StringIO(out(capsys, *args, "--format", "csv"))))
    record = dict(zip(header, row, strict=True))
    assert int(record["cache_bytes_per_gpu"]) == CACHE_BYTES == 2**30 and record["tokens"] == "8192"
    markdown = out(capsys, *args, "--format", "markdown")
    assert "| TP | batch | cache |" in markdown and "| 1 | 1 | 1.00 |" in markdown


def test_train_memory_in_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("train-memory", "-m", "llama3-8b", "--way", "lora")
    assert out(capsys, *args, "--format", "json") == out(capsys, *args, "--json")
    header, row = list(csv.reader(io.StringIO(out(capsys, *args, "--format", "csv"))))
    record = dict(zip(header, row, strict=True))
    assert int(record["trainable_weights_bytes"]) == 4 * LORA_PARAMS  # peft keeps adapters in fp32
    assert int(record["frozen_weights_bytes"]) == 2 * 8_030_261_248  # the bf16 base
    assert "| frozen weights | 14.96 |" in out(capsys, *args, "--format", "markdown")  # 16,060,522,496 / 2^30


def test_two_formats_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-memory", "-m", "llama3-8b", "--json", "--format", "csv"]) == 2
    assert "exclude each other" in capsys.readouterr().err
