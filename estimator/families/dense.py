"""Dense RoPE decoders descended from Llama: llama, mistral, qwen2, qwen3, gemma2, gemma3_text, phi3.

What each one's transformers code builds, beyond the shared q, k, v, o and gate, up, down:

- llama: biases on q, k, v, o from ``attention_bias``, on the MLP from ``mlp_bias``.
- mistral: no biases; an absent ``sliding_window`` means 4096 (MistralConfig's default), null none.
- qwen2: biases on q, k, v always (hard-coded in ``Qwen2Attention``), never on o; a window only
  with ``use_sliding_window``, on layers from ``max_window_layers`` on.
- qwen3: biases from ``attention_bias`` on all four; RMSNorm on q and k per head (head_dim each);
  head_dim defaults to 128, not hidden_size / heads.
- gemma2: four RMSNorms per layer; sliding window (4096 by default) on every other layer (0, 2, ...);
  embeddings tied by default; head_dim defaults to 256.
- gemma3_text: gemma2's norms plus q and k norms; five sliding layers to one global
  (``sliding_window_pattern`` 6); every field has a default (multimodal configs list few).
- phi3: fused ``qkv_proj`` (d -> (H + 2K) d_h) and ``gate_up_proj`` (d -> 2F); no biases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader, attention_config, head_dim_or_derived, windowed_attention_layout
from estimator.families.conventions import Conventions, GgufConventions, PeftConventions
from estimator.layout import Layout, LinearMap, ParamTensor
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, rms_norms, roles

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

_DEFAULTS: dict[str, dict[str, Any]] = {  # transformers' config defaults for absent keys
    "llama": {"max_position_embeddings": 2048},
    "mistral": {"max_position_embeddings": 131072, "num_key_value_heads": 8},
    "qwen2": {"max_position_embeddings": 32768},
    "qwen3": {"max_position_embeddings": 32768, "head_dim": 128},
    "gemma2": {"max_position_embeddings": 8192, "head_dim": 256, "tie_word_embeddings": True},
    "gemma3_text": {
        "max_position_embeddings": 131072,
        "head_dim": 256,
        "tie_word_embeddings": True,
        "vocab_size": 262208,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
    },
    "phi3": {"max_position_embeddings": 4096},
}


def _read_common(r: Reader) -> dict[str, Any]:
    defaults = _DEFAULTS[r.model_type]
    hidden, heads = r.need("hidden_size"), r.field("num_attention_heads", defaults)
    kv_default = defaults.get("num_key_value_heads", heads)
    return {
        "num_hidden_layers": r.need("num_hidden_layers"),
        "hidden_size": hidden,
        "intermediate_size": r.need("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get(
            "num_key_value_heads", kv_default, f"{kv_default} KV heads ({r.model_type} config default)"
        ),
        "head_dim": head_dim_or_derived(r, hidden, heads, defaults.get("head_dim")),
        "vocab_size": r.field("vocab_size", defaults),
        "max_position_embeddings": r.field("max_position_embeddings", defaults),
        "tie_word_embeddings": r.get("tie_word_embeddings", defaults.get("tie_word_embeddings", False)),
    }


def _windows_from_layer_types(r: Reader, fields: dict[str, Any], window: Any, default_types: list[str]) -> None:
    types = r.config.get("layer_types") or default_types
    if window is not None and "sliding_attention" in types:
        fields.update(sliding_window=window, layer_types=tuple(types))


def read(r: Reader) -> dict[str, Any]:
    fields = _read_common(r)
    n = fields["num_hidden_layers"]
    match r.model_type:
        case "llama":
            fields.update(attention_bias=r.get("attention_bias", False), mlp_bias=r.get("mlp_bias", False))
        case "mistral":
            window = r.get("sliding_window", 4096, "4,096 (MistralConfig's default)", null_is_default=False)
            fields["sliding_window"] = window
        case "qwen2" | "qwen3":
            if r.model_type == "qwen3":
                fields["attention_bias"] = r.get("attention_bias", False)
            if r.get("use_sliding_window", False):
                window = r.get("sliding_window", 4096, "4,096 (config default)")
                first = r.get("max_window_layers", 28, "28 (config default)")
                defaults = ["sliding_attention" if i >= first else "full_attention" for i in range(n)]
                _windows_from_layer_types(r, fields, window, defaults)
            elif r.config.get("sliding_window") is not None:
                r.note("sliding_window is ignored because use_sliding_window is false (as in transformers)")
        case "gemma2" | "gemma3_text":
            fields["attention_bias"] = r.get("attention_bias", False)
            window = r.get("sliding_window", 4096, "4,096 (config default)")
            if r.model_type == "gemma2":
                defaults = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)]
            else:
                pattern = r.get("sliding_window_pattern", 6, "6: five sliding layers to one global (default)")
                defaults = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)]
                if r.get("use_bidirectional_attention", False) and window is not None:
                    window = window // 2 + 1
                    r.note(f"use_bidirectional_attention: window {window:,} = sliding_window / 2 + 1, as transformers")
            _windows_from_layer_types(r, fields, window, defaults)
        case "phi3":
            fields["sliding_window"] = r.get("sliding_window", None)
    return fields


def _maps(spec: ModelSpec) -> tuple[LinearMap, ...]:
    d, f = spec.hidden_size, spec.mlp_width
    q_out = spec.attention_heads * spec.attention_head_dim
    kv_out = spec.kv_heads * spec.attention_head_dim
    if spec.model_type == "phi3":
        return (
            LinearMap("self_attn.qkv_proj", d, q_out + 2 * kv_out, False, roles("q", "k", "v"), "attention"),
            LinearMap("self_attn.o_proj", q_out, d, False, roles("o"), "attention"),
            LinearMap("mlp.gate_up_proj", d, 2 * f, False, roles("gate", "up"), "mlp"),
            LinearMap("mlp.down_proj", f, d, False, roles("down"), "mlp"),
        )
    match spec.model_type:
        case "mistral":
            qkv_bias = o_bias = False
        case "qwen2":
            qkv_bias, o_bias = True, False
        case _:
            qkv_bias = o_bias = spec.attention_bias
    return attention_maps(d, q_out, kv_out, qkv_bias, o_bias) + gated_mlp("mlp", d, f, spec.mlp_bias)


def _norms(spec: ModelSpec) -> tuple[ParamTensor, ...]:
    names: tuple[str, ...] = ("input_layernorm", "post_attention_layernorm")
    if spec.model_type in ("gemma2", "gemma3_text"):
        names += ("pre_feedforward_layernorm", "post_feedforward_layernorm")
    norms = rms_norms(spec.hidden_size, names)
    if spec.model_type in ("qwen3", "gemma3_text"):  # RMSNorm on each query and key head
        norms += rms_norms(spec.attention_head_dim, ("self_attn.q_norm", "self_attn.k_norm"))
    return norms


def build(spec: ModelSpec) -> Layout:
    """One group per kind of layer (full attention, or each sliding window), all with the same maps."""
    maps, norms = _maps(spec), _norms(spec)

    tensors = embedding_and_final_norm(spec.vocab_size, spec.hidden_size, spec.tie_word_embeddings)
    return windowed_attention_layout(spec, maps, norms, tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    config = attention_config(spec)
    windowed = spec.sliding_window is not None
    match spec.model_type:
        case "llama":
            config.update(attention_bias=spec.attention_bias, mlp_bias=spec.mlp_bias)
        case "mistral" | "phi3":
            config["sliding_window"] = spec.sliding_window
        case "qwen2" | "qwen3" | "gemma2" | "gemma3_text":
            if spec.model_type != "qwen2":
                config["attention_bias"] = spec.attention_bias
            if spec.model_type in ("qwen2", "qwen3"):
                config["use_sliding_window"] = windowed
            config["sliding_window"] = spec.sliding_window
            types = (
                spec.layer_types or (("sliding_attention" if windowed else "full_attention"),) * spec.num_hidden_layers
            )
            config["layer_types"] = list(types)
    return config


# peft's default IA3 targets (and the feed-forward ones among them) and LN-tuning targets
# (TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING, ..._LNTUNING_...), llama.cpp's architecture names, and the
# types whose training activations estimator.memory.activations validates to the byte.
_K_V_DOWN = (("k_proj", "v_proj", "down_proj"), ("down_proj",))
_Q_V_DOWN = (("q_proj", "v_proj", "down_proj"), ("down_proj",))
_LLAMA_NORMS = ("input_layernorm", "post_attention_layernorm", "norm")
_GEMMA2_NORMS = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                 "post_feedforward_layernorm", "norm")  # fmt: skip
_QWEN = PeftConventions(ia3=_Q_V_DOWN, ln_tuning=("post_attention_layernorm",))
_GEMMA2 = PeftConventions(ia3=_Q_V_DOWN, ln_tuning=_GEMMA2_NORMS)
CONVENTIONS = {
    "llama": Conventions(peft=PeftConventions(ia3=_K_V_DOWN, ln_tuning=_LLAMA_NORMS),
                         gguf=GgufConventions(architecture="llama"), measured_activations=True),
    "mistral": Conventions(peft=PeftConventions(ia3=_K_V_DOWN, ln_tuning=_LLAMA_NORMS), measured_activations=True),
    "qwen2": Conventions(peft=_QWEN, gguf=GgufConventions(architecture="qwen2"), measured_activations=True),
    "qwen3": Conventions(peft=_QWEN, gguf=GgufConventions(architecture="qwen3"), measured_activations=True),
    "gemma2": Conventions(peft=_GEMMA2, gguf=GgufConventions(architecture="gemma2")),
    "gemma3_text": Conventions(peft=_GEMMA2, gguf=GgufConventions(architecture="gemma3"), wrappers=("gemma3",)),
    "phi3": Conventions(gguf=GgufConventions(architecture="phi3")),
}  # fmt: skip

FAMILIES = [
    Family(
        ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi3"),
        read,
        build,
        to_config,
        conventions=CONVENTIONS,
    )
]
