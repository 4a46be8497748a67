"""Every family against transformers and peft on its config class's own defaults: never silently wrong.

For each supported model_type, transformers' config class is built with its own defaults, shrunk (fewer
layers, smaller widths; layer patterns, windows, experts and recurrent layers kept), and again in a second
shape that moves the fields the family reads (expert counts and widths, head_dim, biases, ties, patterns).
Each is written as transformers writes a config.json (``config.to_dict()``: the field names of the pinned
release), read by the tool, and compared with the model transformers builds on the meta device
(``parameters()``) and with peft's LoRA r=8 on all-linear (its trainable parameters). A field a family does
not read, or reads under a name transformers no longer writes, turns this test red.

Skipped where torch is not installed (install the `validate` extra; CI does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from estimator.architecture import total_params
from estimator.errors import EstimatorError
from estimator.families import ATTRIBUTE_MAPS, supported
from estimator.hf_config import ALIASES, TEXT_MODEL_TYPES, spec_from_config, spec_from_hf_config
from estimator.layout import ExpertLayout
from estimator.stores.kinds import peft_target_modules
from estimator.stores.targets import lora_params, resolve_targets

from .conftest import EXTRA_CONFIGS, ZOO_CONFIGS

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

pytestmark = [pytest.mark.validation, pytest.mark.filterwarnings("ignore")]

RANK = 8
# The widths every shrunk config takes where its class has the field (head_dim stays the class's own).
SMALL = {"hidden_size": 64, "intermediate_size": 96, "vocab_size": 128, "num_attention_heads": 4,
         "num_key_value_heads": 2}  # fmt: skip
TOKEN_IDS = {"bos_token_id": None, "eos_token_id": None, "pad_token_id": None}

# model_type -> (the layers kept, with every per-layer list cut to them; the fields the shrunk default
# shape sets beside SMALL). Layers: enough for one of each kind of layer in the class's own pattern.
SHRINK: dict[str, tuple[int, dict[str, Any]]] = {
    **dict.fromkeys(("gemma3_text", "gemma2", "cohere2", "exaone4", "olmo3", "smollm3", "qwen3_next"), (6, {})),
    "llama4_text": (8, {"num_local_experts": 4}),
    "ministral": (2, {"head_dim": 16}),  # MinistralConfig's null head_dim: its attention cannot be built
    "jamba": (8, {"num_experts": 4, "mamba_dt_rank": 8}),
    "zamba2": (8, {"n_mamba_heads": 4, "adapter_rank": 8}),
    "gemma3n_text": (10, {"num_kv_shared_layers": 5, "hidden_size_per_layer_input": 16, "laurel_rank": 8,
                          "vocab_size_per_layer_input": 128}),
    **dict.fromkeys(("deepseek_v3", "deepseek_v32"), (4, {"n_routed_experts": 8, "q_lora_rank": 48,
                                                         "kv_lora_rank": 32, "index_n_heads": 4, "n_group": 2,
                                                         "topk_group": 1, "num_key_value_heads": 4,
                                                         "moe_intermediate_size": 48})),
    # DeepseekV2Config's default top-k is null (its routing cannot run); the family needs one for active counts.
    "deepseek_v2": (2, {"n_routed_experts": 8, "num_experts_per_tok": 2, "q_lora_rank": 48, "kv_lora_rank": 32,
                        "num_key_value_heads": 4, "moe_intermediate_size": 48}),  # MLA: KV heads = heads
    "mamba2": (2, {"num_heads": 8, "head_dim": 16, "n_groups": 2, "state_size": 16}),
    "bamba": (2, {"mamba_n_heads": 8, "mamba_d_head": 16, "mamba_d_state": 16, "attn_layer_indices": [1]}),
    "granitemoehybrid": (2, {"mamba_n_heads": 8, "mamba_d_head": 16, "mamba_d_state": 16,
                             "layer_types": ["linear_attention", "full_attention"]}),
    "falcon_h1": (2, {"mamba_n_heads": 8, "mamba_d_head": 16, "mamba_d_ssm": 128, "mamba_d_state": 16}),
    "nemotron_h": (4, {"mamba_num_heads": 8, "mamba_head_dim": 16, "ssm_state_size": 16, "n_groups": 2}),
    # experts under the name each class takes (qwen3_moe's num_experts is written back as num_local_experts)
    **{t: (2, {"num_experts": 8}) for t in ("qwen3_moe", "qwen2_moe", "olmoe")},
    **{t: (2, {"num_local_experts": 8}) for t in ("gpt_oss", "granitemoe", "phimoe", "mixtral")},
    "glm4_moe": (2, {"n_routed_experts": 8}),
    # batch b: head_dim (Hunyuan defaults it to null, on which transformers cannot build), experts, patterns
    "hunyuan_v1_dense": (2, {"head_dim": 16}),
    "hunyuan_v1_moe": (2, {"head_dim": 16, "num_experts": 8}),
    "ernie4_5_moe": (2, {"moe_num_experts": 8, "moe_intermediate_size": 48}),
    "exaone_moe": (4, {"num_experts": 8, "moe_intermediate_size": 48}),
    "cohere2_moe": (4, {}),
    "granitemoe_swa": (4, {"num_local_experts": 8}),
    "afmoe": (4, {"num_experts": 8, "moe_intermediate_size": 48}),
    **{t: (4, {"num_experts": 8}) for t in ("qwen3_5_text", "qwen3_5_moe_text")},  # 3 DeltaNet, 1 attention
    "gemma4_text": (6, {"hidden_size_per_layer_input": 16, "vocab_size_per_layer_input": 128}),
    "mimo_v2_flash": (6, {"n_routed_experts": 8}),  # full on 0 and 5, dense on 0
    "kimi_linear": (5, {"num_experts": 8, "num_key_value_heads": 4}),  # MLA on layer 4 (KV heads = heads), dense on 0
    # DeepSeek V4: one of each attention type (HCA, CSA) and of each MLP (hash_moe, moe) in its first 4 layers
    "deepseek_v4": (4, {"num_key_value_heads": 1, "n_routed_experts": 4, "num_experts_per_tok": 2, "q_lora_rank": 32,
                        "o_lora_rank": 32, "index_n_heads": 4, "moe_intermediate_size": 48}),
    "longcat_flash": (4, {"n_routed_experts": 8, "zero_expert_num": 4, "moe_topk": 4, "expert_ffn_hidden_size": 48,
                          "ffn_hidden_size": 96, "q_lora_rank": 48, "kv_lora_rank": 32,
                          "num_key_value_heads": 4}),  # 2 layers of 2 MLA sublayers; top-k of E + Z, at most E
    # DbrxAttentionConfig has no rope_theta (transformers cannot build it) and a null clip_qkv (nor run it)
    "dbrx": (2, {"d_model": 64, "n_heads": 4, "attn_config": {"rope_theta": 10000.0, "clip_qkv": 8.0},
                 "ffn_config": {"ffn_hidden_size": 96}}),
}  # fmt: skip

# model_type -> the second shape: fields moved from the defaults (beside the shrink).
SLIDING_FIRST = ["sliding_attention", "full_attention"]
SECOND: dict[str, dict[str, Any]] = {
    "llama": {"head_dim": 32, "attention_bias": True, "mlp_bias": True, "tie_word_embeddings": True,
              "num_key_value_heads": 1},
    "mistral": {"head_dim": 32, "sliding_window": 16, "num_key_value_heads": 1, "tie_word_embeddings": True},
    "qwen2": {"use_sliding_window": True, "sliding_window": 16, "max_window_layers": 2, "layer_types": None,
              "num_key_value_heads": 1, "tie_word_embeddings": True},
    "qwen3": {"head_dim": 32, "attention_bias": True, "use_sliding_window": True, "sliding_window": 16,
              "layer_types": SLIDING_FIRST, "tie_word_embeddings": True},
    "gemma2": {"head_dim": 32, "sliding_window": 16, "attention_bias": True, "tie_word_embeddings": False},
    "gemma3_text": {"head_dim": 32, "sliding_window": 16, "attention_bias": True, "num_key_value_heads": 1},
    "phi3": {"num_key_value_heads": 1, "sliding_window": 16, "tie_word_embeddings": True},
    "falcon": {"new_decoder_architecture": True, "num_kv_heads": 2, "bias": True, "ffn_hidden_size": 48,
               "num_ln_in_parallel_attn": 1, "tie_word_embeddings": False},
    "gpt2": {"n_inner": 48, "tie_word_embeddings": False},
    "olmo2": {"num_key_value_heads": 1, "attention_bias": True, "tie_word_embeddings": True},
    "olmo3": {"num_key_value_heads": 1, "attention_bias": True, "sliding_window": 16},
    "phi": {"qk_layernorm": True, "num_key_value_heads": 1, "tie_word_embeddings": True},
    "starcoder2": {"use_bias": False, "num_key_value_heads": 1, "sliding_window": 16, "tie_word_embeddings": False},
    "smollm3": {"attention_bias": True, "mlp_bias": True, "use_sliding_window": True, "sliding_window": 16,
                "tie_word_embeddings": False},
    "exaone4": {"num_key_value_heads": 1, "sliding_window": 16, "tie_word_embeddings": True, "head_dim": 32},
    "stablelm": {"use_qkv_bias": True, "qk_layernorm": True, "use_parallel_residual": True,
                 "tie_word_embeddings": True},
    "cohere": {"use_qk_norm": True, "attention_bias": True, "tie_word_embeddings": False},
    "cohere2": {"head_dim": 32, "attention_bias": True, "sliding_window": 16, "tie_word_embeddings": False},
    "gptj": {"rotary_dim": 8, "n_inner": 48, "tie_word_embeddings": True},
    "gpt_neox": {"attention_bias": False, "use_parallel_residual": False, "tie_word_embeddings": True},
    "gpt_bigcode": {"multi_query": False, "n_inner": 48, "tie_word_embeddings": False},
    "granite": {"attention_bias": True, "mlp_bias": True, "tie_word_embeddings": True, "num_key_value_heads": 1},
    "glm4": {"head_dim": 32, "attention_bias": False, "num_key_value_heads": 1, "tie_word_embeddings": True},
    "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 1, "head_dim": 32, "sliding_window": 16,
                "num_key_value_heads": 1},
    "qwen2_moe": {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 48,
                  "shared_expert_intermediate_size": 32, "mlp_only_layers": [0], "qkv_bias": False, "head_dim": 32,
                  "use_sliding_window": True, "sliding_window": 16, "max_window_layers": 2, "layer_types": None},
    "qwen3_moe": {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 48, "mlp_only_layers": [1],
                  "attention_bias": True, "head_dim": 32, "use_sliding_window": True, "sliding_window": 16},
    "gpt_oss": {"num_local_experts": 4, "num_experts_per_tok": 2, "head_dim": 32, "sliding_window": 16,
                "attention_bias": False, "layer_types": ["full_attention", "sliding_attention"]},
    "phimoe": {"num_local_experts": 4, "attention_bias": True, "lm_head_bias": True, "num_key_value_heads": 1},
    "olmoe": {"num_experts": 4, "num_experts_per_tok": 2, "num_key_value_heads": 1, "attention_bias": True},
    "glm4_moe": {"n_routed_experts": 4, "n_shared_experts": 2, "first_k_dense_replace": 1, "use_qk_norm": True,
                 "attention_bias": True, "head_dim": 32, "moe_intermediate_size": 48, "num_experts_per_tok": 2},
    "granitemoe": {"num_local_experts": 4, "num_experts_per_tok": 1, "num_key_value_heads": 1,
                   "tie_word_embeddings": True},
    "jamba": {"num_experts": 2, "expert_layer_period": 4, "expert_layer_offset": 3, "attn_layer_period": 4,
              "attn_layer_offset": 1, "mamba_d_state": 8, "mamba_conv_bias": False, "mamba_proj_bias": True},
    "bamba": {"attn_layer_indices": [0], "mamba_n_groups": 2, "mamba_conv_bias": False, "mamba_proj_bias": True,
              "attention_bias": True, "mlp_bias": True},
    "granitemoehybrid": {"num_local_experts": 4, "shared_intermediate_size": 32, "mamba_n_groups": 2,
                         "layer_types": ["full_attention", "linear_attention"], "mamba_proj_bias": True},
    "nemotron_h": {"layers_block_type": ["full_attention", "linear_attention", "moe", "moe"], "n_routed_experts": 4,
                   "moe_latent_size": 32, "head_dim": 32, "use_bias": True, "mlp_bias": True,
                   "tie_word_embeddings": True},
    "falcon_h1": {"mamba_n_groups": 2, "projectors_bias": True, "mlp_bias": True, "attention_bias": True,
                  "mamba_rms_norm": True, "mamba_conv_bias": False, "tie_word_embeddings": True},
    "zamba2": {"num_mem_blocks": 2, "use_shared_attention_adapter": True, "add_bias_linear": True, "head_dim": 32,
               "use_conv_bias": False, "num_key_value_heads": 4,  # its q, k, v adapters need as many as heads
               "layers_block_type": ["hybrid", "linear_attention"] * 4, "mamba_ngroups": 2},
    "deepseek_v2": {"q_lora_rank": None, "first_k_dense_replace": 1, "n_shared_experts": 1, "n_routed_experts": 4},
    "deepseek_v3": {"q_lora_rank": None, "first_k_dense_replace": 1, "n_routed_experts": 4, "attention_bias": True,
                    "num_experts_per_tok": 2},
    "llama4_text": {"interleave_moe_layer_step": 2, "moe_layers": None, "use_qk_norm": False, "num_local_experts": 2},
    "gemma3n_text": {"num_kv_shared_layers": 2, "head_dim": 32, "altup_num_inputs": 2},
    "deepseek_v32": {"index_n_heads": 2, "index_head_dim": 96, "mlp_layer_types": ["sparse", "dense"] * 2},
    "qwen3_next": {"linear_num_value_heads": 4, "linear_num_key_heads": 2, "num_experts": 4, "mlp_only_layers": [0],
                   "num_experts_per_tok": 2, "head_dim": 32, "shared_expert_intermediate_size": 32},
    "lfm2": {"layer_types": ["conv", "full_attention"], "conv_bias": True, "block_auto_adjust_ff_dim": False},
    "mamba": {"intermediate_size": 96, "time_step_rank": 8, "use_bias": True, "use_conv_bias": False,
              "tie_word_embeddings": False},
    "mamba2": {"num_heads": 4, "head_dim": 32, "n_groups": 4, "use_bias": True, "tie_word_embeddings": True},
    "ernie4_5": {"use_bias": True, "head_dim": 32, "num_key_value_heads": 1, "tie_word_embeddings": False},
    "ernie4_5_moe": {"moe_num_experts": 4, "moe_k": 2, "use_bias": True, "moe_num_shared_experts": 0, "head_dim": 32,
                     "moe_layer_start_index": 0, "moe_layer_end_index": 0, "moe_intermediate_size": 32},
    "hunyuan_v1_dense": {"head_dim": 32, "attention_bias": True, "num_key_value_heads": 1, "tie_word_embeddings": True},
    "hunyuan_v1_moe": {"head_dim": 32, "num_experts": 4, "moe_topk": 2, "attention_bias": True},
    "granitemoe_swa": {"num_local_experts": 4, "shared_intermediate_size": 32, "attention_bias": True,
                       "sliding_window": 16, "head_dim": 32},
    "cohere2_moe": {"num_experts": 4, "num_shared_experts": 2, "sliding_window": 16, "attention_bias": True,
                    "head_dim": 32, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
                    "mlp_layer_types": ["dense", "sparse", "sparse", "sparse"], "prefix_dense_intermediate_size": 48},
    "exaone_moe": {"num_experts": 4, "num_experts_per_tok": 2, "num_shared_experts": 2, "first_k_dense_replace": 2,
                   "mlp_layer_types": None, "sliding_window": 16, "head_dim": 32, "tie_word_embeddings": True},
    "afmoe": {"num_experts": 4, "num_experts_per_tok": 2, "num_shared_experts": 0, "num_dense_layers": 2,
              "sliding_window": 16, "head_dim": 32, "attention_bias": True, "tie_word_embeddings": True,
              "global_attn_every_n_layers": 2, "layer_types": None, "moe_intermediate_size": 32},
    "qwen3_5_text": {"linear_num_value_heads": 4, "linear_num_key_heads": 2, "head_dim": 32, "attention_bias": True,
                     "tie_word_embeddings": True, "layer_types": ["full_attention", "linear_attention"] * 2},
    "qwen3_5_moe_text": {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 48, "head_dim": 32,
                         "shared_expert_intermediate_size": 32, "linear_conv_kernel_dim": 3, "linear_num_key_heads": 2,
                         "linear_key_head_dim": 16, "linear_value_head_dim": 16, "linear_num_value_heads": 4},
    "gemma4_text": {"head_dim": 32, "global_head_dim": 64, "attention_k_eq_v": True, "num_global_key_value_heads": 1,
                    "num_kv_shared_layers": 2, "use_double_wide_mlp": True, "hidden_size_per_layer_input": 8,
                    "sliding_window": 16, "attention_bias": True, "tie_word_embeddings": False,
                    "layer_types": ["sliding_attention", "full_attention"] * 3},
    "minimax": {"num_local_experts": 4, "num_experts_per_tok": 1, "head_dim": 32, "num_key_value_heads": 1,
                "layer_types": ["linear_attention", "full_attention"], "tie_word_embeddings": True, "block_size": 8},
    "mimo_v2_flash": {"head_dim": 32, "v_head_dim": 16, "num_key_value_heads": 1, "attention_bias": True,
                      "sliding_window_size": 15, "layer_types": ["sliding_attention", "full_attention"] * 3,
                      "mlp_layer_types": ["sparse", "dense"] * 3, "n_routed_experts": 4, "num_experts_per_tok": 2,
                      "moe_intermediate_size": 32, "tie_word_embeddings": True},
    "kimi_linear": {"q_lora_rank": 32, "attention_bias": True, "layer_types": None, "mlp_layer_types": None,
                    "linear_attn_config": {"head_dim": 16, "num_heads": 2, "short_conv_kernel_size": 3,
                                           "full_attn_layers": [1, 3], "kda_layers": [2, 4, 5]},
                    "first_k_dense_replace": 2, "num_shared_experts": 2, "num_experts": 4, "num_experts_per_token": 2,
                    "moe_intermediate_size": 32, "kv_lora_rank": 32, "qk_rope_head_dim": 16, "qk_nope_head_dim": 16,
                    "v_head_dim": 32, "tie_word_embeddings": True},
    "deepseek_v4": {"layer_types": ["sliding_attention", "heavily_compressed_attention",
                                     "compressed_sparse_attention", "sliding_attention"],
                    "mlp_layer_types": ["moe", "hash_moe", "moe", "moe"], "head_dim": 32, "sliding_window": 16,
                    "compress_rates": {"compressed_sparse_attention": 2, "heavily_compressed_attention": 8},
                    "hc_mult": 2, "o_groups": 2, "index_head_dim": 16, "tie_word_embeddings": True, "mlp_bias": True},
    "longcat_flash": {"attention_bias": True, "tie_word_embeddings": True, "zero_expert_num": 0, "moe_topk": 2,
                      "n_routed_experts": 4, "qk_rope_head_dim": 16, "head_dim": 16, "qk_nope_head_dim": 16,
                      "v_head_dim": 32, "num_hidden_layers": 2},
    "dbrx": {"n_heads": 8, "max_seq_len": 64, "attn_config": {"kv_n_heads": 2, "rope_theta": 10000.0, "clip_qkv": 6},
             "ffn_config": {"ffn_hidden_size": 48, "moe_num_experts": 8, "moe_top_k": 2,
                            "ffn_act_fn": {"name": "gelu"}}},
    "jetmoe": {"num_key_value_heads": 4, "kv_channels": 16, "num_local_experts": 4, "num_experts_per_tok": 1,
               "intermediate_size": 48, "activation_function": "gelu", "tie_word_embeddings": False},
}  # fmt: skip


def written_config(model_type: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The config.json transformers writes for ``model_type``'s config class built with ``fields``."""
    config = transformers.AutoConfig.for_model(model_type, **fields)
    return {**config.to_dict(), "model_type": model_type}


def shrunk_fields(model_type: str, second: bool) -> dict[str, Any]:
    """The fields of the shrunk default shape (or the second shape) of ``model_type``."""
    defaults = transformers.AutoConfig.for_model(model_type).to_dict()
    layers, own = SHRINK.get(model_type, (2, {}))
    fields: dict[str, Any] = {k: v for k, v in SMALL.items() if k in defaults}
    total = defaults.get("num_hidden_layers")
    for key, value in defaults.items():  # per-layer lists cut to the layers kept
        if isinstance(value, list) and total and len(value) == total:
            fields[key] = value[:layers]
    fields.update(num_hidden_layers=layers, **TOKEN_IDS, **own)
    if second:
        fields.update(SECOND.get(model_type, {}))
    return fields


def measured(config: dict[str, Any]) -> tuple[int, Any]:
    """``parameters()`` of the model transformers builds from ``config`` on the meta device, and the model."""
    fields = {k: v for k, v in config.items() if k != "model_type"}
    hf_config = transformers.AutoConfig.for_model(config["model_type"], **fields)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf_config)
    return sum(p.numel() for p in model.parameters()), model


def peft_lora(model: Any, target_modules: Any) -> int:
    """peft's trainable parameters for LoRA r=8 on ``target_modules`` (adapter weights on the meta device)."""
    with torch.device("meta"):
        lora = peft.get_peft_model(model, peft.LoraConfig(r=RANK, target_modules=target_modules))
    return sum(p.numel() for p in lora.parameters() if p.requires_grad)


@pytest.mark.parametrize("second", [False, True], ids=["defaults", "second"])
@pytest.mark.parametrize("model_type", supported())
def test_family_equals_transformers_on_its_defaults(model_type: str, second: bool) -> None:
    config = written_config(model_type, shrunk_fields(model_type, second))
    spec = spec_from_config(config, Path(f"{model_type}.json"))
    params, model = measured(config)
    assert total_params(spec) == params
    experts = ExpertLayout.fused if spec.is_moe else ExpertLayout.per_expert  # as peft on transformers >= 5
    targets = resolve_targets(spec, "all-linear", experts)
    assert lora_params(targets, RANK) == peft_lora(model, peft_target_modules(targets, spec))


@pytest.mark.parametrize("model_type", supported())
def test_aliases_are_transformers_attribute_map(model_type: str) -> None:
    """Each alias transformers reads as another field is read so here too (``ATTRIBUTE_MAPS``)."""
    config_class = type(transformers.AutoConfig.for_model(model_type))
    assert ATTRIBUTE_MAPS.get(model_type, {}) == dict(config_class.attribute_map)


# Names a config class's __post_init__ reads into a field (transformers 5.24's source), written out here.
POST_INIT_NAMES = [
    ("falcon", "n_embed", "hidden_size"),
    ("deepseek_v32", "num_experts", "n_routed_experts"),
    ("nemotron_h", "mamba_n_groups", "n_groups"),
    ("nemotron_h", "mamba_d_conv", "conv_kernel"),
    ("nemotron_h", "mamba_conv_bias", "use_conv_bias"),
]
# Aliases a config class applies after sizing a part from the field (DbrxConfig sizes ffn_config from d_model, then
# reads hidden_size as d_model): the model it builds cannot run (tests/test_family_batch_d.py shows it).
ALIAS_REFUSED = {("dbrx", "hidden_size")}
ALIAS_CASES = [
    (model_type, alias, name)
    for model_type in supported()
    for alias, name in type(transformers.AutoConfig.for_model(model_type)).attribute_map.items()
] + POST_INIT_NAMES


@pytest.mark.parametrize(("model_type", "alias", "name"), ALIAS_CASES, ids=lambda v: str(v))
def test_a_field_under_its_other_name_counts_the_same(model_type: str, alias: str, name: str) -> None:
    """A config.json that gives a field under its alias (as earlier releases wrote some) is read as
    transformers reads it; the alias and the field with different values are refused in one line."""
    config = written_config(model_type, shrunk_fields(model_type, second=True))
    if name not in config:  # bamba's and falcon_h1's layers_block_type: a property derived from other fields
        pytest.skip(f"{model_type} derives {name}; a config.json does not give it")
    renamed = {(alias if key == name else key): value for key, value in config.items()}
    if (model_type, alias) in ALIAS_REFUSED:  # transformers builds a model that cannot run: refused in one line
        with pytest.raises(EstimatorError, match=alias):
            spec_from_config(renamed, Path(f"{model_type}.json"))
        return
    params, _ = measured(renamed)
    assert total_params(spec_from_config(renamed, Path(f"{model_type}.json"))) == params
    value = config[name]
    other = (not value) if isinstance(value, bool) else [*value, *value] if isinstance(value, list) else value + 1
    with pytest.raises(EstimatorError, match=f"both {alias} .* and {name}"):
        spec_from_config({**renamed, name: other}, Path(f"{model_type}.json"))


# Config classes without a head_dim field whose attention reads one where the config.json gives it.
HEAD_DIM_READ = ["qwen2", "phi3", "olmo2", "olmo3", "phi", "starcoder2", "smollm3", "exaone4", "stablelm", "cohere",
                 "gpt_neox", "granite", "qwen2_moe", "qwen3_moe", "phimoe", "olmoe", "glm4_moe", "granitemoe", "jamba",
                 "bamba", "granitemoehybrid", "falcon_h1", "lfm2", "apertus", "granite_swa"]  # fmt: skip


@pytest.mark.parametrize("model_type", HEAD_DIM_READ)
def test_head_dim_given_to_a_class_without_the_field(model_type: str) -> None:
    """head_dim 32 where hidden / heads is 16: transformers' attention reads it where given."""
    config = written_config(model_type, {**shrunk_fields(model_type, second=True), "head_dim": 32})
    assert config["head_dim"] == 32
    params, _ = measured(config)
    assert total_params(spec_from_config(config, Path(f"{model_type}.json"))) == params


@pytest.mark.parametrize("config_path", ZOO_CONFIGS + EXTRA_CONFIGS, ids=lambda p: p.stem)
def test_a_real_config_saved_again_by_transformers_counts_the_same(config_path: Path) -> None:
    """A real config.json, loaded and saved by the pinned transformers (its names, its derived fields: Qwen3's
    num_local_experts, Qwen2-MoE's sliding_window 0 and layer_types, DeepSeek V3.2's indexed layer_types),
    counts what the original counts; test_transformers_oracle.py compares the original with the model
    transformers builds from it, which is the model of the saved config too."""
    original = json.loads(config_path.read_text())
    config, model_type = original, original["model_type"]
    if model_type in TEXT_MODEL_TYPES:  # a multimodal wrapper: its language model, as the tool reads it
        config, model_type = original["text_config"], TEXT_MODEL_TYPES[model_type]
    model_type = ALIASES.get(model_type, model_type)
    fields = {k: v for k, v in config.items() if k != "model_type"}
    saved = written_config(model_type, fields)
    assert total_params(spec_from_config(saved, config_path)) == total_params(spec_from_hf_config(config_path))


def held_window(spec: Any, layer: int) -> int | str | None:
    """The window or chunk the tool gives one layer's cache (None: every token; "nothing": the layer reads
    another layer's cache, Gemma 3n's last num_kv_shared_layers, or has no token mixer, Nemotron-H's MLP layers)."""
    if layer >= spec.num_hidden_layers - (getattr(spec, "num_kv_shared_layers", None) or 0):
        return "nothing"
    if spec.layer_types is not None and spec.layer_types[layer] == "mlp":
        return "nothing"
    if spec.layer_types is not None and spec.layer_types[layer] == "chunked_attention":
        return int(spec.attention_chunk_size)
    window = spec.layer_windows()[layer]
    return None if window is None else int(window)


@pytest.mark.parametrize("second", [False, True], ids=["defaults", "second"])
@pytest.mark.parametrize("model_type", supported())
def test_cache_windows_are_transformers_cache_layers(model_type: str, second: bool) -> None:
    """Each layer's window (or chunk) is the one transformers' cache gives that layer: the ``sliding_window`` of
    the layers ``DynamicCache(config=...)`` builds (sliding and chunked layers alike), None for the others, and
    its placeholder (``DummyLayer``) where a layer keeps no cache of its own. Bytes per layer are the other
    tests' (test_family_*: forward passes); this one catches a window field a family does not read."""
    config = written_config(model_type, shrunk_fields(model_type, second))
    spec = spec_from_config(config, Path(f"{model_type}.json"))
    fields = {k: v for k, v in config.items() if k != "model_type"}
    cache = transformers.DynamicCache(config=transformers.AutoConfig.for_model(model_type, **fields))
    measured_windows = [
        "nothing" if type(layer).__name__ == "DummyLayer" else getattr(layer, "sliding_window", None)
        for layer in cache.layers
    ]
    assert [held_window(spec, i) for i in range(spec.num_hidden_layers)] == measured_windows


@pytest.mark.parametrize("key", ["sliding_window", "attention_chunk_size"])
@pytest.mark.parametrize("model_type", supported())
def test_a_window_transformers_caches_is_modelled_or_refused(model_type: str, key: str) -> None:
    """A window of 16 given to any family: transformers' cache layers slide (or chunk) where it reads it; the
    tool gives every layer the same window, or refuses the config in one line naming the field."""
    try:
        config = written_config(model_type, {**shrunk_fields(model_type, second=True), key: 16})
        fields = {k: v for k, v in config.items() if k != "model_type"}
        cache = transformers.DynamicCache(config=transformers.AutoConfig.for_model(model_type, **fields))
    except (ValueError, TypeError, AttributeError):  # the config class refuses the field or its value
        pytest.skip(f"transformers refuses {key} on {model_type}")
    measured_windows = [
        "nothing" if type(layer).__name__ == "DummyLayer" else getattr(layer, "sliding_window", None)
        for layer in cache.layers
    ]
    try:
        spec = spec_from_config(config, Path(f"{model_type}.json"))
    except EstimatorError as refused:
        assert key in str(refused)
        return
    assert [held_window(spec, i) for i in range(spec.num_hidden_layers)] == measured_windows


SMALL_VISION = {"hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "image_size": 112,
                "patch_size": 14}  # fmt: skip
WRAPPERS = {
    "gemma3-defaults": {"model_type": "gemma3", "text_config": {"num_hidden_layers": 2},
                        "vision_config": {"num_hidden_layers": 2}},
    "gemma3-second": {"model_type": "gemma3", "text_config": {"num_hidden_layers": 2, **SMALL},
                      "vision_config": {"num_hidden_layers": 2, "vision_use_head": False, **SMALL_VISION}},
    "llama4-defaults": {"model_type": "llama4", "text_config": {"num_hidden_layers": 2, "num_local_experts": 2},
                        "vision_config": {"num_hidden_layers": 2}},
    "llama4-second": {"model_type": "llama4",
                      "text_config": {"num_hidden_layers": 2, **SMALL, "intermediate_size_mlp": 128, "head_dim": 16,
                                      "num_local_experts": 2},
                      "vision_config": {"num_hidden_layers": 2, **SMALL_VISION, "projector_input_dim": 128,
                                        "projector_output_dim": 128, "vision_output_dim": 96}},
}  # fmt: skip


@pytest.mark.parametrize("name", [*WRAPPERS, "gemma-3-27b (tests/data)"])
def test_a_wrapper_states_what_its_language_model_leaves_out(name: str) -> None:
    """A multimodal wrapper is counted for its language model, and the note gives the rest: the language model
    and the parts outside it sum to the whole model transformers builds (``AutoModelForImageTextToText``)."""
    given = WRAPPERS.get(name) or json.loads((ZOO_CONFIGS[0].parent / "gemma3-27b.json").read_text())
    model_type = given["model_type"]
    config = transformers.AutoConfig.for_model(model_type, **{k: v for k, v in given.items() if k != "model_type"})
    written = {**config.to_dict(), "model_type": model_type}
    with torch.device("meta"):
        whole = sum(p.numel() for p in transformers.AutoModelForImageTextToText.from_config(config).parameters())
    spec = spec_from_config(written, Path(f"{model_type}.json"))
    more = whole - total_params(spec)
    assert any(f"the whole model has {more:,} parameters more" in note for note in spec.notes)
