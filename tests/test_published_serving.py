"""tests/data/published/serving.toml: published engine start-up logs, checked for internal
consistency and against the real config.json of each model (no estimator code involved)."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
RUNS: list[dict[str, Any]] = tomllib.loads((DATA / "published" / "serving.toml").read_text())["run"]
KEYS = {
    "id", "engine", "engine_version", "model", "hf_repo", "gpu", "tp", "weights", "kv_dtype",
    "gpu_memory_utilization", "max_model_len", "max_num_seqs", "max_num_batched_tokens",
    "enforce_eager", "source", "quote", "note", "total_gpu_memory_gib", "weights_gib",
    "non_torch_gib", "activation_peak_gib", "kv_cache_gib", "kv_cache_tokens", "gpu_blocks",
    "max_concurrency",
}  # fmt: skip
# Every layer full attention, one KV cache group in vLLM V1 (no sliding window, no MLA).
ONE_GROUP = {
    "llama3-8b", "llama3.1-8b", "llama3.1-70b", "qwen2.5-7b", "qwen2.5-72b-instruct",
    "qwen3-8b", "qwen3-30b-a3b", "qwen1.5-moe-a2.7b", "mixtral-8x7b", "phi-2",
    "granite-3.3-8b-instruct",
}  # fmt: skip
KV_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4, "fp8": 1}
GIB = 2**30
PRINTED_GIB = 0.005  # the engines print GiB with two decimals


def _config(stem: str) -> dict[str, Any]:
    for folder in (DATA / "hf_configs", DATA / "hf_configs" / "extra"):
        if (folder / f"{stem}.json").exists():
            config: dict[str, Any] = json.loads((folder / f"{stem}.json").read_text())
            return config
    raise AssertionError(f"no config for {stem}")


def _kv_bytes_per_token_per_gpu(run: dict[str, Any]) -> int:
    """2 (K, V) x layers x max(1, KV heads / TP) x head_dim x bytes, from the config."""
    c = _config(run["model"])
    head_dim = int(c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"])
    kv_heads = int(c.get("num_key_value_heads") or c["num_attention_heads"])
    heads_per_gpu = max(1, kv_heads // int(run["tp"]))
    layers = int(c["num_hidden_layers"])
    return 2 * layers * heads_per_gpu * head_dim * KV_BYTES[run["kv_dtype"]]


def test_rows_are_well_formed() -> None:
    assert len(RUNS) >= 35
    assert len({r["id"] for r in RUNS}) == len(RUNS)
    for run in RUNS:
        assert set(run) <= KEYS, run["id"]
        assert run["engine"] in {"vllm", "sglang", "tgi", "llama.cpp"}
        assert run["source"].startswith("https://github.com/"), run["id"]
        assert run["quote"].strip() and run["note"].strip()
        _config(run["model"])


def test_llama31_8b_per_token_bytes_by_hand() -> None:
    # 2 (K, V) x 32 layers x 8 KV heads x 128 head_dim x 2 bytes (bf16) = 131,072 B
    run = next(r for r in RUNS if r["id"] == "vllm-llama3.1-8b-h100-tp1-len8192-v0.19")
    assert _kv_bytes_per_token_per_gpu(run) == 2 * 32 * 8 * 128 * 2 == 131_072
    # 58.11 GiB / 131,072 B = 476,044 tokens, of which whole 16-token blocks: 29,752
    assert math.floor(58.11 * GIB / 131_072 / 16) == 29_752
    assert run["gpu_blocks"] * 16 == run["kv_cache_tokens"] == 476_016


SIZED = [r for r in RUNS if r["model"] in ONE_GROUP and "kv_cache_gib" in r and "kv_cache_tokens" in r]


@pytest.mark.parametrize("run", SIZED, ids=lambda r: r["id"])
def test_printed_pool_holds_the_printed_tokens(run: dict[str, Any]) -> None:
    per_token = _kv_bytes_per_token_per_gpu(run)
    used = run["kv_cache_tokens"] * per_token
    printed = run["kv_cache_gib"] * GIB
    # the pool holds whole 16-token blocks: at most one block of it is left over
    assert used - PRINTED_GIB * GIB <= printed <= used + 16 * per_token + PRINTED_GIB * GIB


BLOCKS = [r for r in RUNS if r["model"] in ONE_GROUP and "gpu_blocks" in r]


@pytest.mark.parametrize("run", BLOCKS, ids=lambda r: r["id"])
def test_concurrency_is_blocks_times_16_over_max_model_len(run: dict[str, Any]) -> None:
    tokens = run["gpu_blocks"] * 16
    if "kv_cache_tokens" in run:
        assert tokens == run["kv_cache_tokens"]
    if "max_concurrency" in run and "max_model_len" in run:
        assert round(tokens / run["max_model_len"], 2) == pytest.approx(run["max_concurrency"], abs=0.011)


BUDGETED = [
    r
    for r in RUNS
    if r["engine"] == "vllm"
    and all(
        k in r
        for k in (
            "total_gpu_memory_gib",
            "gpu_memory_utilization",
            "weights_gib",
            "non_torch_gib",
            "activation_peak_gib",
            "kv_cache_gib",
        )
    )
]


@pytest.mark.parametrize("run", BUDGETED, ids=lambda r: r["id"])
def test_vllm_budget_is_total_times_utilization_minus_the_rest(run: dict[str, Any]) -> None:
    budget = run["total_gpu_memory_gib"] * run["gpu_memory_utilization"]
    rest = run["weights_gib"] + run["non_torch_gib"] + run["activation_peak_gib"]
    assert budget - rest == pytest.approx(run["kv_cache_gib"], abs=0.03)
