"""Families cohere, cohere2, gptj, gpt_neox, gpt_bigcode, granite and glm4: parameters and cache by hand.

Real configs (tests/data/hf_configs/extra): GPT-J 6B, Pythia 1B, SantaCoder (gpt_bigcode) and Granite 3.3
8B Instruct. No public copy of a Command R, Command R7B or GLM-4-0414 config.json was found, so cohere,
cohere2 and glm4 are checked on small configs written here (plainly synthetic, never passed off as a
model), each exercising the family's defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from estimator.architecture import total_params
from estimator.hf_config import spec_from_hf_config
from estimator.kv import KVFormat, WindowCache, kv_bytes_per_token, kv_cache_bytes
from estimator.query import Query
from estimator.specs import ModelSpec
from estimator.units import DType

from .conftest import CONFIGS

EXTRA = CONFIGS / "extra"
REAL = ("gpt-j-6b", "pythia-1b", "gpt-bigcode-santacoder", "granite-3.3-8b-instruct")

# Synthetic configs: only what each case needs, the rest left to the family's defaults.
COHERE_QK = {  # Command R's layout at toy size; use_qk_norm and attention biases on, tie left to the default
    "model_type": "cohere",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 3,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
    "use_qk_norm": True,
    "attention_bias": True,
}
COHERE2 = {  # eight layers, no layer_types: three sliding to one full (pattern 4), window 4,096 by default
    "model_type": "cohere2",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
}
GLM4 = {  # no num_key_value_heads, head_dim or attention_bias: Glm4Config's 2, 128 and true
    "model_type": "glm4",
    "hidden_size": 512,
    "intermediate_size": 768,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "vocab_size": 1000,
    "pad_token_id": None,
}
SYNTHETIC = {"cohere-qk": COHERE_QK, "cohere2-pattern": COHERE2, "glm4-defaults": GLM4}


def real(name: str) -> ModelSpec:
    return spec_from_hf_config(EXTRA / f"{name}.json")


def synthetic(tmp_path: Path, name: str) -> ModelSpec:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(SYNTHETIC[name]))
    return spec_from_hf_config(path)


# --- parameters by hand, real configs ------------------------------------------------------------


def test_gpt_j_6b_by_hand_untied_head_with_bias() -> None:
    d, f, v, n_layers = 4096, 4 * 4096, 50400, 28  # n_inner null: 4 · n_embd
    per_layer = (
        4 * d * d  # q_proj, k_proj, v_proj, out_proj, no biases
        + (d * f + f)  # mlp.fc_in with bias
        + (f * d + d)  # mlp.fc_out with bias
        + 2 * d  # ln_1: weight and bias (parallel block: one LayerNorm)
    )
    assert per_layer == 201_355_264
    expected = v * d + n_layers * per_layer + 2 * d + (v * d + v)  # wte + layers + ln_f + lm_head with its bias
    assert expected == 6_050_882_784
    assert total_params(real("gpt-j-6b")) == expected


def test_pythia_1b_by_hand_and_the_publisher_figure() -> None:
    d, f, v, n_layers = 2048, 8192, 50304, 16
    per_layer = (
        (d * 3 * d + 3 * d)  # attention.query_key_value with bias (attention_bias true by default)
        + (d * d + d)  # attention.dense with bias
        + (d * f + f)  # mlp.dense_h_to_4h
        + (f * d + d)  # mlp.dense_4h_to_h
        + 2 * (2 * d)  # input_layernorm, post_attention_layernorm: weight and bias each
    )
    expected = v * d + n_layers * per_layer + 2 * d + v * d  # embed_in + layers + final_layer_norm + embed_out
    assert expected == 1_011_781_632  # the Pythia paper's count for Pythia-1B
    assert total_params(real("pythia-1b")) == expected


def test_santacoder_by_hand_multi_query_and_learned_positions() -> None:
    d, f, v, n_pos, n_layers, head_dim = 2048, 8192, 49280, 2048, 24, 2048 // 16
    qkv_out = d + 2 * 1 * head_dim  # multi_query: one K and one V head
    per_layer = (
        (d * qkv_out + qkv_out)  # attn.c_attn with bias
        + (d * d + d)  # attn.c_proj
        + (d * f + f)  # mlp.c_fc
        + (f * d + d)  # mlp.c_proj
        + 2 * (2 * d)  # ln_1, ln_2
    )
    expected = v * d + n_pos * d + n_layers * per_layer + 2 * d  # wte + wpe + layers + ln_f; head tied by default
    assert expected == 1_124_886_528
    assert total_params(real("gpt-bigcode-santacoder")) == expected


def test_granite_3_3_8b_by_hand_tied_head() -> None:
    d, f, v, n_layers, kv_out = 4096, 12800, 49159, 40, 8 * 128
    per_layer = 2 * d * d + 2 * d * kv_out + 3 * d * f + 2 * d  # q, o; k, v; gate, up, down; two RMSNorms
    expected = v * d + n_layers * per_layer + d  # tie_word_embeddings true in the config
    assert expected == 8_170_864_640
    assert total_params(real("granite-3.3-8b-instruct")) == expected


# --- parameters by hand, synthetic configs (family defaults) ---------------------------------------


def test_cohere_qk_norm_biases_and_tied_default(tmp_path: Path) -> None:
    d, f, v, n_layers, h, k, dh = 256, 512, 1000, 3, 8, 2, 256 // 8
    per_layer = (
        (d * h * dh + h * dh)  # q_proj with bias (attention_bias)
        + 2 * (d * k * dh + k * dh)  # k_proj, v_proj with bias
        + (h * dh * d + d)  # o_proj with bias
        + 3 * d * f  # gate, up, down: never biased
        + d  # input_layernorm: a LayerNorm without bias
        + h * dh  # q_norm, weight of shape (H, d_h)
        + k * dh  # k_norm, (K, d_h)
    )
    expected = v * d + n_layers * per_layer + d  # embeddings tied by CohereConfig's default
    spec = synthetic(tmp_path, "cohere-qk")
    assert spec.tie_word_embeddings
    assert total_params(spec) == expected == 1_931_072


def test_cohere2_pattern_of_three_sliding_to_one_full(tmp_path: Path) -> None:
    spec = synthetic(tmp_path, "cohere2-pattern")
    assert spec.layer_types == ("sliding_attention",) * 3 + ("full_attention",) + ("sliding_attention",) * 3 + (
        "full_attention",
    )
    assert spec.sliding_window == 4096
    d, f, v, n_layers, kv_out = 256, 512, 1000, 8, 2 * 64
    per_layer = 2 * d * d + 2 * d * kv_out + 3 * d * f + d  # q, o; k, v; MLP; one LayerNorm without bias
    assert total_params(spec) == v * d + n_layers * per_layer + d == 4_976_896


def test_glm4_defaults_two_kv_heads_head_dim_128_qkv_biases(tmp_path: Path) -> None:
    spec = synthetic(tmp_path, "glm4-defaults")
    assert (spec.num_key_value_heads, spec.head_dim, spec.attention_bias) == (2, 128, True)
    d, f, v, n_layers, q_out, kv_out = 512, 768, 1000, 2, 8 * 128, 2 * 128
    per_layer = (
        (d * q_out + q_out)  # q_proj with bias
        + 2 * (d * kv_out + kv_out)  # k_proj, v_proj with bias
        + q_out * d  # o_proj: never biased
        + d * 2 * f  # mlp.gate_up_proj, fused
        + f * d  # mlp.down_proj
        + 4 * d  # four RMSNorms
    )
    assert total_params(spec) == 2 * v * d + n_layers * per_layer + d == 6_012_416  # untied head


# --- the cache by hand -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "per_token"),
    [
        ("gpt-j-6b", 2 * 28 * 16 * 256 * 2),  # 16 heads of 4,096 / 16 = 256
        ("pythia-1b", 2 * 16 * 8 * 256 * 2),  # 8 heads of 2,048 / 8 = 256
        ("gpt-bigcode-santacoder", 2 * 24 * 1 * 128 * 2),  # multi-query: one KV head of 128
        ("granite-3.3-8b-instruct", 2 * 40 * 8 * 128 * 2),
    ],
)
def test_kv_bytes_per_token_by_hand(name: str, per_token: int) -> None:
    spec = real(name)
    assert kv_bytes_per_token(spec, DType.bf16) == per_token
    for tokens in (1, 1_000, 100_000):
        assert kv_cache_bytes(spec, tokens, DType.bf16) == per_token * tokens


def test_cohere2_window_caps_the_sliding_layers(tmp_path: Path) -> None:
    spec = synthetic(tmp_path, "cohere2-pattern")
    row = 2 * 2 * 64 * 2  # K and V, 2 KV heads of 64, bf16: bytes per token and layer
    assert kv_cache_bytes(spec, 1_000, DType.bf16) == 8 * 1_000 * row  # below the window every layer grows
    # Beyond it, six sliding layers hold the window (4,096 by default; 4,095 as transformers keeps it).
    assert kv_cache_bytes(spec, 100_000, DType.bf16) == (2 * 100_000 + 6 * 4_096) * row
    held = KVFormat(DType.bf16, window=WindowCache.window_minus_one)
    assert kv_cache_bytes(spec, 100_000, held) == (2 * 100_000 + 6 * 4_095) * row


def test_null_window_makes_every_cohere2_layer_full(tmp_path: Path) -> None:
    path = tmp_path / "cohere2-no-window.json"
    path.write_text(json.dumps({**COHERE2, "sliding_window": None}))
    spec = spec_from_hf_config(path)
    assert spec.sliding_window is None and spec.layer_types is None
    assert kv_cache_bytes(spec, 100_000, DType.bf16) == 8 * 100_000 * 2 * 2 * 64 * 2


# --- measured: transformers and peft ---------------------------------------------------------------


def _meta_params(config: dict[str, Any]) -> int:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    fields = dict(config)
    model_type = fields.pop("model_type")
    hf_config = transformers.AutoConfig.for_model(model_type, **fields)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf_config)
    return sum(p.numel() for p in model.parameters())


def _no_differences(spec: ModelSpec) -> None:
    from estimator.validate.checks import validate

    result = validate(Query(spec, rank=8))
    differs = [c for c in result.checks if c.status == "differs"]
    assert not differs, differs


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", REAL)
def test_real_configs_measure_exactly(name: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    spec = real(name)
    assert total_params(spec) == _meta_params(json.loads((EXTRA / f"{name}.json").read_text()))
    _no_differences(spec)


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_configs_measure_exactly(name: str, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    spec = synthetic(tmp_path, name)
    assert total_params(spec) == _meta_params(SYNTHETIC[name])
    _no_differences(spec)
