"""StarCoder2 (``starcoder2``): GQA with a sliding window on every layer, LayerNorm, biases from ``use_bias``.

What transformers' ``Starcoder2DecoderLayer`` builds per layer:

- ``self_attn``: q_proj (d -> H d_h), k_proj and v_proj (d -> K d_h), o_proj (H d_h -> d), all with a
  bias when ``use_bias`` (true by default).
- ``mlp``: c_fc (d -> F) and c_proj (F -> d), biased likewise (no gate).
- ``input_layernorm`` and ``post_attention_layernorm``: LayerNorm, weight and bias (2d each); the
  final ``norm`` too.

``sliding_window`` applies to every layer (no ``layer_types``): the cache of each holds at most w − 1
tokens in transformers. Defaults: K = 2, max_position_embeddings 4,096, tied embeddings, no window.

StarCoder2-3B: 30 · (3,072² + 2 · 3,072 · 256 + 3,072² + 3,072 + 2 · 256 + 3,072 + 2 · 3,072 · 12,288
+ 12,288 + 3,072 + 4 · 3,072) + 49,152 · 3,072 + 2 · 3,072 = 3,030,371,328 parameters (tied head).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader, attention_config, head_dim_or_derived
from estimator.families.conventions import Conventions, GgufConventions
from estimator.families.schema import flag
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import attention_maps, output_head, roles

if TYPE_CHECKING:
    from estimator.specs import ModelSpec


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    bias = r.get("use_bias", True, "biases on every linear map (Starcoder2Config default)")
    return {
        "num_hidden_layers": r.need("num_hidden_layers"),
        "hidden_size": hidden,
        "intermediate_size": r.need("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", 2, "2 KV heads (Starcoder2Config default)"),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.need("vocab_size"),
        "max_position_embeddings": r.get("max_position_embeddings", 4096, "4,096 (Starcoder2Config default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", True, "embeddings tied (Starcoder2Config default)"),
        "sliding_window": r.get("sliding_window", None, "no sliding window (Starcoder2Config default)"),
        "attention_bias": bias,
        "mlp_bias": bias,
    }


def _layer_norms(d: int, names: tuple[str, ...]) -> tuple[ParamTensor, ...]:
    """LayerNorms with weight and bias: 2d each."""
    return tuple(ParamTensor(name, 2 * d, "norm") for name in names)


def build(spec: ModelSpec) -> Layout:
    """One group (every layer slides over the same window, or none does)."""
    d, f, bias = spec.hidden_size, spec.mlp_width, spec.attention_bias
    q_out, kv_out = spec.attention_heads * spec.attention_head_dim, spec.kv_heads * spec.attention_head_dim
    maps = (
        *attention_maps(d, q_out, kv_out, bias, bias),
        LinearMap("mlp.c_fc", d, f, bias, roles("up"), "mlp"),
        LinearMap("mlp.c_proj", f, d, bias, roles("down"), "mlp"),
    )
    norms = _layer_norms(d, ("input_layernorm", "post_attention_layernorm"))
    mixer = Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim, spec.sliding_window)
    tensors = (
        ParamTensor("embed_tokens", spec.vocab_size * d, "embedding"),
        *_layer_norms(d, ("norm",)),
        *output_head(spec.vocab_size, d, spec.tie_word_embeddings),
    )
    return Layout((LayerGroup(spec.num_hidden_layers, mixer, maps, norms),), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {**attention_config(spec), "use_bias": spec.attention_bias, "sliding_window": spec.sliding_window}


# llama.cpp's architecture name
CONVENTIONS = {"starcoder2": Conventions(gguf=GgufConventions(architecture="starcoder2"))}

FAMILIES = [Family(("starcoder2",), read, build, to_config, fields={"use_bias": flag}, conventions=CONVENTIONS)]
