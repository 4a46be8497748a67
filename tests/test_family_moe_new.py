"""Families gpt_oss, phimoe, olmoe, glm4_moe and granitemoe: parameters, active parameters, LoRA and cache by hand.

Real config (tests/data/hf_configs/extra): gpt-oss-20b. No verbatim public copy of the config.json of
Phi-3.5-MoE-instruct, OLMoE-1B-7B-0924, GLM-4.5-Air or granite-3.1-1b-a400m was found, so those families
are checked on configs written here: the architecture values those models publish (the totals below agree
with each publisher's figure), plus small synthetic configs that exercise the family defaults. None of them
is saved as a real config.

Conventions: parameters as transformers 5.24 builds the model (``parameters()``, a tied head once); LoRA on
the fused layout as peft 0.21 adapts it (converted for olmoe and glm4_moe: gate_up at 2r, down and the
router at r; no conversion for gpt_oss, phimoe and granitemoe: only their nn.Linear maps); cache in bf16.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from estimator.architecture import active_params, param_breakdown, total_params
from estimator.hf_config import spec_from_hf_config
from estimator.kv import KVFormat, WindowCache, kv_bytes_per_token, kv_cache_bytes
from estimator.layout import ExpertLayout
from estimator.query import Query
from estimator.specs import ModelSpec
from estimator.stores.targets import lora_params, resolve_targets
from estimator.units import DType

from .conftest import CONFIGS

EXTRA = CONFIGS / "extra"
BF16 = KVFormat(DType.bf16)
BF16_TRANSFORMERS = KVFormat(DType.bf16, window=WindowCache.window_minus_one)

# The published architecture values of each model (no verbatim config.json copy found; see the docstring).
PHI35_MOE = {
    "model_type": "phimoe", "hidden_size": 4096, "intermediate_size": 6400, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32064, "max_position_embeddings": 131072,
    "num_local_experts": 16, "num_experts_per_tok": 2, "attention_bias": True, "lm_head_bias": True,
    "sliding_window": 131072, "tie_word_embeddings": False,
}  # fmt: skip
OLMOE_1B_7B = {
    "model_type": "olmoe", "hidden_size": 2048, "intermediate_size": 1024, "num_hidden_layers": 16,
    "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 50304, "max_position_embeddings": 4096,
    "num_experts": 64, "num_experts_per_tok": 8, "attention_bias": False, "tie_word_embeddings": False,
}  # fmt: skip
GLM45_AIR = {
    "model_type": "glm4_moe", "hidden_size": 4096, "head_dim": 128, "intermediate_size": 10944,
    "moe_intermediate_size": 1408, "num_hidden_layers": 46, "num_attention_heads": 96, "num_key_value_heads": 8,
    "n_routed_experts": 128, "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 1,
    "attention_bias": True, "use_qk_norm": False, "vocab_size": 151552, "max_position_embeddings": 131072,
    "num_nextn_predict_layers": 1, "tie_word_embeddings": False,
}  # fmt: skip
GRANITE_1B_A400M = {
    "model_type": "granitemoe", "hidden_size": 1024, "intermediate_size": 512, "num_hidden_layers": 24,
    "num_attention_heads": 16, "num_key_value_heads": 8, "vocab_size": 49155, "max_position_embeddings": 131072,
    "num_local_experts": 32, "num_experts_per_tok": 8, "tie_word_embeddings": True,
}  # fmt: skip
# Plainly synthetic: family defaults at toy size.
GPT_OSS_DEFAULTS = {  # no layer_types, head_dim, kv heads, attention_bias or window: GptOssConfig's
    "model_type": "gpt_oss", "hidden_size": 128, "intermediate_size": 64, "num_hidden_layers": 3,
    "num_attention_heads": 8, "vocab_size": 1000, "num_local_experts": 4, "num_experts_per_tok": 2,
}  # fmt: skip
GLM_QK_NORM = {  # use_qk_norm on, two dense layers, two shared experts, head_dim from hidden / heads
    "model_type": "glm4_moe", "hidden_size": 256, "intermediate_size": 512, "moe_intermediate_size": 64,
    "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "n_routed_experts": 8,
    "n_shared_experts": 2, "num_experts_per_tok": 2, "first_k_dense_replace": 2, "use_qk_norm": True,
    "vocab_size": 1000,
}  # fmt: skip
WRITTEN: dict[str, dict[str, Any]] = {
    "phi-3.5-moe": PHI35_MOE,
    "olmoe-1b-7b": OLMOE_1B_7B,
    "glm-4.5-air": GLM45_AIR,
    "granite-3.1-1b-a400m": GRANITE_1B_A400M,
    "gpt-oss-defaults": GPT_OSS_DEFAULTS,
    "glm-qk-norm": GLM_QK_NORM,
}


def gpt_oss_20b() -> ModelSpec:
    return spec_from_hf_config(EXTRA / "gpt-oss-20b.json")


def written(tmp_path: Path, name: str) -> ModelSpec:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(WRITTEN[name]))
    return spec_from_hf_config(path)


def fused_lora(spec: ModelSpec, rank: int, targets: str = "all-linear") -> int:
    return lora_params(resolve_targets(spec, targets, ExpertLayout.fused), rank)


# --- gpt-oss-20b (real config) ------------------------------------------------------------------


def test_gpt_oss_20b_parameters_by_hand() -> None:
    d, h, kv, dh, f, e, k, n, v = 2880, 64, 8, 64, 2880, 32, 4, 24, 201088
    attention = (
        (d * h * dh + h * dh)  # q_proj with bias (H · d_h = 4,096 > d)
        + 2 * (d * kv * dh + kv * dh)  # k_proj, v_proj with bias
        + (h * dh * d + d)  # o_proj with bias
    )
    assert attention == 26_550_080
    expert = d * 2 * f + 2 * f + f * d + d  # gate_up_proj (E × d × 2F) and its bias, down_proj and its bias
    assert expert == 24_891_840
    per_layer = attention + h + (d * e + e) + e * expert + 2 * d  # sinks, router with bias, experts, two norms
    assert per_layer == 823_186_976
    total = n * per_layer + 2 * v * d + d  # untied embedding and head, final norm
    assert total == 20_914_757_184  # OpenAI: 20.91B
    spec = gpt_oss_20b()
    assert total_params(spec) == total
    assert param_breakdown(spec)["attention"] == n * (attention + h)  # sinks counted with attention
    active = total - n * (e - k) * expert
    assert active_params(spec) == active == 4_187_440_704
    # OpenAI's "3.61B active" counts the unembedding but not the input embedding.
    assert active - v * d == 3_608_307_264


def test_gpt_oss_20b_lora_peft_adapts_attention_only() -> None:
    spec = gpt_oss_20b()
    d, q, kv, n, e, f, r = 2880, 4096, 512, 24, 32, 2880, 32
    attention = (d + q) + 2 * (d + kv) + (q + d)
    assert attention == 20_736
    # transformers 5's experts are bare tensors and the router a bare weight; peft 0.21 has no conversion.
    assert fused_lora(spec, r) == n * r * attention == 15_925_248
    # Per expert (the convention of gate, up, down per expert; the router stays a bare weight).
    per_expert = lora_params(resolve_targets(spec, "all-linear", ExpertLayout.per_expert), r)
    assert per_expert == n * r * (attention + e * 3 * (d + f)) == 440_598_528


def test_gpt_oss_20b_cache_by_hand() -> None:
    spec = gpt_oss_20b()
    row = 2 * 8 * 64 * 2  # K and V, 8 KV heads of 64, bf16: 2,048 bytes per layer and token
    assert kv_bytes_per_token(spec, BF16) == 24 * row == 49_152
    assert kv_cache_bytes(spec, 1, BF16) == 49_152
    full, sliding = 12, 12  # layer_types alternate, sliding first; window 128
    assert kv_cache_bytes(spec, 1_000, BF16) == full * row * 1_000 + sliding * row * 128 == 27_721_728
    assert kv_cache_bytes(spec, 1_000, BF16_TRANSFORMERS) == full * row * 1_000 + sliding * row * 127 == 27_697_152
    assert kv_cache_bytes(spec, 100_000, BF16) == full * row * 100_000 + sliding * row * 128 == 2_460_745_728
    assert kv_cache_bytes(spec, 100_000, BF16_TRANSFORMERS) == 2_460_721_152


def test_gpt_oss_defaults_alternate_windows(tmp_path: Path) -> None:
    spec = written(tmp_path, "gpt-oss-defaults")
    assert spec.layer_windows() == (128, None, 128)
    assert (spec.head_dim, spec.num_key_value_heads, spec.attention_bias) == (64, 8, True)
    d, h, dh, kv, f, e, v = 128, 8, 64, 8, 64, 4, 1000
    attention = (d * h * dh + h * dh) + 2 * (d * kv * dh + kv * dh) + (h * dh * d + d) + h  # sinks: h
    assert attention == 263_816
    moe = d * e + e + e * (3 * d * f + 2 * f + d)  # router with bias, experts with biases
    assert moe == 99_844
    assert total_params(spec) == 3 * (attention + moe + 2 * d) + 2 * v * d + d == 1_347_876


# --- Phi-3.5-MoE (published values) -------------------------------------------------------------


def test_phi35_moe_parameters_by_hand(tmp_path: Path) -> None:
    spec = written(tmp_path, "phi-3.5-moe")
    d, f, h, kv, dh, e, k, n, v = 4096, 6400, 32, 8, 128, 16, 2, 32, 32064
    attention = 2 * (d * h * dh + d) + 2 * (d * kv * dh + kv * dh)  # q, o (4,096 each), k, v; all biased
    assert attention == 41_953_280
    expert = 3 * d * f
    per_layer = attention + d * e + e * expert + 2 * (2 * d)  # router, experts, two LayerNorms (weight, bias)
    assert per_layer == 1_300_326_400
    total = n * per_layer + v * d + (v * d + v) + 2 * d  # embedding, head with bias, final LayerNorm
    assert total == 41_873_153_344  # Microsoft: 41.9B
    assert total_params(spec) == total
    assert active_params(spec) == total - n * (e - k) * expert == 6_640_999_744  # Microsoft: 6.6B


def test_phi35_moe_lora_adapts_the_router_and_the_cache(tmp_path: Path) -> None:
    spec = written(tmp_path, "phi-3.5-moe")
    d, kv_out, e, n, r = 4096, 1024, 16, 32, 32
    # PhimoeTopKRouter is an nn.Linear: all-linear adapts it; the fused experts stay without adapters.
    assert fused_lora(spec, r) == n * r * (2 * (d + d) + 2 * (d + kv_out) + (d + e)) == 31_473_664
    row = 2 * 8 * 128 * 2
    assert kv_bytes_per_token(spec, BF16) == 32 * row == 131_072
    assert kv_cache_bytes(spec, 1_000, BF16) == 131_072_000
    assert kv_cache_bytes(spec, 100_000, BF16) == 13_107_200_000  # the window (131,072) is not reached
    assert kv_cache_bytes(spec, 200_000, BF16_TRANSFORMERS) == 32 * row * 131_071


# --- OLMoE-1B-7B (published values) -------------------------------------------------------------


def test_olmoe_parameters_by_hand(tmp_path: Path) -> None:
    spec = written(tmp_path, "olmoe-1b-7b")
    d, f, h, kv, e, k, n, v = 2048, 1024, 16, 16, 64, 8, 16, 50304
    qk_norms = d + (d // h) * kv  # q_norm over the whole query projection, k_norm over the key projection
    expert = 3 * d * f
    per_layer = 4 * d * d + qk_norms + d * e + e * expert + 2 * d
    assert per_layer == 419_569_664
    total = n * per_layer + 2 * v * d + d
    assert total == 6_919_161_856  # AllenAI: 6.9B
    assert total_params(spec) == total
    assert active_params(spec) == total - n * (e - k) * expert == 1_282_017_280  # AllenAI: 1.3B


def test_olmoe_lora_converted_by_peft_and_cache(tmp_path: Path) -> None:
    spec = written(tmp_path, "olmoe-1b-7b")
    d, f, e, n, r = 2048, 1024, 64, 16, 32
    attention = 4 * (d + d)
    experts = e * 2 * (d + 2 * f) + e * (f + d)  # gate_up at rank 2r, down at r
    router = d + e
    assert fused_lora(spec, r) == n * r * (attention + experts + router) == 378_568_704
    assert kv_bytes_per_token(spec, BF16) == 16 * 2 * 16 * 128 * 2 == 131_072
    assert kv_cache_bytes(spec, 100_000, BF16) == 13_107_200_000


# --- GLM-4.5-Air (published values) -------------------------------------------------------------


def test_glm45_air_parameters_by_hand(tmp_path: Path) -> None:
    spec = written(tmp_path, "glm-4.5-air")
    d, h, kv, dh, dense_f, f, e, k, n, v = 4096, 96, 8, 128, 10944, 1408, 128, 8, 46, 151552
    attention = (d * h * dh + h * dh) + 2 * (d * kv * dh + kv * dh) + h * dh * d  # q, k, v biased; o not
    assert attention == 109_066_240
    expert = 3 * d * f
    sparse = d * e + e * expert + expert  # router weight (a bare E × d), routed experts, one shared expert
    assert sparse == 2_232_418_304
    total = n * (attention + 2 * d) + 3 * d * dense_f + 45 * sparse + 2 * v * d + d
    assert total == 106_852_245_504  # Zhipu: 106B (the MTP layer transformers does not build left out)
    assert total_params(spec) == total
    active = total - 45 * (e - k) * expert
    assert active_params(spec) == active == 13_424_123_904
    assert active - 2 * v * d == 12_182_609_920  # Zhipu's "12B active": without embedding and head
    assert any("multi-token-prediction" in note for note in spec.notes)


def test_glm45_air_lora_converted_by_peft_and_cache(tmp_path: Path) -> None:
    spec = written(tmp_path, "glm-4.5-air")
    d, q, kv_out, f, e, r = 4096, 12288, 1024, 1408, 128, 32
    attention = (d + q) + 2 * (d + kv_out) + (q + d)
    sparse = e * 2 * (d + 2 * f) + e * (f + d) + (d + e)  # gate_up 2r, down r, router r
    # The dense MLP of layer 0 and the shared experts share the names gate_proj, up_proj, down_proj:
    # peft moves those names to the expert tensors, so they keep no adapter.
    assert fused_lora(spec, r) == r * (46 * attention + 45 * sparse) == 3_631_927_296
    assert kv_bytes_per_token(spec, BF16) == 46 * 2 * 8 * 128 * 2 == 188_416
    assert kv_cache_bytes(spec, 1_000, BF16) == 188_416_000


def test_glm_qk_norm_dense_layers_and_shared_experts(tmp_path: Path) -> None:
    spec = written(tmp_path, "glm-qk-norm")
    d, dh, h, kv, dense_f, f, e, v = 256, 64, 4, 2, 512, 64, 8, 1000  # head_dim = 256 / 4
    attention = d * h * dh + 2 * d * kv * dh + h * dh * d + 2 * dh  # no biases (default), q_norm and k_norm
    assert attention == 196_736
    sparse = d * e + e * 3 * d * f + 3 * d * (2 * f)  # router, experts, shared MLP of 2 · 64
    assert sparse == 493_568
    total = 4 * (attention + 2 * d) + 2 * 3 * d * dense_f + 2 * sparse + 2 * v * d + d
    assert total_params(spec) == total == 3_074_816


# --- granite-3.1-1b-a400m (published values) ----------------------------------------------------


def test_granite_moe_parameters_by_hand(tmp_path: Path) -> None:
    spec = written(tmp_path, "granite-3.1-1b-a400m")
    d, f, h, kv, dh, e, k, n, v = 1024, 512, 16, 8, 64, 32, 8, 24, 49155
    attention = 2 * d * h * dh + 2 * d * kv * dh
    expert = 3 * d * f  # input_linear (gate and up) and output_linear
    per_layer = attention + d * e + e * expert + 2 * d
    assert per_layer == 53_512_192
    total = n * per_layer + v * d + d  # embeddings tied
    assert total == 1_334_628_352  # IBM: 1.3B
    assert total_params(spec) == total
    assert active_params(spec) == total - n * (e - k) * expert == 428_658_688  # the "a400m" of its name


def test_granite_moe_lora_attention_only_and_cache(tmp_path: Path) -> None:
    spec = written(tmp_path, "granite-3.1-1b-a400m")
    d, kv_out, n, r = 1024, 512, 24, 32
    assert fused_lora(spec, r) == n * r * (2 * (d + d) + 2 * (d + kv_out)) == 5_505_024
    assert kv_bytes_per_token(spec, BF16) == 24 * 2 * 8 * 64 * 2 == 49_152
    assert kv_cache_bytes(spec, 100_000, BF16) == 4_915_200_000


def test_layouts_change_adapters_not_parameters(tmp_path: Path) -> None:
    from estimator.architecture import linear_maps

    for spec in [gpt_oss_20b(), *(written(tmp_path, name) for name in WRITTEN)]:
        counts = {sum(m.params for m in linear_maps(spec, layout)) for layout in ExpertLayout}
        assert len(counts) == 1, spec.name


# --- against transformers and peft --------------------------------------------------------------


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", ["gpt-oss-20b", *WRITTEN])
def test_measures_exactly(name: str, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    from estimator.validate import checks, measure

    spec = gpt_oss_20b() if name == "gpt-oss-20b" else written(tmp_path, name)
    assert measure.count_params(measure.build_model(spec)) == total_params(spec)
    result = checks.validate(Query(spec, rank=8))
    differs = [c for c in result.checks if c.status == "differs"]
    assert not differs, differs
