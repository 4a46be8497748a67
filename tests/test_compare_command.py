"""`estimate compare`: models side by side at several token counts; numbers by hand from the configs."""

from __future__ import annotations

import csv
import io
import json

import pytest

from .conftest import CONFIGS
from .test_cli import run

# Llama 3 70B (80 layers, d 8,192, 8 KV heads of 128, d_ff 28,672): K and V per token, bf16
LLAMA3_70B_KV = 2 * 80 * 8 * 128 * 2  # 327,680
# LoRA r=32 on all seven maps: r · (d_in + d_out) per map, 80 layers, bf16
LLAMA3_70B_LORA = 32 * 80 * ((8192 + 8192) * 2 + (8192 + 1024) * 2 + (8192 + 28672) * 3) * 2  # 828,375,040


def test_one_row_per_model_and_token_count(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "compare", "--model", "llama3-70b,mistral-7b-v0.1", "--tokens", "4096,32k,1M", "--json"
    )
    assert code == 0, err
    rows = {(r["model"], r["tokens"]): r for r in json.loads(out)}
    assert set(rows) == {(m, t) for m in ("llama3-70b", "mistral-7b-v0.1") for t in (4_096, 32_000, 1_000_000)}
    llama = rows["llama3-70b", 32_000]
    assert llama["kv_bytes_per_token"] == LLAMA3_70B_KV and llama["lora_bytes"] == LLAMA3_70B_LORA
    assert llama["kv_to_lora_bytes_ratio"] == LLAMA3_70B_KV * 32_000 / LLAMA3_70B_LORA  # 12.66
    assert llama["crossover_tokens"] == -(-LLAMA3_70B_LORA // LLAMA3_70B_KV) == 2_528
    per_rank = LLAMA3_70B_LORA // 32
    assert llama["parity_rank"] == -(-(LLAMA3_70B_KV * 32_000) // per_rank) == 406
    assert llama["beyond_context_window"] and llama["context_window_tokens"] == 8_192
    mistral = rows["mistral-7b-v0.1", 1_000_000]  # windowed everywhere: holds 4,096 tokens, no rate
    assert mistral["tokens_held"] == 4_096 and mistral["kv_bytes_per_token"] is None and mistral["parity_rank"] is None
    assert rows["mistral-7b-v0.1", 4_096]["kv_bytes_per_token"] == 131_072 and not mistral["holds_all_tokens"]


def test_text_markdown_and_csv_say_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["compare", "-m", "llama3-70b,deepseek-v3", "--config", str(CONFIGS / "extra" / "llama3.2-1b.json")]
    code, out, _ = run(capsys, *args, "-t", "100k")
    assert code == 0 and "At 100,000 tokens (100k)" in out and "39.6x" in out and "llama3.2-1b" in out
    assert "experts of deepseek-v3 adapted per-expert (--experts)" in out  # the MoE convention in the caption
    code, out, _ = run(capsys, *args, "-t", "100k", "--markdown")
    assert out.startswith("### 100k tokens") and "|---|---:|" in out and "| llama3-70b | 70,553,706,496 |" in out
    code, out, _ = run(capsys, *args, "-t", "1k,100k", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 6 and {r["model"] for r in rows} == {"llama3-70b", "deepseek-v3", "llama3.2-1b"}
    assert next(r for r in rows if r["model"] == "llama3-70b" and r["tokens"] == "100000")["lora_bytes"] == str(
        LLAMA3_70B_LORA
    )


def test_the_experts_convention_decides_the_moe_answer(capsys: pytest.CaptureFixture[str]) -> None:
    """DeepSeek-V3 at 100k: the per-expert LoRA is 13.4x the cache's 7.03 GB; with --experts none, 1/13.9."""
    ratios = {}
    for layout in ("per-expert", "none"):
        code, out, _ = run(capsys, "compare", "-m", "deepseek-v3", "-t", "100k", "--experts", layout, "--json")
        (row,) = json.loads(out)
        assert code == 0
        assert row["experts"] == layout and row["kv_cache_bytes"] == 61 * (512 + 64) * 2 * 100_000
        ratios[layout] = row["kv_to_lora_bytes_ratio"]
    assert round(ratios["per-expert"], 2) == 0.26 and round(ratios["none"], 1) == 13.9


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "name the models to compare"),
        (["-m", "gpt2,,qwen3-8b"], "has an empty entry"),
        (["-m", "gpt2", "-m", "qwen3-8b"], "given twice"),
        (["-m", "gpt2", "--json", "--csv"], "exclude each other"),
        (["-m", "gpt2", "--name", "x"], "--name names one --config model"),
        (["-m", "gpt2", "--rank", "5000"], "beyond full rank"),
        (["-m", "gpt3"], "did you mean"),
        (["-m", "gpt2", "-t", "1k,lots"], "cannot read token count"),
    ],
)
def test_bad_comparisons_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    code, out, err = run(capsys, "compare", *args)
    assert code == 2 and out == "" and needle in err and err.count("\n") == 1


def test_every_table_names_the_experts_convention(capsys: pytest.CaptureFixture[str]) -> None:
    """The LoRA row of a mixture of experts says how its experts are adapted; a dense model's row does not."""
    _, out, _ = run(capsys, "--model", "deepseek-v3", "--experts", "none")
    assert "LoRA r=32, all-linear, experts none (bf16)" in out and "DoRA r=32, all-linear, experts none" in out
    _, out, _ = run(capsys, "sweep", "--model", "qwen3-30b-a3b", "--tokens", "1k", "--rank", "8")
    assert "against LoRA on all-linear, experts per-expert" in out
    _, out, _ = run(capsys, "--model", "llama3-70b")
    assert "LoRA r=32, all-linear (bf16)" in out and "experts" not in out.split("Assumptions")[0]
