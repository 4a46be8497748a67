"""Mixtures of experts and multi-head latent attention: counts by hand, layouts, published figures."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

import pytest

from estimator.architecture import active_params, param_breakdown, total_params
from estimator.kv import KVFormat, MlaCache, kv_bytes_per_token
from estimator.layout import ExpertLayout
from estimator.specs import ModelSpec
from estimator.stores.targets import lora_params, resolve_targets
from estimator.units import DType
from estimator.zoo import load_all_specs, load_spec

MOE = [s for s in load_all_specs() if s.is_moe]


def test_mixtral_by_hand() -> None:
    d, f, e, k, n, v, kv = 4096, 14336, 8, 2, 32, 32000, 8 * 128
    attention = 2 * d * d + 2 * d * kv
    per_layer = attention + d * e + e * 3 * d * f + 2 * d  # router d -> E, E experts of gate, up, down, 2 norms
    total = n * per_layer + 2 * v * d + d
    assert total == 46_702_792_704
    spec = load_spec("mixtral-8x7b")
    assert total_params(spec) == total
    # Active: the 6 experts a token does not visit, in every layer, are idle: Mistral AI's "12.9B".
    assert active_params(spec) == total - n * (e - k) * 3 * d * f == 12_879_925_248


def test_deepseek_v3_by_hand() -> None:
    d, h, q_rank, kv_rank, rope, nope, vd = 7168, 128, 1536, 512, 64, 128, 128
    attention = (
        d * q_rank + q_rank * h * (nope + rope)  # q_a_proj, q_b_proj
        + d * (kv_rank + rope) + kv_rank * h * (nope + vd)  # kv_a_proj_with_mqa, kv_b_proj
        + h * vd * d  # o_proj
        + q_rank + kv_rank  # q_a_layernorm, kv_a_layernorm
    )  # fmt: skip
    dense_mlp = 3 * d * 18432
    moe = 256 * d + 256 * 3 * d * 2048 + 3 * d * 2048  # router, 256 routed experts, 1 shared expert
    total = 61 * (attention + 2 * d) + 3 * dense_mlp + 58 * moe + 2 * 129280 * d + d
    assert total == 671_026_404_352
    assert total_params(load_spec("deepseek-v3")) == total


def _cut(value: Decimal, reported: str) -> bool:
    scale = {"M": Decimal(10**6), "B": Decimal(10**9)}[reported[-1]]
    figure = Decimal(reported[:-1])
    return figure in {(value / scale).quantize(figure, rounding=r) for r in (ROUND_DOWN, ROUND_HALF_UP)}


@pytest.mark.parametrize("spec", MOE, ids=lambda s: s.name)
def test_active_parameters_agree_with_the_publisher(spec: ModelSpec) -> None:
    """Mistral and Qwen count every parameter a token touches; DeepSeek leaves out the input embedding."""
    assert spec.reported_active_params is not None
    active = active_params(spec)
    if spec.reported_active_params_exclude_input_embedding:
        active -= spec.vocab_size * spec.hidden_size
    assert _cut(Decimal(active), spec.reported_active_params), (spec.name, active)


# The routed experts' weights, from each config.json: MoE layers × E × (gate, up, down of d <-> moe_intermediate)
ROUTED = {
    "deepseek-v2-lite": 26 * 64 * 3 * 2048 * 1408,  # first_k_dense_replace 1 of 27 layers
    "deepseek-v3": 58 * 256 * 3 * 7168 * 2048,  # 3 of 61 dense
    "gpt-oss-20b": 24 * 32 * ((2880 * 2 * 2880 + 2 * 2880) + (2880 * 2880 + 2880)),  # fused gate_up, biases
    "kimi-k2": 60 * 384 * 3 * 7168 * 2048,  # 1 of 61 dense
    "mixtral-8x7b": 32 * 8 * 3 * 4096 * 14336,
    "qwen1.5-moe-a2.7b": 24 * 60 * 3 * 2048 * 1408,  # the shared expert is not routed
    "qwen3-30b-a3b": 48 * 128 * 3 * 2048 * 768,
    "qwen3-next-80b-a3b": 48 * 512 * 3 * 2048 * 512,
}


def test_every_moe_has_its_experts_by_hand() -> None:
    assert {s.name for s in MOE} == set(ROUTED)


@pytest.mark.parametrize("spec", MOE, ids=lambda s: s.name)
def test_layouts_change_adapters_not_parameters(spec: ModelSpec) -> None:
    from estimator.architecture import linear_maps

    counts = {sum(m.params for m in linear_maps(spec, layout)) for layout in ExpertLayout}
    assert len(counts) == 1
    assert param_breakdown(spec)["experts"] == ROUTED[spec.name]


def test_mixtral_lora_per_expert_fused_none_by_hand() -> None:
    spec = load_spec("mixtral-8x7b")
    d, f, e, n, r = 4096, 14336, 8, 32, 8
    attention = r * ((d + d) + (d + 1024) + (d + 1024) + (d + d))
    router = r * (d + e)
    per_expert = e * r * 3 * (d + f)  # gate, up (d -> f) and down (f -> d): r (d + f) each
    fused = e * 2 * r * (d + 2 * f) + e * r * (f + d)  # peft: gate_up at rank 2r, down at r
    assert lora_params(resolve_targets(spec, "all-linear", ExpertLayout.per_expert), r) == n * (
        attention + router + per_expert
    )
    assert lora_params(resolve_targets(spec, "all-linear", ExpertLayout.fused), r) == n * (attention + router + fused)
    assert lora_params(resolve_targets(spec, "all-linear", ExpertLayout.none), r) == n * attention


def test_peft_fused_conversion_drops_deepseek_dense_and_shared_mlps() -> None:
    """peft moves gate_proj/up_proj/down_proj to the expert tensors: same-named nn.Linear MLPs lose LoRA."""
    spec = load_spec("deepseek-v2-lite")
    names = {m.name for m in resolve_targets(spec, "all-linear", ExpertLayout.fused).linears}
    assert "mlp.experts.gate_up_proj" in names and "mlp.gate" in names
    assert not names & {"mlp.gate_proj", "mlp.shared_experts.gate_proj"}
    per_expert = {m.name for m in resolve_targets(spec, "all-linear", ExpertLayout.per_expert).linears}
    assert {"mlp.gate_proj", "mlp.shared_experts.gate_proj", "mlp.experts.gate_proj"} <= per_expert
    assert "mlp.gate" not in per_expert  # DeepSeek's router is a bare weight in its own code


def test_qwen2_moe_fused_is_untouched_experts() -> None:
    """peft does not convert Qwen2-MoE's names: experts and router keep no adapter, the shared expert does."""
    spec = load_spec("qwen1.5-moe-a2.7b")
    names = {m.name for m in resolve_targets(spec, "all-linear", ExpertLayout.fused).linears}
    assert not any("experts" in n for n in names) and "mlp.gate" not in names
    assert {"mlp.shared_expert.gate_proj", "mlp.shared_expert_gate"} <= names


def test_mla_cache_by_hand() -> None:
    spec = load_spec("deepseek-v3")
    latent = 61 * (512 + 64) * 2
    expanded = 61 * 128 * ((128 + 64) + 128) * 2
    assert kv_bytes_per_token(spec, DType.bf16) == latent == 70_272
    assert kv_bytes_per_token(spec, KVFormat(DType.bf16, mla=MlaCache.expanded)) == expanded == 4_997_120
    # int4 with groups of 64 and fp16 scale and zero point: 576 elements = 9 groups per vector.
    assert kv_bytes_per_token(spec, KVFormat(DType.int4)) == 61 * (576 * 4 + 9 * 32) // 8
    lite = load_spec("deepseek-v2-lite")
    assert lite.q_lora_rank is None and kv_bytes_per_token(lite, DType.bf16) == 27 * 576 * 2
