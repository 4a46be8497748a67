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
from estimator.errors import EstimatorError
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
    "granite_swa-defaults": ("granite_swa", {**LLAMA_SMALL, "num_hidden_layers": 4, "sliding_window": 5}),
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


# --- to_config is read's inverse; the twin keeps every kind of layer ---------------------------------


@pytest.mark.parametrize("name", CASES)
def test_transformers_config_reads_back_the_same(name: str) -> None:
    from estimator.validate.hf import transformers_config, twin_spec

    spec = read(written(name), name)
    again = read(transformers_config(spec), name)
    keep = ("notes", "source", "torch_dtype", "name", "display_name")
    assert again.to_dict(exclude=set(keep)) == spec.to_dict(exclude=set(keep))
    twin, _ = twin_spec(spec, 64)
    assert set(twin.layer_windows()) == set(spec.layer_windows())
    assert read(transformers_config(twin), name).to_dict(exclude=set(keep)) == twin.to_dict(exclude=set(keep))


# --- parameters and cache by hand, from published configs ----------------------------------------------

# The config.json values of published models (each file's address; the values were read from verbatim copies of
# those files found in public code, and only the fields these families read are kept).
GEMMA_7B = {  # https://huggingface.co/google/gemma-7b/blob/main/config.json (no tie_word_embeddings: tied)
    "model_type": "gemma", "hidden_size": 3072, "intermediate_size": 24576, "num_hidden_layers": 28,
    "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 256, "vocab_size": 256000,
    "max_position_embeddings": 8192, "hidden_act": "gelu",
}  # fmt: skip
BLOOM_560M = {  # https://huggingface.co/bigscience/bloom-560m/blob/main/config.json (n_embed, as it is written)
    "model_type": "bloom", "n_embed": 1024, "n_layer": 24, "num_attention_heads": 16, "vocab_size": 250880,
}  # fmt: skip
OPT_350M = {  # https://huggingface.co/facebook/opt-350m/blob/main/config.json
    "model_type": "opt", "hidden_size": 1024, "ffn_dim": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
    "max_position_embeddings": 2048, "vocab_size": 50272, "word_embed_proj_dim": 512, "do_layer_norm_before": False,
    "activation_function": "relu",
}  # fmt: skip
SEED_OSS_36B = {  # https://huggingface.co/ByteDance-Seed/Seed-OSS-36B-Instruct/blob/main/config.json
    "model_type": "seed_oss", "hidden_size": 5120, "intermediate_size": 27648, "num_hidden_layers": 64,
    "num_attention_heads": 80, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 155136,
    "max_position_embeddings": 524288, "attention_bias": True, "attention_out_bias": False, "mlp_bias": False,
    "tie_word_embeddings": False,
}  # fmt: skip
FALCON_MAMBA_7B = {  # https://huggingface.co/tiiuae/falcon-mamba-7b/blob/main/config.json
    "model_type": "falcon_mamba", "hidden_size": 4096, "intermediate_size": 8192, "expand": 16,
    "num_hidden_layers": 64, "state_size": 16, "conv_kernel": 4, "time_step_rank": 256, "use_bias": False,
    "use_conv_bias": True, "vocab_size": 65024, "tie_word_embeddings": False, "hidden_act": "silu",
}  # fmt: skip


def test_gemma_7b_by_hand() -> None:
    d, f, n, v, h, dh = 3072, 24576, 28, 256000, 16, 256
    per_layer = 4 * d * h * dh + 3 * d * f + 2 * d  # q, k, v, o (16 KV heads); gate, up, down; two RMSNorms
    spec = read(GEMMA_7B)
    assert total_params(spec) == n * per_layer + v * d + d == 8_537_680_896  # tied head
    assert kv_cache_bytes(spec, 1_000, DType.bf16) == 1_000 * 2 * n * 16 * dh * 2 == 458_752_000


def test_bloom_560m_by_hand_the_model_card_figure() -> None:
    d, n, v = 1024, 24, 250880
    per_layer = (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 2 * (2 * d)
    expected = n * per_layer + v * d + 2 * d + 2 * d  # word_embeddings (+ its LayerNorm), layers, ln_f; tied
    spec = read(BLOOM_560M)
    assert total_params(spec) == expected == 559_214_592  # bigscience/bloom-560m's card: 559,214,592
    assert kv_cache_bytes(spec, 1_000, DType.bf16) == 1_000 * 2 * n * d * 2  # 16 heads of 64: K and V per head


def test_opt_350m_by_hand_projections_and_no_final_norm() -> None:
    d, f, n, v, p, positions = 1024, 4096, 24, 50272, 512, 2048
    per_layer = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 2 * (2 * d)  # biased maps, two LayerNorms
    outside = v * p + (positions + 2) * d + p * d + d * p  # embed_tokens, embed_positions, project_in, project_out
    spec = read(OPT_350M)
    assert total_params(spec) == n * per_layer + outside == 331_196_416  # no final_layer_norm; head tied
    # LoRA r=8 on all-linear: the six maps of each layer and the two projections, never lm_head
    targets = resolve_targets(spec, "all-linear", ExpertLayout.per_expert)
    per_layer_lora = 8 * (4 * (d + d) + (d + f) + (f + d))
    assert lora_params(targets, 8) == n * per_layer_lora + 8 * 2 * (p + d) == 3_563_520


def test_seed_oss_36b_by_hand_qkv_biases_without_o_bias() -> None:
    d, f, n, v, h, k, dh = 5120, 27648, 64, 155136, 80, 8, 128
    per_layer = (d * h * dh + h * dh) + 2 * (d * k * dh + k * dh) + h * dh * d + 3 * d * f + 2 * d
    spec = read(SEED_OSS_36B)
    assert total_params(spec) == n * per_layer + 2 * v * d + d == 36_151_104_512
    assert kv_cache_bytes(spec, 1_000, DType.bf16) == 1_000 * 2 * n * k * dh * 2


def test_falcon_mamba_7b_by_hand_intermediate_size_over_expand() -> None:
    d, di, n, v, state, kernel, rank = 4096, 8192, 64, 65024, 16, 4, 256  # expand 16 is overridden: d_inner 8,192
    per_layer = (
        d * 2 * di  # in_proj
        + di * kernel
        + di  # conv1d and its bias
        + di * (rank + 2 * state)  # x_proj
        + rank * di
        + di  # dt_proj with its bias
        + di * state
        + di  # A_log, D
        + di * d  # out_proj
        + d  # the layer's RMSNorm (the B, C, dt norms hold no parameters)
    )
    spec = read(FALCON_MAMBA_7B)
    assert total_params(spec) == n * per_layer + 2 * v * d + d == 7_272_665_088
    # per sequence: conv state K · d_inner in bf16, recurrent state d_inner · N in float32 (transformers), per layer
    from estimator.validate.checks import transformers_format

    assert kv_cache_bytes(spec, 10, transformers_format(spec, DType.bf16)) == n * (kernel * di * 2 + di * state * 4)


@pytest.mark.parametrize(
    ("model_type", "expected"),
    [
        # ApertusConfig: d 4,096, F 14,336, 32 layers, 32 heads = KV heads of 128, V 131,072, untied, xIELU (2 each)
        ("apertus", 32 * (4 * 4096**2 + 2 * 128 + 2 * 4096 * 14336 + 2 + 2 * 4096) + 2 * 131072 * 4096 + 4096),
        # Ministral3Config: d 4,096, F 14,336, 34 layers, 32 heads and 8 KV heads of 128, V 131,072, untied
        ("ministral3", 34 * (2 * 4096**2 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096) + 2 * 131072 * 4096 + 4096),
        # GraniteSWAConfig: d 2,560, F 8,192, 24 layers, 20 heads (and 20 sinks), 4 KV heads of 128, V 100,352, tied
        ("granite_swa", 24 * (2 * 2560**2 + 2 * 2560 * 512 + 20 + 3 * 2560 * 8192 + 2 * 2560) + 100352 * 2560 + 2560),
    ],
)
def test_config_class_defaults_by_hand(model_type: str, expected: int) -> None:
    assert total_params(read({"model_type": model_type})) == expected


def test_granite_swa_default_pattern_and_window() -> None:
    spec = read({"model_type": "granite_swa"})
    assert spec.layer_windows()[:5] == (None, 128, 128, 128, None)  # i % 4 == 0 full
    row = 2 * 4 * 128 * 2  # K and V, 4 KV heads of 128, bf16
    assert kv_cache_bytes(spec, 10_000, DType.bf16) == (6 * 10_000 + 18 * 128) * row


# --- names and refusals ----------------------------------------------------------------------------------


def test_bloom_reads_its_aliases_and_post_init_name() -> None:
    canonical = read({"model_type": "bloom", "hidden_size": 96, "n_layer": 3, "n_head": 4, "vocab_size": 1000})
    for names in (
        {"n_embed": 96, "num_hidden_layers": 3, "num_attention_heads": 4},
        {"hidden_size": 96, "num_hidden_layers": 3, "n_head": 4},
    ):
        again = read({"model_type": "bloom", "vocab_size": 1000, **names})
        assert again.to_dict(exclude={"notes"}) == canonical.to_dict(exclude={"notes"})
    with pytest.raises(EstimatorError, match=r"both n_embed .* and hidden_size"):
        read({"model_type": "bloom", "vocab_size": 1000, "n_embed": 96, "hidden_size": 64})


REFUSED = [
    ({"model_type": "gemma", "hidden_act": "prelu"}, "hidden_act is 'prelu'"),
    ({"model_type": "vaultgemma", "hidden_activation": "xielu"}, "hidden_activation is 'xielu'"),
    ({"model_type": "apertus", "hidden_act": "prelu"}, "hidden_act is 'prelu'"),
    ({"model_type": "opt", "activation_function": "prelu"}, "activation_function is 'prelu'"),
    ({"model_type": "falcon_mamba", "hidden_act": "prelu", "hidden_size": 64, "num_hidden_layers": 2},
     "hidden_act is 'prelu'"),
    ({"model_type": "bloom", "sliding_window": 16}, "sliding_window is 16"),
    ({"model_type": "opt", "sliding_window": 16}, "sliding_window is 16"),
    ({"model_type": "seed_oss", "sliding_window": 16}, "sliding_window is 16"),
    ({"model_type": "ministral", **LLAMA_SMALL, "num_hidden_layers": 2}, "no head_dim"),
    ({"model_type": "ministral", **LLAMA_SMALL, "num_hidden_layers": 2, "head_dim": 16, "num_key_value_heads": None},
     "num_key_value_heads is null"),
    ({"model_type": "ministral3", **LLAMA_SMALL, "num_hidden_layers": 2, "sliding_window": 8,
      "layer_types": ["sliding_attention", "full_attention"]}, "remove layer_types"),
    ({"model_type": "vaultgemma", **LLAMA_SMALL, "num_hidden_layers": 2, "sliding_window": None},
     "sliding_window is null"),
    ({"model_type": "granite_swa", **LLAMA_SMALL, "num_hidden_layers": 2, "sliding_window": None},
     "sliding_window is null"),
    ({"model_type": "opt", "enable_bias": "yes"}, "field 'enable_bias' is 'yes'"),
    ({"model_type": "opt", "hidden_size": 100, "num_attention_heads": 3}, "not a multiple of the 3 attention heads"),
    ({"model_type": "bloom", "n_embed": 100, "n_head": 3}, "not a multiple of the 3 attention heads"),
]  # fmt: skip


@pytest.mark.parametrize(("config", "words"), REFUSED, ids=lambda v: str(v)[:60])
def test_an_unmodelled_value_is_refused_in_one_line(config: dict[str, Any], words: str) -> None:
    with pytest.raises(EstimatorError, match=words) as refused:
        read(config)
    assert "\n" not in str(refused.value)


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", ["gemma-second", "bloom-second", "opt-second"])
def test_peft_default_ia3_and_ln_tuning_targets(name: str) -> None:
    """IA3 and LN tuning without target_modules: peft's defaults for gemma, bloom and opt, as the tool takes them
    (peft has no LN-tuning default for opt: both refuse)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    from estimator.errors import MethodNotApplicableError
    from estimator.query import Query
    from estimator.query.vocabulary import Method
    from estimator.stores import STORES

    config = written(name)
    spec = read(config, name)
    hf_config = transformers.AutoConfig.for_model(config["model_type"], **{k: v for k, v in config.items()
                                                                         if k != "model_type"})  # fmt: skip
    for method, peft_config in (
        (Method.ia3, peft.IA3Config(task_type="CAUSAL_LM")),
        (Method.ln_tuning, peft.LNTuningConfig(task_type="CAUSAL_LM")),
    ):
        measured: int | None
        try:
            with torch.device("meta"):
                model = transformers.AutoModelForCausalLM.from_config(hf_config)
                adapted = peft.get_peft_model(model, peft_config)
            measured = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
        except ValueError:  # peft: "Please specify `target_modules`"
            measured = None
        expected: int | None
        try:
            expected = STORES[method].params(Query(spec, 1_000, 8, methods=method.value))
        except MethodNotApplicableError:
            expected = None
        assert expected == measured, method


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
def test_a_mistral3_wrapper_counts_its_ministral3_language_model() -> None:
    """Mistral 3 ties its head by its own flag (true by default), Ministral 3 by text_config's (false by default):
    agreeing, the language model is counted as transformers builds it; disagreeing, refused in one line."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    text = {"model_type": "ministral3", **LLAMA_SMALL, "num_hidden_layers": 2, "head_dim": 16}
    config = transformers.AutoConfig.for_model(
        "mistral3", text_config={**text, "tie_word_embeddings": True}, vision_config={"num_hidden_layers": 1}
    )
    spec = read({**config.to_dict(), "model_type": "mistral3"})
    with torch.device("meta"):
        model = transformers.AutoModelForImageTextToText.from_config(config)
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight  # tied: counted once
    assert total_params(spec) == sum(p.numel() for p in model.model.language_model.parameters())
    untied = transformers.AutoConfig.for_model("mistral3", text_config=text, vision_config={"num_hidden_layers": 1})
    with pytest.raises(EstimatorError, match="tie_word_embeddings differs between the mistral3 config"):
        read({**untied.to_dict(), "model_type": "mistral3"})
