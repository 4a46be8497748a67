"""Families qwen3_5_text and qwen3_5_moe_text (and the qwen3_5 / qwen3_5_moe wrappers' language models).

The config class's own defaults (shrunk) and a second shape are compared with transformers and peft in
tests/test_config_defaults.py and tests/test_family_defaults_kv.py (parameters, LoRA r=8 all-linear, the cache
after a forward pass). Here: counts by hand from the formulas on a small config, the wrappers against the whole
model transformers builds (vision tower left out by name), the layer map read from full_attention_interval, and
the refusals. No verbatim public config.json of a Qwen3.5 model was found, so none is used as one.

Conventions: parameters as transformers 5.24 builds them; LoRA as peft 0.21 adapts the model (it does not convert
qwen3_5_moe_text's fused experts: they and the router keep no adapter); the cache in bf16 with transformers' K
convolution columns and its float32 recurrent state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from estimator.architecture import total_params
from estimator.errors import EstimatorError
from estimator.hf_config import spec_from_hf_config
from estimator.kv import kv_bytes_per_token, kv_cache_bytes, kv_state_bytes
from estimator.layout import ConvCache, ExpertLayout, KVFormat, WindowCache
from estimator.stores.targets import lora_params, resolve_targets
from estimator.units import DType

TRANSFORMERS_FP32 = KVFormat(DType.bf16, conv=ConvCache.kernel, state_dtype=DType.fp32)

# d 64, 4 layers (3 DeltaNet, 1 attention: the default interval 4), V 1,000; attention H 4, K 2, d_h 16;
# DeltaNet H_k 2, d_k 16, H_v 4, d_v 16, kernel 4.
QWEN35_SMALL: dict[str, Any] = {
    "model_type": "qwen3_5_text", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 1000,
    "linear_num_key_heads": 2, "linear_key_head_dim": 16, "linear_num_value_heads": 4, "linear_value_head_dim": 16,
}  # fmt: skip
QWEN35_MOE_SMALL: dict[str, Any] = {
    **{k: v for k, v in QWEN35_SMALL.items() if k != "intermediate_size"}, "model_type": "qwen3_5_moe_text",
    "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 48,
}  # fmt: skip


def written(tmp_path: Path, config: dict[str, Any]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def _delta_net_by_hand(d: int) -> int:
    conv = 2 * 2 * 16 + 4 * 16  # q, k, v channels: 128
    return (
        d * conv  # in_proj_qkv
        + d * 4 * 16  # in_proj_z
        + 2 * d * 4  # in_proj_b, in_proj_a
        + 4 * 16 * d  # out_proj
        + conv * 4  # conv1d, no bias
        + 2 * 4  # dt_bias, A_log
        + 16  # gated norm of d_v
    )


def test_qwen3_5_params_by_hand(tmp_path: Path) -> None:
    d, v = 64, 1000
    delta_net = _delta_net_by_hand(d)
    assert delta_net == 17_432
    attention = d * 2 * 4 * 16 + 2 * d * 2 * 16 + 4 * 16 * d + 2 * 16  # q twice as wide (gate), k, v, o, q/k norms
    mlp = 3 * d * 128
    expected = 3 * delta_net + attention + 4 * (mlp + 2 * d) + 2 * v * d + d  # untied head, final norm
    assert expected == 295_592
    assert total_params(spec_from_hf_config(written(tmp_path, QWEN35_SMALL))) == expected


def test_qwen3_5_moe_params_and_lora_by_hand(tmp_path: Path) -> None:
    """Experts in every layer; peft adapts every nn.Linear but the fused experts and the bare router weight."""
    d = 64
    spec = spec_from_hf_config(written(tmp_path, QWEN35_MOE_SMALL))
    moe = 8 * d + 8 * 3 * d * 32 + 3 * d * 48 + d  # router, experts, shared expert, its gate
    attention = d * 2 * 4 * 16 + 2 * d * 2 * 16 + 4 * 16 * d + 2 * 16
    expected = 3 * _delta_net_by_hand(d) + attention + 4 * (moe + 2 * d) + 2 * 1000 * d + d
    assert total_params(spec) == expected == 433_064
    delta_net = (d + 128) + (d + 64) + 2 * (d + 4) + (64 + d)
    attention_lora = (d + 128) + 2 * (d + 32) + (64 + d)
    shared = 2 * (d + 48) + (48 + d) + (d + 1)  # gate, up, down of the shared expert; its gate
    targets = resolve_targets(spec, "all-linear", ExpertLayout.fused)
    assert lora_params(targets, 8) == 8 * (3 * delta_net + attention_lora + 4 * shared) == 30_944


def test_qwen3_5_cache_and_state_by_hand(tmp_path: Path) -> None:
    spec = spec_from_hf_config(written(tmp_path, QWEN35_SMALL))
    assert kv_bytes_per_token(spec, DType.bf16) == 1 * 2 * 2 * 16 * 2  # one attention layer: K and V, 2 heads of 16
    conv, state = 128, 4 * 16 * 16  # channels; H_v · d_k · d_v
    assert kv_state_bytes(spec, TRANSFORMERS_FP32) == 3 * (conv * 4 * 2 + state * 4) == 15_360


def test_qwen3_5_layer_map_from_full_attention_interval(tmp_path: Path) -> None:
    """__post_init__ reads full_attention_interval (no field of the class) into layer_types: the same spec."""
    types = ["linear_attention", "full_attention"] * 2
    given = spec_from_hf_config(written(tmp_path / "a", {**QWEN35_SMALL, "layer_types": types}))
    derived = spec_from_hf_config(written(tmp_path / "b", {**QWEN35_SMALL, "full_attention_interval": 2}))
    assert derived.layer_types == given.layer_types == tuple(types)
    assert total_params(derived) == total_params(given)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"layer_types": ["linear_attention", "sliding_attention"] * 2}, "layer_types"),
        ({"num_experts": 0, "model_type": "qwen3_5_moe_text"}, "num_experts"),
    ],
    ids=["sliding-layer", "no-experts"],
)
def test_qwen3_5_refuses_what_it_does_not_model(tmp_path: Path, changes: dict[str, Any], field: str) -> None:
    config = {**(QWEN35_MOE_SMALL if "num_experts" in changes else QWEN35_SMALL), **changes}
    with pytest.raises(EstimatorError, match=field) as error:
        spec_from_hf_config(written(tmp_path, config))
    assert "\n" not in str(error.value)


def test_qwen3_5_notes_a_window_its_code_never_reads(tmp_path: Path) -> None:
    """Qwen3.5's attention and transformers' cache for it read no sliding_window (its full_attention layers keep
    every token): the count and the cache are the same, and the note says the field was not read."""
    plain = spec_from_hf_config(written(tmp_path / "a", QWEN35_SMALL))
    windowed = spec_from_hf_config(written(tmp_path / "b", {**QWEN35_SMALL, "sliding_window": 16}))
    assert windowed.sliding_window is None and windowed.layer_types == plain.layer_types
    assert kv_bytes_per_token(windowed, DType.bf16) == kv_bytes_per_token(plain, DType.bf16)
    assert any("sliding_window" in note and "not read" in note for note in windowed.notes)


def _wrapper(model_type: str, text: dict[str, Any], tie: bool) -> dict[str, Any]:
    vision = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
              "num_position_embeddings": 16, "patch_size": 4}  # fmt: skip
    return {"model_type": model_type, "tie_word_embeddings": tie, "vision_config": vision,
            "text_config": {**text, "tie_word_embeddings": tie}}  # fmt: skip


def test_a_wrapper_ties_as_its_own_flag_says_and_refuses_a_mismatch(tmp_path: Path) -> None:
    text = {k: v for k, v in QWEN35_SMALL.items() if k != "model_type"}
    config = _wrapper("qwen3_5", text, tie=True)
    config["text_config"]["tie_word_embeddings"] = False
    with pytest.raises(EstimatorError, match="tie_word_embeddings differs") as error:
        spec_from_hf_config(written(tmp_path, config))
    assert "\n" not in str(error.value)


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    ("wrapper", "text", "tie"),
    [("qwen3_5", QWEN35_SMALL, True), ("qwen3_5_moe", QWEN35_MOE_SMALL, False)],
    ids=["qwen3_5-tied", "qwen3_5_moe"],
)
def test_a_wrapper_counts_its_language_model(tmp_path: Path, wrapper: str, text: dict[str, Any], tie: bool) -> None:
    """The wrapper's language model and head as transformers builds them (every parameter outside model.visual)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    inner = {k: v for k, v in text.items() if k != "model_type"}
    config = _wrapper(wrapper, inner, tie)
    spec = spec_from_hf_config(written(tmp_path, config))
    assert spec.model_type == text["model_type"] and spec.tie_word_embeddings is tie
    hf = transformers.AutoConfig.for_model(wrapper, **{k: v for k, v in config.items() if k != "model_type"})
    with torch.device("meta"):
        model = transformers.AutoModelForImageTextToText.from_config(hf)
    language = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("model.visual."))
    assert total_params(spec) == language


# --- Gemma 4 (gemma4_text) ---------------------------------------------------------------------------------------
# Gemma-4-31B-it's text_config (https://huggingface.co/google/gemma-4-31B-it), as transformers 5.7.0 prints it in a
# public model report found through the code index (its repository was not recorded, so it is not saved as a real
# config here); the checkpoint's tensor list in the same report agrees with every shape below: sliding q_proj
# [8192, 5376], k_proj and v_proj [4096, 5376]; global q_proj [16384, 5376], k_proj [2048, 5376], no v_proj.
GEMMA4_31B: dict[str, Any] = {
    "model_type": "gemma4_text", "hidden_size": 5376, "intermediate_size": 21504, "num_hidden_layers": 60,
    "num_attention_heads": 32, "num_key_value_heads": 16, "head_dim": 256, "global_head_dim": 512,
    "num_global_key_value_heads": 4, "attention_k_eq_v": True, "hidden_size_per_layer_input": 0,
    "vocab_size": 262144, "vocab_size_per_layer_input": 262144, "max_position_embeddings": 262144,
    "sliding_window": 1024, "num_kv_shared_layers": 0, "tie_word_embeddings": True, "enable_moe_block": False,
    "use_double_wide_mlp": False, "use_bidirectional_attention": "vision", "attention_bias": False,
    "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 10,
}  # fmt: skip
# Small, every Gemma 4 feature on: keys as values on global layers, 2 shared layers (one of each type), double-wide
# MLPs on them, per-layer embeddings; d 64, H 4, sliding K 2 of 16, global K 1 of 32, F 96, p 8, V_p 100, V 1,000.
GEMMA4_SMALL: dict[str, Any] = {
    "model_type": "gemma4_text", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 6,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "global_head_dim": 32,
    "num_global_key_value_heads": 1, "attention_k_eq_v": True, "num_kv_shared_layers": 2,
    "use_double_wide_mlp": True, "hidden_size_per_layer_input": 8, "vocab_size_per_layer_input": 100,
    "vocab_size": 1000, "sliding_window": 16, "layer_types": ["sliding_attention", "full_attention"] * 3,
}  # fmt: skip


def test_gemma4_31b_params_and_cache_by_hand(tmp_path: Path) -> None:
    d, f, v = 5376, 21504, 262144
    sliding = d * 32 * 256 + 2 * d * 16 * 256 + 32 * 256 * d + 3 * d * f + 4 * d + 2 * 256
    full = d * 32 * 512 + d * 4 * 512 + 32 * 512 * d + 3 * d * f + 4 * d + 2 * 512  # keys serve as values
    expected = 50 * sliding + 10 * full + v * d + d  # tied head
    assert expected == 30_697_345_280
    spec = spec_from_hf_config(written(tmp_path, GEMMA4_31B))
    assert total_params(spec) == expected
    per_token = (50 * 2 * 16 * 256 + 10 * 2 * 4 * 512) * 2  # K and V on every layer (V a copy of K globally), bf16
    assert kv_bytes_per_token(spec, DType.bf16) == per_token == 901_120
    held = KVFormat(DType.bf16, window=WindowCache.window_minus_one)  # transformers keeps 1,023 after a prefill
    tokens = 100_000
    assert kv_cache_bytes(spec, tokens, held) == (50 * 2 * 16 * 256 * 1023 + 10 * 2 * 4 * 512 * tokens) * 2


def test_gemma4_small_params_and_lora_by_hand(tmp_path: Path) -> None:
    """Layers 0-3 keep their cache; 4 (sliding) and 5 (global) reuse 2's and 3's and double their MLP."""
    d, p = 64, 8
    sliding_q, global_q = d * 4 * 16 + 4 * 16 * d, d * 4 * 32 + 4 * 32 * d  # q_proj and o_proj
    per_layer = 2 * d * p + 5 * d  # gate and projection of the per-layer input; five norms of d
    layers = (
        2 * (sliding_q + 2 * d * 2 * 16 + 3 * d * 96 + 2 * 16)  # 0, 2: k, v; q and k norms
        + 2 * (global_q + d * 1 * 32 + 3 * d * 96 + 2 * 32)  # 1, 3: k only (keys as values)
        + (sliding_q + 3 * d * 192 + 16)  # 4: shared, q norm only, MLP twice as wide
        + (global_q + 3 * d * 192 + 32)  # 5
        + 6 * per_layer
    )
    outside = 1000 * d + 100 * 6 * p + d * 6 * p + p + d  # embeddings, per-layer ones, their projection, norms
    spec = spec_from_hf_config(written(tmp_path, GEMMA4_SMALL))
    assert total_params(spec) == layers + outside == 313_720
    lora = (
        2 * ((d + 64) + 2 * (d + 32) + (64 + d)) + 2 * ((d + 128) + (d + 32) + (128 + d))
        + ((d + 64) + (64 + d)) + ((d + 128) + (128 + d))
        + 4 * (2 * (d + 96) + (96 + d)) + 2 * (2 * (d + 192) + (192 + d))
        + 6 * ((d + p) + (p + d)) + (d + 6 * p)
    )  # fmt: skip
    assert lora_params(resolve_targets(spec, "all-linear"), 8) == 8 * lora == 55_424


def test_gemma4_global_shape_under_either_name(tmp_path: Path) -> None:
    """global_head_dim and num_global_key_value_heads (released configs) and per_layer_config (what transformers
    5.24 writes) give the same spec."""
    per_layer = {str(i): {"head_dim": 32, "num_key_value_heads": 1} for i in (1, 3, 5)}
    rest = {k: v for k, v in GEMMA4_SMALL.items() if k not in ("global_head_dim", "num_global_key_value_heads")}
    old = spec_from_hf_config(written(tmp_path / "a", GEMMA4_SMALL))
    new = spec_from_hf_config(written(tmp_path / "b", {**rest, "per_layer_config": per_layer}))
    assert old.family_fields == new.family_fields and total_params(old) == total_params(new)
    assert kv_bytes_per_token(old, DType.bf16) == kv_bytes_per_token(new, DType.bf16)
    none = spec_from_hf_config(written(tmp_path / "c", {**rest, "per_layer_config": {}}))  # no overrides
    own = dict(none.family_fields)
    assert (own["global_head_dim"], own["num_global_key_value_heads"]) == (16, 2)  # head_dim, num_key_value_heads


def test_gemma4_last_layer_is_global_as_transformers_forces(tmp_path: Path) -> None:
    spec = spec_from_hf_config(
        written(tmp_path, {**GEMMA4_SMALL, "layer_types": ["sliding_attention"] * 6, "num_kv_shared_layers": 0})
    )
    assert spec.layer_types is not None and spec.layer_types[-1] == "full_attention"
    assert any("forces" in note for note in spec.notes)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"enable_moe_block": True, "top_k_experts": 2, "moe_intermediate_size": 32}, "num_experts"),
        ({"use_bidirectional_attention": "all"}, "use_bidirectional_attention"),
        ({"per_layer_config": {"1": {"intermediate_size": 32}}}, "per_layer_config"),
        ({"num_kv_shared_layers": 5}, "num_kv_shared_layers|share"),
    ],
    ids=["moe-without-experts", "bidirectional", "per-layer-width", "sharing-without-producer"],
)  # fmt: skip
def test_gemma4_refuses_what_it_does_not_model(tmp_path: Path, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(EstimatorError, match=field) as error:
        spec_from_hf_config(written(tmp_path, {**GEMMA4_SMALL, **changes}))
    assert "\n" not in str(error.value)


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
def test_gemma4_wrapper_counts_its_language_model(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    text = {k: v for k, v in GEMMA4_SMALL.items() if k != "model_type"}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "num_key_value_heads": 2, "head_dim": 16}  # fmt: skip
    config = {"model_type": "gemma4", "text_config": text, "vision_config": vision, "audio_config": None}
    spec = spec_from_hf_config(written(tmp_path, config))
    hf = transformers.AutoConfig.for_model("gemma4", **{k: v for k, v in config.items() if k != "model_type"})
    with torch.device("meta"):
        model = transformers.AutoModelForImageTextToText.from_config(hf)
    language = sum(p.numel() for name, p in model.named_parameters() if name.startswith("model.language_model."))
    assert total_params(spec) == language  # tied head


# --- MiniMax (minimax) -------------------------------------------------------------------------------------------
# d 64, 4 layers (softmax on 0 and 2, lightning on 1 and 3: MiniMaxConfig's default pattern), H 4 of d_h 16, K 2,
# 4 experts of 96, top 2, V 1,000, untied.
MINIMAX_SMALL: dict[str, Any] = {
    "model_type": "minimax", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4,
    "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2,
    "vocab_size": 1000, "block_size": 8,
}  # fmt: skip


def test_minimax_params_lora_and_state_by_hand(tmp_path: Path) -> None:
    d = 64
    softmax = d * 64 + 2 * d * 32 + 64 * d  # q, k, v, o
    lightning = d * 3 * 64 + d * 64 + 64 * d + 64  # qkv_proj, output_gate, out_proj, norm of H d_h
    moe = 4 * d + 4 * 3 * d * 96  # router, experts
    expected = 2 * softmax + 2 * lightning + 4 * (moe + 2 * d) + 2 * 1000 * d + d
    assert expected == 490_176
    spec = spec_from_hf_config(written(tmp_path, MINIMAX_SMALL))
    assert spec.layer_types == ("full_attention", "linear_attention") * 2
    assert total_params(spec) == expected
    # peft converts MiniMax's experts (Mixtral's names): gate_up at 2r, down and the router at r.
    experts = 4 * 2 * (d + 2 * 96) + 4 * (96 + d) + (d + 4)  # per expert: gate_up 2r · (d + 2F), down r · (F + d)
    lora = 2 * ((d + 64) + 2 * (d + 32) + (64 + d)) + 2 * ((d + 192) + (d + 64) + (64 + d)) + 4 * experts
    assert lora_params(resolve_targets(spec, "all-linear", ExpertLayout.fused), 8) == 8 * lora == 103_552
    assert kv_bytes_per_token(spec, DType.bf16) == 2 * 2 * 2 * 16 * 2  # the two softmax layers
    assert kv_state_bytes(spec, DType.bf16) == 2 * 4 * 16 * 16 * 2  # K^T V per head, two lightning layers, bf16


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
def test_minimax_cache_counts_the_lightning_state_transformers_keeps_outside_its_layers(tmp_path: Path) -> None:
    """MiniMaxCache keeps the lightning states in linear_cache, beside its layers: 20 tokens (past two
    blocks of 8), under FakeTensorMode."""
    pytest.importorskip("torch")
    from estimator.validate import measure

    spec = spec_from_hf_config(written(tmp_path, MINIMAX_SMALL))
    for tokens, held in measure.cache_bytes(spec, [20], DType.bf16).items():
        assert held == (tokens * 2 * 2 * 2 * 16 * 2, 2 * 4 * 16 * 16 * 2), tokens


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"attn_type_list": [0, 1, 0, 1]}, "attn_type_list"),
        ({"shared_intermediate_size": 32}, "shared_intermediate_size"),
        ({"sliding_window": 16}, "sliding_window"),
        ({"layer_types": ["full_attention", "mamba"] * 2}, "layer_types"),
    ],
    ids=["attn-type-list", "shared-expert", "window", "layer-kind"],
)
def test_minimax_refuses_what_it_does_not_model(tmp_path: Path, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(EstimatorError, match=field) as error:
        spec_from_hf_config(written(tmp_path, {**MINIMAX_SMALL, **changes}))
    assert "\n" not in str(error.value)


def test_minimax_attn_type_list_that_agrees_is_read(tmp_path: Path) -> None:
    """MiniMax's own attn_type_list (0 lightning, 1 softmax) is accepted where it says what transformers builds."""
    spec = spec_from_hf_config(written(tmp_path, {**MINIMAX_SMALL, "attn_type_list": [1, 0, 1, 0]}))
    assert spec.layer_types == ("full_attention", "linear_attention") * 2


# --- MiMo-V2-Flash (mimo_v2_flash) -------------------------------------------------------------------------------
# MiMoV2FlashConfig's defaults, which transformers documents as XiaomiMiMo/MiMo-V2-Flash's
# (https://huggingface.co/XiaomiMiMo/MiMo-V2-Flash; the class's auto_docstring checkpoint), with the checkpoint's own
# remote-code fields written as that code reads the same model: full attention on layers 0, 5, 11, ..., 47, layer 0
# dense, sliding layers of 8 KV heads with sinks, a window of sliding_window_size 128 (+ 1, as transformers reads it).
MIMO_FLASH: dict[str, Any] = {
    "model_type": "mimo_v2_flash", "num_hidden_layers": 48, "sliding_window_size": 128,
    "hybrid_layer_pattern": [0 if i == 0 or (i + 1) % 6 == 0 else 1 for i in range(48)],
    "moe_layer_freq": [0] + [1] * 47, "swa_num_key_value_heads": 8, "swa_head_dim": 192, "swa_v_head_dim": 128,
    "add_swa_attention_sink_bias": True, "add_full_attention_sink_bias": False,
}  # fmt: skip


def test_mimo_v2_flash_params_and_cache_by_hand(tmp_path: Path) -> None:
    d, h, k, dk, dv, v = 4096, 64, 4, 192, 128, 152576
    full = d * h * dk + d * k * dk + d * k * dv + h * dv * d
    sliding = d * h * dk + d * 2 * k * dk + d * 2 * k * dv + h * dv * d + h  # twice the KV heads, H sinks
    dense, sparse = 3 * d * 16384, 256 * d + 256 * 3 * d * 2048  # router, experts
    expected = 9 * full + 39 * sliding + dense + 47 * sparse + 48 * 2 * d + 2 * v * d + d
    assert expected == 308_778_768_832
    spec = spec_from_hf_config(written(tmp_path, MIMO_FLASH))
    assert spec.sliding_window == 129 and any("sliding_window_size + 1" in note for note in spec.notes)
    assert total_params(spec) == expected
    per_token = (9 * k + 39 * 2 * k) * (dk + dv) * 2  # keys of 192 and values of 128, bf16
    assert kv_bytes_per_token(spec, DType.bf16) == per_token == 222_720
    held = KVFormat(DType.bf16, window=WindowCache.window_minus_one)  # 128 tokens per sliding layer
    tokens = 100_000
    assert kv_cache_bytes(spec, tokens, held) == (9 * k * tokens + 39 * 2 * k * 128) * (dk + dv) * 2


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hybrid_layer_pattern": [1] * 48}, "hybrid_layer_pattern"),
        ({"swa_num_key_value_heads": 4}, "swa_num_key_value_heads"),
        ({"add_full_attention_sink_bias": True}, "add_full_attention_sink_bias"),
        ({"n_shared_experts": 1}, "n_shared_experts"),
        ({"layer_types": ["full_attention"] * 47}, "layer_types"),
    ],
    ids=["pattern", "swa-kv-heads", "full-sinks", "shared-expert", "layer-count"],
)
def test_mimo_v2_flash_refuses_what_transformers_does_not_build(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(EstimatorError, match=field) as error:
        spec_from_hf_config(written(tmp_path, {**MIMO_FLASH, **changes}))
    assert "\n" not in str(error.value)


GEMMA4_MOE: dict[str, Any] = {
    **GEMMA4_SMALL, "num_kv_shared_layers": 0, "use_double_wide_mlp": False, "hidden_size_per_layer_input": 0,
    "enable_moe_block": True, "num_experts": 4, "top_k_experts": 2, "moe_intermediate_size": 32,
}  # fmt: skip


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
def test_gemma4_moe_block_by_hand_and_against_transformers_and_peft(tmp_path: Path) -> None:
    """Every layer: the dense MLP, and beside it 4 experts of 32 (fused), the router proj (an nn.Linear), its
    scale and per-expert scale, three more norms. peft 0.21 adapts the router and not the fused experts."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    d = 64
    moe = d * 4 + d + 4 + 4 * 3 * d * 32 + 3 * d  # router proj, scale, per-expert scale, experts, norms
    spec = spec_from_hf_config(written(tmp_path, GEMMA4_MOE))
    plain = spec_from_hf_config(written(tmp_path / "plain", {**GEMMA4_MOE, "enable_moe_block": False}))
    assert total_params(spec) - total_params(plain) == 6 * moe == 150_552
    targets = resolve_targets(spec, "all-linear", ExpertLayout.fused)
    assert lora_params(targets, 8) - lora_params(resolve_targets(plain, "all-linear"), 8) == 8 * 6 * (d + 4)
    fields = {k: v for k, v in GEMMA4_MOE.items() if k != "model_type"}
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(
            transformers.AutoConfig.for_model("gemma4_text", **fields)
        )
        assert sum(p.numel() for p in model.parameters()) == total_params(spec)
        lora = peft.get_peft_model(model, peft.LoraConfig(r=8, target_modules="all-linear"))
    assert sum(p.numel() for p in lora.parameters() if p.requires_grad) == lora_params(targets, 8)


# --- Kimi Linear (kimi_linear) -----------------------------------------------------------------------------------
# As Kimi's checkpoints write it: the layer map in linear_attn_config (1-indexed), the KDA sizes there too, the
# class's own names for the experts. d 64, 4 layers: KDA on 1, 2, 4 and MLA on 3 (1-indexed); layer 1 dense.
KIMI_SMALL: dict[str, Any] = {
    "model_type": "kimi_linear", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4,
    "num_attention_heads": 4, "num_key_value_heads": 4, "kv_lora_rank": 32, "q_lora_rank": None,
    "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16, "vocab_size": 1000, "num_experts": 4,
    "num_experts_per_token": 2, "num_shared_experts": 1, "moe_intermediate_size": 32, "first_k_dense_replace": 1,
    "mla_use_nope": True, "moe_layer_freq": 1,
    "linear_attn_config": {"head_dim": 16, "num_heads": 2, "short_conv_kernel_size": 4, "kda_layers": [1, 2, 4],
                           "full_attn_layers": [3]},
}  # fmt: skip


def test_kimi_linear_params_lora_and_state_by_hand(tmp_path: Path) -> None:
    d, h, dk = 64, 2, 16
    inner = h * dk
    kda = 3 * d * inner + inner * 3 * 4 + (d * dk + dk * inner + inner + h) + d * h + (d * dk + dk * inner)
    kda += dk + inner * d  # the gated norm, o_proj
    mla = d * 4 * 24 + d * (32 + 8) + 32 + 32 * 4 * (16 + 16) + 4 * 16 * d  # q, kv_a, its norm, kv_b, o
    dense, sparse = 3 * d * 96, 4 * d + 4 * 3 * d * 32 + 3 * d * 32  # router, experts, one shared expert
    expected = 3 * kda + mla + dense + 3 * sparse + 4 * 2 * d + 2 * 1000 * d + d
    assert expected == 292_342
    spec = spec_from_hf_config(written(tmp_path, KIMI_SMALL))
    assert spec.layer_types == ("linear_attention",) * 2 + ("full_attention", "linear_attention")
    assert spec.mlp_layer_types == ("dense",) + ("sparse",) * 3
    assert total_params(spec) == expected
    kda_lora = 3 * (d + inner) + (d + dk) + (dk + inner) + (d + h) + (d + dk) + (dk + inner) + (inner + d)
    mla_lora = (d + 96) + (d + 40) + (32 + 128) + (64 + d)
    shared = 2 * (d + 32) + (32 + d)  # peft 0.21 leaves the fused experts and the bare router alone
    lora = 3 * kda_lora + mla_lora + (2 * (d + 96) + (96 + d)) + 3 * shared
    assert lora_params(resolve_targets(spec, "all-linear", ExpertLayout.fused), 8) == 8 * lora
    assert kv_bytes_per_token(spec, DType.bf16) == (32 + 8) * 2  # the MLA layer's latent
    held = KVFormat(DType.bf16, conv=ConvCache.kernel, state_dtype=DType.fp32)  # transformers' form
    assert kv_state_bytes(spec, held) == 3 * (3 * inner * 4 * 2 + h * dk * dk * 4) == 8_448


def test_kimi_linear_ties_nothing_whatever_the_flag(tmp_path: Path) -> None:
    tied = spec_from_hf_config(written(tmp_path / "a", {**KIMI_SMALL, "tie_word_embeddings": True}))
    untied = spec_from_hf_config(written(tmp_path / "b", KIMI_SMALL))
    assert total_params(tied) == total_params(untied) and not tied.tie_word_embeddings
    assert any("ties no weights" in note for note in tied.notes)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"mla_use_output_gate": True}, "mla_use_output_gate"),
        ({"mla_use_nope": False}, "mla_use_nope"),
        ({"routed_expert_hidden_size": 48}, "routed_expert_hidden_size"),
        ({"linear_attn_config": {**KIMI_SMALL["linear_attn_config"], "use_full_rank_gate": True}},
         "use_full_rank_gate"),
        ({"linear_attn_config": {**KIMI_SMALL["linear_attn_config"], "kda_layers": [1, 2]}}, "without a kind"),
    ],
    ids=["mla-output-gate", "mla-rope", "latent-moe", "full-rank-gate", "layer-gap"],
)  # fmt: skip
def test_kimi_linear_refuses_what_transformers_does_not_build(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(EstimatorError, match=field) as error:
        spec_from_hf_config(written(tmp_path, {**KIMI_SMALL, **changes}))
    assert "\n" not in str(error.value)
