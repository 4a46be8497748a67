"""Every adapter kind next to LoRA, by hand from the formulas."""

from __future__ import annotations

import pytest

from estimator import estimate, load_spec
from estimator.errors import EstimatorError
from estimator.kv import KVFormat, MlaCache
from estimator.layout import ExpertLayout
from estimator.query import Query
from estimator.query.vocabulary import LoReFT, Method, parse_layers, parse_methods, parse_positions
from estimator.specs import ModelSpec
from estimator.stores import STORES
from estimator.stores.base import loreft_params
from estimator.stores.kinds import prefix_params, prompt_params

KV = KVFormat()


def method_params(spec: ModelSpec, method: Method) -> int | None:
    """Trainable parameters of a store for the default query (rank 32, all-linear)."""
    return STORES[method].params(Query(spec, rank=32))


def test_llama3_70b_every_method_by_hand() -> None:
    spec = load_spec("llama3-70b")
    d, f, kv, n, r = 8192, 28672, 1024, 80, 32

    def size(method: Method) -> int:
        params = method_params(spec, method)
        assert params is not None
        return params

    lora = n * r * (2 * (d + d) + 2 * (d + kv) + 3 * (d + f))
    assert size(Method.lora) == lora == 414_187_520
    assert size(Method.dora) == lora + n * (d + kv + kv + d + f + f + d) == 420_904_960
    assert size(Method.ia3) == n * (kv + kv + f) == 2_457_600  # k, v (d_out) and down (d_in: feed-forward)
    assert size(Method.loreft) == n * (2 * 8 * d + 8) == 10_486_400
    assert size(Method.prefix) == 20 * 2 * n * 8 * 128 == 3_276_800
    assert size(Method.prompt) == 20 * d == 163_840
    assert size(Method.full) == 70_553_706_496


def test_loreft_paper_figure() -> None:
    """LoReFT on Llama (7B) with the commonsense recipe trains 0.031% of the parameters (Wu et al. 2024)."""
    spec = load_spec("llama2-7b")
    params = loreft_params(spec, LoReFT())
    assert params == 32 * (2 * 8 * 4096 + 8) == 2_097_408
    assert round(100 * params / 6_738_415_616, 3) == 0.031


def test_loreft_options() -> None:
    spec = load_spec("llama3-8b")
    one = 2 * 4 * 4096 + 4
    assert loreft_params(spec, LoReFT(rank=4, layers=(0, 8, 16))) == 3 * one
    assert loreft_params(spec, LoReFT(rank=4, layers=(0, 8, 16), tied=False)) == 6 * one
    assert loreft_params(spec, LoReFT(rank=4, layers=(0,), prefix_positions=0, tied=False)) == one
    assert parse_positions("f7+l7") == (7, 7) and parse_positions("l3") == (0, 3)
    assert parse_layers("all", spec) is None and parse_layers("3,1", spec) == (1, 3)
    for bad in ("x", "f+", "f0"):
        with pytest.raises(EstimatorError):
            parse_positions(bad)
    with pytest.raises(EstimatorError, match="layers 0 to 31"):
        parse_layers("32", spec)


def test_prefix_is_the_cache_of_virtual_tokens() -> None:
    v3 = load_spec("deepseek-v3")
    assert prefix_params(v3, 10, KVFormat()) == 10 * 61 * 576
    assert prefix_params(v3, 10, KVFormat(mla=MlaCache.expanded)) == 10 * 61 * 128 * (192 + 128)
    assert prefix_params(load_spec("falcon-7b"), 10, KV) == 10 * 2 * 32 * 1 * 64  # one KV head
    assert prompt_params(load_spec("gpt2"), 10) == 10 * 768


def test_ia3_defaults_follow_peft_and_fall_back_for_others() -> None:
    gpt2 = load_spec("gpt2")
    # peft: c_attn (d_out 2304) and mlp.c_proj (feed-forward: d_in 3072), 12 layers.
    assert method_params(gpt2, Method.ia3) == 12 * (2304 + 3072)
    phi = load_spec("phi3-mini")  # no peft default: keys, values (fused qkv_proj) and down_proj
    assert method_params(phi, Method.ia3) == 32 * ((3072 * 3) + 8192)


def test_parse_methods() -> None:
    assert parse_methods("all") == tuple(Method)[: tuple(Method).index(Method.pretraining) + 1]  # the nine rows
    assert Method.vera not in parse_methods("all") and Method.vera in parse_methods("peft")
    assert parse_methods("lora,prompt") == (Method.kv, Method.lora, Method.prompt)
    with pytest.raises(EstimatorError, match="unknown method 'bogus'"):
        parse_methods("lora,bogus")


def test_dora_on_fused_experts_is_skipped_with_a_reason() -> None:
    est = estimate(load_spec("mixtral-8x7b"), 100_000, rank=8, experts=ExpertLayout.fused)
    assert est.row(Method.dora) is None
    assert any(method is Method.dora and "fused expert" in why for method, why in est.skipped)
    assert est.row(Method.lora) is not None


def test_rows_ratio_and_crossover_per_method() -> None:
    est = estimate(load_spec("llama3-70b"), 100_000, rank=32)
    for row in est.rows:
        assert row.kv_to_this_bytes_ratio == pytest.approx(2 * 80 * 8 * 128 * 2 / row.bytes_per_token)  # 327,680
        if row.crossover_tokens is not None:
            assert row.crossover_tokens == -(-row.bytes // 327_680)


def test_each_trained_store_lists_the_tensors_training_updates() -> None:
    """Llama 3 8B's config.json: 32 layers, hidden 4,096, 8 KV heads of 128, MLP 14,336, vocabulary 128,256.
    LoRA r=32 on all-linear: A and B on 7 maps per layer; DoRA adds d_out per map; full fine-tuning updates
    every weight (7 maps and 2 norms per layer, the embedding, the final norm and the untied head)."""
    q = Query(load_spec("llama3-8b"))
    lora, dora, full = (STORES[m].tensors(q) for m in (Method.lora, Method.dora, Method.full))
    maps = 8192 + 5120 + 5120 + 8192 + 3 * 18432  # d_in + d_out of q, k, v, o, gate, up, down
    assert (len(lora), sum(lora)) == (32 * 7 * 2, 32 * 32 * maps) == (448, 83_886_080)
    d_out = 4096 + 1024 + 1024 + 4096 + 14336 + 14336 + 4096
    assert (len(dora), sum(dora)) == (32 * 7 * 3, 83_886_080 + 32 * d_out) == (672, 85_262_336)
    assert (len(full), sum(full)) == (32 * 9 + 3, 8_030_261_248)
    with pytest.raises(EstimatorError, match="fine-tuning memory of ia3 is not modelled"):
        STORES[Method.ia3].tensors(q)
