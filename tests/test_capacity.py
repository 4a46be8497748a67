"""Knowledge capacity against information, and compute break-even: hand arithmetic from the formulas."""

from __future__ import annotations

import itertools
import math

import pytest

from estimator.capacity import DEFAULT_TEXT_BITS_PER_TOKEN, capacity, fill_tokens
from estimator.compare import Estimate, estimate
from estimator.constants import CONSTANTS, knowledge_bits_per_param, nats_to_bits
from estimator.cost import (
    attention_flops,
    augmentation_flops,
    breakeven,
    breakeven_queries,
    forward_params,
    sequence_flops,
    training_attention_flops,
    training_flops_per_token,
)
from estimator.layout.formats import KVFormat, MlaCache
from estimator.query.vocabulary import Method
from estimator.zoo import load_spec

N_LLAMA = 70_553_706_496
EMBEDDING_LLAMA = 128_256 * 8_192
LORA_R32 = 414_187_520


@pytest.fixture(scope="module")
def llama() -> Estimate:
    return estimate(load_spec("llama3-70b"), 100_000, 32)


def test_constants_are_sourced() -> None:
    assert {c.name for c in CONSTANTS} >= {"knowledge_bits_per_param", "text_nats_per_token"}
    for c in CONSTANTS:
        assert c.value > 0 and c.unit and c.conditions and c.option.startswith("--")
        assert "arXiv:" in c.source
    assert knowledge_bits_per_param(1000) == 2.0 and knowledge_bits_per_param(100) == 1.0
    with pytest.raises(ValueError, match="100 and 1000"):
        knowledge_bits_per_param(300)
    assert nats_to_bits(1.69) == pytest.approx(2.4382, abs=1e-4)
    assert 1.69 / math.log(2) == DEFAULT_TEXT_BITS_PER_TOKEN


def test_pretraining_per_token_llama3_70b(llama: Estimate) -> None:
    """15T tokens: 0.0094 bytes (0.075 bits) of bf16 weights and 0.0094 bits of capacity per token."""
    result = capacity(llama)
    assert result.pretraining_weight_bits_per_token == N_LLAMA * 16 / 15e12
    assert round(result.pretraining_weight_bits_per_token, 3) == 0.075
    assert round(llama.pretraining_bytes_per_token, 4) == 0.0094
    assert result.pretraining_capacity_bits_per_token == N_LLAMA * 2 / 15e12
    assert round(result.pretraining_capacity_bits_per_token, 4) == 0.0094


def test_adapter_capacity_and_headroom(llama: Estimate) -> None:
    result = capacity(llama)
    h = 1.69 / math.log(2)
    assert result.information_bits == 100_000 * h
    lora = result.row(Method.lora)
    assert lora is not None and lora.params == LORA_R32
    assert lora.capacity_bits == 2 * LORA_R32 == 828_375_040
    assert lora.headroom == pytest.approx(828_375_040 / (100_000 * h))  # 3,398x
    assert lora.fill_tokens == math.floor(828_375_040 / h) == 339_754_925
    assert result.row(Method.full).capacity_bits == 2 * N_LLAMA
    assert result.row(Method.kv) is None and result.row(Method.pretraining) is None
    assert result.kv_stored_bits_per_token == 327_680 * 8
    assert result.kv_redundancy == pytest.approx(2_621_440 / h)  # 1,075,174 stored bits per bit


def test_capacity_knobs(llama: Estimate) -> None:
    fewer = capacity(llama, bits_per_param=1.0, text_bits_per_token=3.0)
    lora = fewer.row(Method.lora)
    assert lora is not None and lora.capacity_bits == LORA_R32 and lora.fill_tokens == LORA_R32 // 3
    assert fill_tokens(10, 0.7, 2.0) == 3
    with pytest.raises(ValueError, match="positive"):
        capacity(llama, bits_per_param=0)


def test_forward_params() -> None:
    llama = load_spec("llama3-70b")
    assert forward_params(llama) == N_LLAMA - EMBEDDING_LLAMA == 69_503_033_344
    # tied: the head's matmul runs on the embedding matrix, so all 596,049,920 count: 28 layers of q 1,024 -> 2,048,
    # k, v 1,024 -> 1,024, o, MLP 3 · 1,024 · 3,072, norms 2 · 1,024 + q_norm, k_norm 2 · 128; 151,936 · 1,024; norm
    qwen = 28 * (2 * 1024 * 2048 + 2 * 1024 * 1024 + 3 * 1024 * 3072 + 2 * 1024 + 2 * 128) + 151_936 * 1024 + 1024
    assert forward_params(load_spec("qwen3-0.6b")) == qwen == 596_049_920
    # tied, but the position table (1,024 · 768) is a lookup too: GPT-2's 124,439,808 less it
    assert forward_params(load_spec("gpt2")) == 124_439_808 - 1_024 * 768 == 123_653_376
    # two of eight experts per token: the 12,879,925,248 active less the 32,000 · 4,096 embedding
    assert forward_params(load_spec("mixtral-8x7b")) == 12_879_925_248 - 32_000 * 4_096


def test_attention_flops_by_hand() -> None:
    llama = load_spec("llama3-70b")
    # L · H · (d_qk + d_v) · n (n + 1) = 80 · 64 · 256 · n (n + 1)
    assert attention_flops(llama, 100_000) == 80 * 64 * 256 * 100_000 * 100_001 == 13_107_331_072_000_000
    assert sequence_flops(llama, 10) == 2 * 69_503_033_344 * 10 + 80 * 64 * 256 * 10 * 11
    mistral = load_spec("mistral-7b-v0.1")  # window 4,096 on all 32 layers
    n, w = 10_000, 4_096
    brute = sum(min(t, w) for t in range(1, n + 1))
    assert attention_flops(mistral, n) == 32 * 2 * 32 * 256 * brute
    deepseek = load_spec("deepseek-v3")  # MLA: per head (128 + 64) for QKᵀ and 128 for A·V
    expanded = KVFormat(mla=MlaCache.expanded)  # per head: H · (qk_nope + qk_rope + v_head_dim) per position
    assert attention_flops(deepseek, 3, expanded) == 61 * 2 * 128 * (192 + 128) * 6
    # from the latent cache, absorbed: H · (2 · kv_lora_rank + qk_rope) = 128 · 1,088, 3.4x more
    assert attention_flops(deepseek, 3) == 61 * 2 * 128 * (2 * 512 + 64) * 6


def test_training_flops() -> None:
    llama = load_spec("llama3-70b")
    n_f = 69_503_033_344
    assert training_flops_per_token(llama, Method.lora, LORA_R32) == 4 * n_f + 6 * LORA_R32
    assert training_flops_per_token(llama, Method.full, 0) == 6 * n_f
    assert training_attention_flops(llama, 10_000, 4_096) == 3 * (
        2 * attention_flops(llama, 4_096) + attention_flops(llama, 10_000 - 2 * 4_096)
    )
    assert augmentation_flops(llama, 1_000, 1) == 0
    once = sequence_flops(llama, 1_000)
    assert augmentation_flops(llama, 1_000, 3) == once + 2 * (sequence_flops(llama, 2_000) - once)


def test_breakeven_llama3_70b_by_hand(llama: Estimate) -> None:
    result = breakeven(llama)
    spec = load_spec("llama3-70b")
    t, per_query = 100_000, 200
    icl = sequence_flops(spec, t + per_query)
    tuned = sequence_flops(spec, per_query) + 2 * LORA_R32 * per_query
    once = (4 * 69_503_033_344 + 6 * LORA_R32) * t + training_attention_flops(spec, t, 4_096)
    assert (result.in_context_query_flops, result.fine_tuned_query_flops, result.finetune_once_flops) == (
        icl,
        tuned,
        once,
    )
    assert result.queries == -(-once // (icl - tuned)) == 2
    cached_once = sequence_flops(spec, t)
    assert result.queries_prefix_cached == -(-(once - cached_once) // (icl - cached_once - tuned)) == 51
    for n, variant in ((result.queries, "in_context"), (result.queries_prefix_cached, "in_context_prefix_cached")):
        assert n is not None
        assert result.cumulative_flops(n)["fine_tuned"] <= result.cumulative_flops(n)[variant]
        assert result.cumulative_flops(n - 1)["fine_tuned"] > result.cumulative_flops(n - 1)[variant]


def test_breakeven_is_monotone() -> None:
    spec = load_spec("llama3-8b")
    by_tokens = [breakeven(estimate(spec, t, 16)) for t in (1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 10**6)]
    for pick in ("queries", "queries_prefix_cached"):
        counts = [getattr(b, pick) for b in by_tokens]
        assert all(a >= b for a, b in itertools.pairwise(counts)), (pick, counts)
    base = estimate(spec, 50_000, 16)
    for knob in ("epochs", "augmentation"):
        results = [breakeven(base, **{knob: k}) for k in range(1, 6)]
        for pick in ("queries", "queries_prefix_cached"):
            counts = [getattr(b, pick) for b in results]
            assert all(a <= b for a, b in itertools.pairwise(counts)), (knob, pick, counts)
            assert counts[0] < counts[-1]


def test_breakeven_never_and_full() -> None:
    assert breakeven_queries(10, 0) is None and breakeven_queries(-5, 3) == 0
    tiny = breakeven(estimate(load_spec("gpt2"), 1, 768, methods=(Method.kv, Method.lora)), query_tokens=1_000)
    assert tiny.queries is None  # the adapter's own FLOPs outweigh one token of context
    full = breakeven(estimate(load_spec("llama3-8b"), 100_000, 16), finetune=Method.full)
    assert full.adapter_params == 0 and full.to_dict()["adapter_bytes_held"] == 0
    lora = breakeven(estimate(load_spec("llama3-8b"), 100_000, 16))
    assert full.finetune_once_flops > lora.finetune_once_flops
    with pytest.raises(ValueError, match="at least 1"):
        breakeven(estimate(load_spec("gpt2"), 10, 8), epochs=0)
    with pytest.raises(ValueError, match="--finetune 'dora' is not one of: lora, full"):
        breakeven(estimate(load_spec("gpt2"), 10, 8), finetune=Method.dora)  # type: ignore[arg-type]


def test_moe_adapters_count_their_active_share() -> None:
    """Mixtral: 2 of 8 experts per token, so 6/8 of the routed experts' LoRA is idle for each token."""
    from estimator.cost import active_adapter_params

    spec = load_spec("mixtral-8x7b")
    est = estimate(spec, 10_000, 8)
    per_expert = 8 * (4_096 + 14_336) * 3 * 32  # w1, w3 (4,096 -> 14,336) and w2, r · (d_in + d_out), 32 layers
    experts = 8 * per_expert
    attention_router = 8 * 32 * ((4_096 + 4_096) + 2 * (4_096 + 1_024) + (4_096 + 4_096) + (4_096 + 8))
    assert est.lora_params == attention_router + experts == 121_112_576
    assert active_adapter_params(est) == attention_router + experts * 2 // 8
    result = breakeven(est)
    assert result.adapter_params == 121_112_576
    assert result.fine_tuned_query_flops == sequence_flops(spec, 200) + 2 * active_adapter_params(est) * 200
    dense = estimate(load_spec("llama3-8b"), 10_000, 8)  # 32 layers, r = 8: q, k, v, o, gate, up, down of 4,096
    assert active_adapter_params(dense) == 32 * 8 * (2 * 8_192 + 2 * 5_120 + 3 * (4_096 + 14_336)) == 20_971_520
