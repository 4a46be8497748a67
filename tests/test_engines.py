"""Engines as presets: the pool each leaves, derived by hand from the real configs and vLLM's rules, and the
serving verdict with the context window as a hard limit. The published logs are in test_published_memory.py."""

from __future__ import annotations

import json

import pytest

from estimator.cli import main
from estimator.errors import EstimatorError
from estimator.layout import KVFormat
from estimator.memory.engine_rules import default_knobs, plan_pool
from estimator.memory.engines import Engine, Knobs
from estimator.memory.paged import block_layout
from estimator.memory.serve_options import lora_slot_bytes
from estimator.memory.serving import ServeSetup
from estimator.memory.sizes import both_units, parse_bytes
from estimator.memory.verdict import verdict
from estimator.zoo import load_spec

GiB = 2**30
H100 = round(79.19 * GiB)  # what torch reports for an H100 80GB HBM3 (vLLM 0.19's log)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_vllm_pool_for_llama31_8b_by_hand() -> None:
    """Llama 3.1 8B (config: V 128,256, d 4,096, 32 layers, 8 KV heads of 128, max_position 131,072) on one H100 at
    gpu_memory_utilization 0.95, as llm-d ran it."""
    spec = load_spec("llama3.1-8b")
    knobs = Knobs(memory_fraction=0.95, block_tokens=16, max_num_seqs=1024, max_num_batched_tokens=8192,
                  max_model_len=8192)  # fmt: skip
    pool = plan_pool(spec, ServeSetup(), Engine.vllm, knobs, H100)
    weights = 8_030_261_248 * 2
    rope = 131_072 * 128 * 2
    sampler = 1024 * 128_256 * (2 + 12)
    held = 8192 * 4096 * 2 + 132_000_000
    non_torch = 268_000_000
    assert pool.weights_bytes == weights
    assert pool.budget_bytes == int(H100 * 0.95)
    assert pool.pool_bytes == int(H100 * 0.95) - weights - rope - (sampler + held) - non_torch
    page_all_layers = 16 * 2 * 8 * 128 * 2 * 32  # one block of every layer: 2 MiB
    assert pool.blocks == pool.pool_bytes // page_all_layers
    assert pool.tokens == pool.blocks * 16
    assert pool.max_concurrency == pool.blocks / (8192 // 16)
    # vLLM printed: 58.11 GiB, 476,016 tokens, 58.11x (tests/data/published/serving.toml)
    assert abs(pool.pool_bytes / GiB - 58.11) < 0.05 and abs(pool.tokens - 476_016) / 476_016 < 0.001


def test_the_sampler_does_not_shrink_with_tensor_parallelism_but_nccl_grows() -> None:
    spec = load_spec("llama3.1-8b")
    knobs = default_knobs(Engine.vllm, H100, "NVIDIA H100 80GB HBM3", 8192, 1)
    assert (knobs.max_num_seqs, knobs.max_num_batched_tokens) == (1024, 8192)  # vLLM's defaults on >= 70 GiB
    one, two = (plan_pool(spec, ServeSetup(tp=t), Engine.vllm, knobs, H100) for t in (1, 2))
    peak = [next(r.bytes for r in p.reserves if r.label.startswith("profile peak")) for p in (one, two)]
    nccl = [next(r.bytes for r in p.reserves if r.label.startswith("non-torch")) for p in (one, two)]
    assert peak[0] == peak[1]  # llm-d: 1.89 GiB at TP 1, 2 and 4
    assert nccl == [268_000_000, 2_223_000_000]  # 0.25 GiB at TP 1, 2.07 GiB at TP 2 as printed


def test_a100_gets_the_small_defaults() -> None:
    """vLLM's get_batch_defaults: >= 70 GiB but an A100 keeps 256 sequences and 2,048 batched tokens."""
    knobs = default_knobs(Engine.vllm, round(79.15 * GiB), "NVIDIA A100-SXM4-80GB", 8192, 1)
    assert (knobs.max_num_seqs, knobs.max_num_batched_tokens) == (256, 2048)


def test_gemma2_blocks_follow_vllm_hybrid_layout() -> None:
    """Gemma 2 9B: 42 layers alternating sliding (w 4,096) and full; 8 KV heads of 256. vLLM V1 makes two groups
    of 21 layers, a page of 16 · 2 · 8 · 256 · 2 = 131,072 bytes per layer, and a request of 8,192 tokens needs
    512 full blocks and ⌈min(4,095 + 8,192, 8,192) / 16⌉ + 1 = 513 sliding ones."""
    layout = block_layout(load_spec("gemma2-9b"), KVFormat(), 1, 16)
    assert layout is not None
    assert (layout.page_bytes, layout.group_layers, layout.groups) == (131_072, 21, 2)
    assert layout.request_blocks(8192, 8192, 16) == 512 + 513
    pool = round(54.12 * GiB)  # the pool vLLM printed
    assert layout.tokens(pool, 16) == pool // (131_072 * 21) // 2 * 16
    assert abs(layout.tokens(pool, 16) - 168_880) <= 16  # printed: 168,880 tokens, 20.60x
    assert round(layout.concurrency(pool, 8192, 8192, 16), 1) == 20.6


def test_lora_slots_by_hand() -> None:
    """Llama 3.1 8B, 4 adapters of rank 16: per layer q 4,096+4,096, k and v 4,096+1,024, o 4,096+4,096, gate and
    up 4,096+14,336, down 14,336+4,096; at TP 2 the column-parallel maps halve d_out, the row-parallel d_in."""
    spec = load_spec("llama3.1-8b")
    per_layer = 8192 + 2 * 5120 + 8192 + 3 * 18_432
    assert lora_slot_bytes(spec, 1, 4, 16) == 4 * 16 * 32 * per_layer * 2
    halved = (4096 + 2048) + 2 * (4096 + 512) + (2048 + 4096) + 2 * (4096 + 7168) + (7168 + 4096)
    assert lora_slot_bytes(spec, 2, 4, 16) == 4 * 16 * 32 * halved * 2


def test_past_the_context_window_never_fits() -> None:
    spec = load_spec("llama3-70b")  # max_position_embeddings 8,192
    setup = ServeSetup(tp=8)
    knobs = default_knobs(Engine.vllm, H100, "h100", 100_000, 8)
    pool = plan_pool(spec, setup, Engine.vllm, knobs, H100)
    far = verdict(spec, setup, pool, 100_000, 1, 10**9)
    assert far.past_context and not far.fits and far.longest_tokens == 8192
    near = verdict(spec, setup, pool, 8192, 1, 10**9)
    assert near.fits and not near.past_context


def test_a_state_space_model_fits_any_length(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "serve-memory", "--model", "mamba-2.8b", "--json")
    assert code == 0
    assert json.loads(out)["rows"][0]["any_length"] is True


def test_sizes_need_a_unit_and_say_both() -> None:
    assert parse_bytes("80GiB") == 80 * GiB and parse_bytes("24 GB") == 24 * 10**9 and parse_bytes("0") == 0
    with pytest.raises(EstimatorError, match=r"--memory 80 has no unit; write 80GiB .* or 80GB"):
        parse_bytes("80", "--memory")
    assert both_units(24 * 10**9) == "24.00 GB = 22.35 GiB"


def test_qwen25_72b_on_two_h100s_row_by_row(capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's case: vLLM's defaults (0.9) leave no pool for Qwen2.5-72B on 2 x H100 at 8k; at 0.95, as llm-d
    ran it, the pool is the 3.04 GiB vLLM printed, within 5%."""
    config = "tests/data/hf_configs/extra/qwen2.5-72b-instruct.json"
    code, out, err = run(capsys, "serve-memory", "--config", config, "--tokens", "8192", "--tp", "2", "--json")
    assert code == 0, err
    (pool,) = json.loads(out)["pools"]
    assert pool["kv_pool_bytes"] == 0 and pool["pool_shortfall_bytes"] > 0 and not pool["engine_starts"]
    assert pool["kv_cache_tokens"] == 0
    code, out, _ = run(capsys, "serve-memory", "--config", config, "--tokens", "8192", "--tp", "2",
                       "--memory-fraction", "0.95", "--json")  # fmt: skip
    (pool,) = json.loads(out)["pools"]
    assert abs(pool["kv_pool_bytes"] / GiB - 3.04) / 3.04 < 0.05
    assert abs(pool["kv_cache_tokens"] - 19_920) / 19_920 < 0.05
    assert [r["label"].split(":")[0] for r in pool["reserves"]] == [
        "RoPE cos/sin cache, loaded with the weights", "profile peak", "non-torch memory (NCCL, all-reduce, cuBLAS)"
    ]  # fmt: skip


def test_serve_memory_table_names_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "serve-memory", "--model", "llama3-70b", "--tokens", "8k", "--batch", "1,8",
                       "--tp", "1,2,4,8")  # fmt: skip
    assert code == 0
    for row in ("budget: 0.9 of the 79.19 GiB torch reports", "KV pool", "GPU KV cache size, tokens",
                "maximum concurrency at 8,000 tokens"):  # fmt: skip
        assert row in out
    verdicts = [line.split() for line in out.splitlines() if line[:1].isdigit() and len(line.split()) >= 7]
    assert [(r[0], r[1], r[4]) for r in verdicts] == [
        ("1", "1", "no"), ("1", "8", "no"), ("2", "1", "yes"), ("2", "8", "no"),
        ("4", "1", "yes"), ("4", "8", "yes"), ("8", "1", "yes"), ("8", "8", "yes"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--memory", "80"], "has no unit"),
        (["--engine", "nope"], "--engine"),
        (["--memory-fraction", "1.5"], "must be in (0, 1]"),
        (["--rank", "8"], "No such option"),
        (["--draft-model", "no-such-model"], "no-such-model"),
    ],
)
def test_serve_memory_refusals_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    code, out, err = run(capsys, "serve-memory", "--model", "llama3.1-8b", *args)
    assert code == 2 and needle in err and "Traceback" not in err + out
