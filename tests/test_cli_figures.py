"""`estimate figures`, `estimate plot` and `estimate sweep`: files written, tables, one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from estimator.compare import estimate
from estimator.units import DType
from estimator.zoo import load_spec

from .test_cli import run


def test_help_lists_the_lazy_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in ("figures", "plot", "sweep", "models", "validate"):
        assert f" {name} " in out, name


def test_figures_command_writes_every_figure(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "figures", "--model", "gpt2", "--out", str(tmp_path), "--format", "pdf")
    assert code == 0 and err == ""
    written = sorted(Path(line).name for line in out.splitlines())
    assert written == sorted(
        [
            "bytes_per_token_vs_tokens.pdf",
            "bytes_per_token_vs_rank.pdf",
            "models_kv_vs_lora.pdf",
            "ratio_heatmap.pdf",
            "capacity_vs_tokens.pdf",
            "breakeven_queries.pdf",
            "cache_by_architecture.pdf",
            "memory_vs_context.pdf",
            "kv_frontier.pdf",
            "tuners_bytes_per_token.pdf",
            "manifest.json",
        ]
    )
    assert json.loads((tmp_path / "manifest.json").read_text())["model"] == "gpt2"


def test_plot_one_figure(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "mine.svg"
    code, out, _ = run(
        capsys, "plot", "rank", "--model", "qwen2.5-7b", "--tokens", "1M", "--rank", "16", "-o", str(target)
    )
    assert code == 0 and out.strip() == str(target)
    assert target.read_text().startswith("<?xml")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["plot", "bars"], "'bars' is not one of"),
        (["plot", "tokens", "--out", "x.gif"], "unknown figure format 'gif'"),
        (["figures", "--format", "png,jpg"], "unknown figure format 'jpg'"),
        (["plot", "tokens", "--model", "llama-3"], "unknown model"),
        (["plot", "tokens", "--ranks", "8:x"], "cannot read the ranks grid"),
        (["sweep", "--tokens", "1k:1B"], "cannot read the tokens grid"),
        (["sweep", "--tokens", "1k:1B:log300"], "too many to print"),
        (["sweep", "--json", "--csv"], "exclude each other"),
        (["sweep", "--out", "table.xlsx"], "name it .csv or .json"),
        (["sweep", "--ranks", "0,8"], "must be positive"),
    ],
)
def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "", err
    assert needle in err and err.count("\n") == 1 and err.startswith("error: ")


def test_sweep_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sweep", "--model", "llama3-70b", "--tokens", "1k,100k", "--ranks", "32,1266")
    assert code == 0
    assert "39.6x" in out and "828.38 MB" in out and "32.77 GB" in out
    rows = [line for line in out.splitlines() if line.lstrip().startswith("100,000")]
    assert len(rows) == 2 and "1,266" in rows[1]


def test_sweep_csv_and_json_equal_the_estimate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["sweep", "--model", "mixtral-8x7b", "--tokens", "1k:1M:log4", "--ranks", "1:64:x4", "--kv-dtype", "fp8"]
    code, out, _ = run(capsys, *args, "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 4 * 4
    spec = load_spec("mixtral-8x7b")
    for row in rows:
        point = estimate(spec, int(row["tokens"]), int(row["rank"]), kv_dtype=DType.fp8)
        assert int(row["kv_cache_bytes"]) == point.kv_cache_bytes
        assert int(row["lora_bytes"]) == point.lora_bytes
        assert float(row["kv_to_lora_bytes_ratio"]) == point.kv_to_lora_bytes_ratio
        assert int(row["parity_rank"]) == point.parity_rank
    target = tmp_path / "sweep.json"
    code, _, err = run(capsys, *args, "--out", str(target))
    assert code == 0 and "16 rows written" in err
    data = json.loads(target.read_text())
    assert data["query"]["kv_dtype"] == "fp8" and data["rows"][5]["rank"] == int(rows[5]["rank"])
    assert data["rows"][5]["kv_to_lora_bytes_ratio"] == float(rows[5]["kv_to_lora_bytes_ratio"])
    assert any("KV cache" in line for line in data["assumptions"])


def test_capacity_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "capacity", "--model", "llama3-70b", "--tokens", "100k", "--rank", "32")
    assert code == 0 and err == ""
    for text in ("243,815 bits", "828,375,040", "3,398x", "339,754,925", "1,075,174 stored bits per bit",
                 "0.0753 bits of bf16 weights", "0.00941 bits per pretraining token", "arXiv:2404.05405",
                 "1.69 nats"):  # fmt: skip
        assert text in out, text
    code, out, _ = run(capsys, "capacity", "--model", "llama3-70b", "--exposures", "100", "--json")
    data = json.loads(out)
    lora = next(m for m in data["methods"] if m["method"] == "lora")
    assert data["knowledge_bits_per_param"] == 1.0 and lora["capacity_bits"] == 414_187_520
    code, out, _ = run(capsys, "capacity", "--model", "gpt2", "--bits-per-param", "0.7", "--text-bits-per-token", "3",
                       "--json")  # fmt: skip
    data = json.loads(out)
    assert data["text_bits_per_token"] == 3 and data["knowledge_bits_per_param"] == 0.7
    assert any("given" in line for line in data["assumptions"])


def test_breakeven_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "breakeven", "--model", "llama3-70b", "--tokens", "100k", "--rank", "32")
    assert code == 0 and err == ""
    assert "after 2 queries" in out and "after 51 queries" in out and "32.77 GB" in out and "828.38 MB" in out
    assert "exceed Llama 3 70B's context window of 8,192 tokens" in out
    code, out, _ = run(capsys, "breakeven", "--model", "llama3-70b", "--epochs", "3", "--json")
    data = json.loads(out)
    assert (data["breakeven_queries"], data["breakeven_queries_prefix_cached"]) == (4, 1_185)
    assert data["forward_params"] == 69_503_033_344
    code, out, _ = run(capsys, "breakeven", "--model", "llama3-8b", "--finetune", "full", "--augmentation", "2")
    assert "full fine-tuning, 1 epoch, 2x augmented" in out and "Augmentation: 1 rewrite" in out


def test_constants_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "constants")
    assert code == 0 and "knowledge_bits_per_param" in out and "--text-nats-per-token" in out and "arXiv" in out
    code, out, _ = run(capsys, "constants", "--json")
    assert {c["name"]: c["value"] for c in json.loads(out)}["text_nats_per_token"] == 1.69


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["capacity", "--bits-per-param", "0"], "--bits-per-param 0 must be positive"),
        (["capacity", "--text-bits-per-token", "2", "--text-nats-per-token", "1.5"], "exclude each other"),
        (["capacity", "--exposures", "300"], "'300' is not one of"),
        (["breakeven", "--epochs", "0"], "--epochs 0 must be at least 1"),
        (["breakeven", "--query-tokens", "-1"], "--query-tokens -1 must be 0 or more"),
        (["breakeven", "--finetune", "dora"], "'dora' is not one of"),
        (["plot", "capacity", "--ranks", "x"], "cannot read rank 'x'"),
    ],
)
def test_beyond_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "", err
    assert needle in err and err.count("\n") == 1


def test_unwritable_output_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for args in (
        ["sweep", "--out", str(blocker / "sweep.csv")],
        ["plot", "rank", "--out", str(blocker / "rank.png")],
        ["figures", "--out", str(blocker / "figures"), "--format", "png"],
    ):
        code, _, err = run(capsys, *args)
        assert code == 2 and err.startswith("error: cannot write") and err.count("\n") == 1, (args, err)
        assert "a-file" in err
