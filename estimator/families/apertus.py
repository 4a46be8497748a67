"""Apertus (swiss-ai Apertus 8B, 70B): QK norms, an ungated MLP and the learned xIELU activation.

What transformers 5.24's ``ApertusDecoderLayer`` builds per layer:

- ``self_attn``: q, k, v, o (biases on all four from ``attention_bias``), ``q_norm`` and ``k_norm``
  RMSNorms over one head (d_h each);
- ``mlp``: ``up_proj`` (d -> F) and ``down_proj`` (F -> d), no gate and no biases; with ``hidden_act``
  "xielu" (the default) its ``act_fn`` is an ``XIELUActivation`` holding ``alpha_p`` and ``alpha_n`` (one
  parameter each: 2 per layer; ``beta`` and ``eps`` are buffers); other activations hold none (one that
  does is refused);
- ``attention_layernorm`` and ``feedforward_layernorm`` (RMSNorm, d each).

ApertusConfig: K = H where absent or null, head_dim hidden / heads unless given, untied embeddings. No
window: a ``sliding_window`` is refused (:data:`estimator.families.WINDOWLESS`).

ApertusConfig's own defaults (d 4,096, F 14,336, 32 layers, 32 heads and as many KV heads of 128, vocabulary
131,072, untied, xIELU): 32 · (4 · 4,096² + 2 · 128 + 2 · 4,096 · 14,336 + 2 + 2 · 4,096) + 2 · 131,072 · 4,096
+ 4,096 = 6,979,596,352 parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader, attention_config, head_dim_or_derived
from estimator.families.activation import ACTIVATION_PARAMS, activation
from estimator.families.schema import text
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import attention_maps, embedding_and_final_norm, rms_norms, roles

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

_DEFAULTS = {  # ApertusConfig's defaults for absent keys
    "vocab_size": 131072, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "max_position_embeddings": 65536,
}  # fmt: skip
XIELU = "xielu"


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.field("hidden_size", _DEFAULTS), r.field("num_attention_heads", _DEFAULTS)
    return {
        "num_hidden_layers": r.field("num_hidden_layers", _DEFAULTS),
        "hidden_size": hidden,
        "intermediate_size": r.field("intermediate_size", _DEFAULTS),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", heads, "as many KV heads as query heads (default)"),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("max_position_embeddings", _DEFAULTS),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "family_fields": (("hidden_act", activation(r, "hidden_act", XIELU, counted=(XIELU,))),),
    }


def build(spec: ModelSpec) -> Layout:
    """One group: q, k, v, o, per-head q and k norms, up and down, the activation's own parameters, two
    RMSNorms of d."""
    d, f, dh, bias = spec.hidden_size, spec.mlp_width, spec.attention_head_dim, spec.attention_bias
    maps = (
        *attention_maps(d, spec.attention_heads * dh, spec.kv_heads * dh, bias, bias),
        LinearMap("mlp.up_proj", d, f, False, roles("up"), "mlp"),
        LinearMap("mlp.down_proj", f, d, False, roles("down"), "mlp"),
    )
    norms = rms_norms(dh, ("self_attn.q_norm", "self_attn.k_norm"))
    norms += rms_norms(d, ("attention_layernorm", "feedforward_layernorm"))
    act = spec.option("hidden_act", XIELU)
    if act == XIELU:  # alpha_p and alpha_n
        norms += (ParamTensor("mlp.act_fn", ACTIVATION_PARAMS[XIELU], "mlp"),)
    mixer = Attention(spec.attention_heads, spec.kv_heads, dh)
    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return Layout((LayerGroup(spec.num_hidden_layers, mixer, maps, norms),), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {**attention_config(spec), "attention_bias": spec.attention_bias, "hidden_act": spec.option("hidden_act")}


FAMILIES = [Family(("apertus",), read, build, to_config, fields={"hidden_act": text})]
