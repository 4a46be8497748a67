"""Families gemma, vaultgemma, bloom, opt, seed_oss, apertus, ministral, ministral3, granite_swa, falcon_mamba.

Each against what transformers 5.24 and peft 0.21 build, in two shapes: the config class's own defaults with
only the sizes shrunk, and a second shape that moves the other fields the family reads (biases, windows,
patterns, head_dim, projections). Parameters: ``parameters()`` of the model built on the meta device; LoRA:
peft's r=8 all-linear trainable parameters on it; cache: the bytes of every tensor in the cache after a
real forward pass (use_cache=True) over a few tokens and over more than the window. Then parameters by hand
from real published configs (the config.json values, with the address each was read from), the names
transformers reads as another, and the field values the tool refuses in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from estimator.architecture import total_params
from estimator.hf_config import spec_from_config
from estimator.kv import kv_cache_bytes
from estimator.layout import ExpertLayout
from estimator.specs import ModelSpec
from estimator.stores.kinds import peft_target_modules
from estimator.stores.targets import lora_params, resolve_targets
from estimator.units import DType

RANK = 8
TOKEN_IDS = {"bos_token_id": None, "eos_token_id": None, "pad_token_id": None}
LLAMA_SMALL = {"hidden_size": 64, "intermediate_size": 96, "vocab_size": 1000, "num_attention_heads": 4,
               "num_key_value_heads": 2}  # fmt: skip

# name -> (model_type, fields given to the config class; every other field is the class's own default)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "gemma-defaults": ("gemma", {**LLAMA_SMALL, "num_hidden_layers": 2}),
    "gemma-second": ("gemma", {**LLAMA_SMALL, "num_hidden_layers": 2, "head_dim": 16, "num_key_value_heads": 1,
                               "attention_bias": True, "tie_word_embeddings": False, "hidden_act": "gelu"}),
    "vaultgemma-defaults": ("vaultgemma", {**LLAMA_SMALL, "num_hidden_layers": 3, "sliding_window": 5}),
    "vaultgemma-second": ("vaultgemma", {**LLAMA_SMALL, "num_hidden_layers": 3, "sliding_window": 4,
                                         "head_dim": 32, "attention_bias": True, "tie_word_embeddings": False,
                                         "layer_types": ["full_attention", "sliding_attention", "full_attention"]}),
    "bloom-defaults": ("bloom", {"vocab_size": 1000}),  # BloomConfig's own d 64, 2 layers, 8 heads
    "bloom-second": ("bloom", {"vocab_size": 1000, "hidden_size": 96, "n_layer": 3, "n_head": 4,
                               "tie_word_embeddings": False, "apply_residual_connection_post_layernorm": True}),
    "opt-defaults": ("opt", {"hidden_size": 64, "ffn_dim": 96, "num_attention_heads": 4, "num_hidden_layers": 2,
                             "vocab_size": 1000, "max_position_embeddings": 64}),
    "opt-second": ("opt", {"hidden_size": 64, "ffn_dim": 96, "num_attention_heads": 4, "num_hidden_layers": 3,
                           "vocab_size": 1000, "max_position_embeddings": 64, "word_embed_proj_dim": 32,
                           "do_layer_norm_before": False, "enable_bias": False, "tie_word_embeddings": False}),
    "opt-no-affine": ("opt", {"hidden_size": 64, "ffn_dim": 96, "num_attention_heads": 4, "num_hidden_layers": 2,
                              "vocab_size": 1000, "max_position_embeddings": 64, "word_embed_proj_dim": 48,
                              "layer_norm_elementwise_affine": False, "_remove_final_layer_norm": True}),
    "seed_oss-defaults": ("seed_oss", {**LLAMA_SMALL, "num_hidden_layers": 2}),
    "seed_oss-second": ("seed_oss", {**LLAMA_SMALL, "num_hidden_layers": 2, "head_dim": None, "attention_bias": False,
                                     "attention_out_bias": True, "mlp_bias": True, "num_key_value_heads": None,
                                     "tie_word_embeddings": True}),
    "apertus-defaults": ("apertus", {**LLAMA_SMALL, "num_hidden_layers": 2}),
    "apertus-second": ("apertus", {**LLAMA_SMALL, "num_hidden_layers": 2, "head_dim": 32, "attention_bias": True,
                                   "hidden_act": "relu2", "num_key_value_heads": None, "tie_word_embeddings": True}),
    "ministral-defaults": ("ministral", {**LLAMA_SMALL, "num_hidden_layers": 2, "sliding_window": 5,
                                         "head_dim": 16}),  # MinistralConfig's null head_dim cannot be built
    "ministral-second": ("ministral", {**LLAMA_SMALL, "num_hidden_layers": 3, "sliding_window": 4, "head_dim": 32,
                                       "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
                                       "tie_word_embeddings": True, "num_key_value_heads": 1}),
    "ministral3-defaults": ("ministral3", {**LLAMA_SMALL, "num_hidden_layers": 2}),
    "ministral3-second": ("ministral3", {**LLAMA_SMALL, "num_hidden_layers": 2, "sliding_window": 5,
                                         "head_dim": 32, "num_key_value_heads": 1, "tie_word_embeddings": True}),
    "granite_swa-defaults": ("granite_swa", {**LLAMA_SMALL, "num_hidden_layers": 5, "sliding_window": 5}),
    "granite_swa-second": ("granite_swa", {**LLAMA_SMALL, "num_hidden_layers": 2, "sliding_window": 4,
                                           "head_dim": 32, "attention_bias": True, "mlp_bias": True,
                                           "layer_types": ["sliding_attention", "full_attention"],
                                           "tie_word_embeddings": False}),
    "falcon_mamba-defaults": ("falcon_mamba", {"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 1000}),
    "falcon_mamba-second": ("falcon_mamba", {"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 1000,
                                             "intermediate_size": 96, "time_step_rank": 8, "use_bias": True,
                                             "use_conv_bias": False, "state_size": 8, "tie_word_embeddings": False}),
}  # fmt: skip


def written(name: str) -> dict[str, Any]:
    """The config.json transformers writes for the case's config class (``config.to_dict()``)."""
    transformers = pytest.importorskip("transformers")
    model_type, fields = CASES[name]
    config = transformers.AutoConfig.for_model(model_type, **fields, **TOKEN_IDS)
    return {**config.to_dict(), "model_type": model_type}


def read(config: dict[str, Any], name: str = "model") -> ModelSpec:
    return spec_from_config(config, Path(f"{name}.json"))


def measured_bytes(cache: Any) -> int:
    """Bytes of every tensor the cache holds: keys and values, and convolution and recurrent states."""
    import torch

    total = 0
    for layer in cache.layers:
        tensors = [getattr(layer, name, None) for name in ("keys", "values")]
        for name in ("conv_states", "recurrent_states"):
            states = getattr(layer, name, None)
            tensors += list(states.values()) if isinstance(states, dict) else [states]
        total += sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
    return total


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", CASES)
def test_equals_transformers_and_peft(name: str) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    from estimator.validate.checks import transformers_format

    config = written(name)
    spec = read(config, name)
    hf_config = transformers.AutoConfig.for_model(config["model_type"], **{k: v for k, v in config.items()
                                                                         if k != "model_type"})  # fmt: skip
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(hf_config, dtype=torch.bfloat16).eval()
    assert total_params(spec) == sum(p.numel() for p in model.parameters())

    windows = [w for w in spec.layer_windows() if w is not None]
    for tokens in (7, max(windows) + 3) if windows else (7,):
        with torch.no_grad():
            cache = model(torch.ones((1, tokens), dtype=torch.long), use_cache=True).past_key_values
        assert kv_cache_bytes(spec, tokens, transformers_format(spec, DType.bf16)) == measured_bytes(cache), tokens

    targets = resolve_targets(spec, "all-linear", ExpertLayout.per_expert)
    with torch.device("meta"):
        lora = peft.get_peft_model(model.to("meta"), peft.LoraConfig(r=RANK, target_modules=peft_target_modules(
            targets, spec)))  # fmt: skip
    assert lora_params(targets, RANK) == sum(p.numel() for p in lora.parameters() if p.requires_grad)
