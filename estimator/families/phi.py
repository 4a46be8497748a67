"""Phi-1, Phi-1.5 and Phi-2 (``phi``): attention and MLP side by side on one LayerNorm, biases everywhere.

What transformers' ``PhiDecoderLayer`` builds per layer:

- ``self_attn``: q_proj (d -> H d_h), k_proj and v_proj (d -> K d_h), ``dense`` (H d_h -> d), all with
  biases; with ``qk_layernorm``, LayerNorms ``q_layernorm`` and ``k_layernorm`` of d / H (weight and
  bias each). Rotary embeddings on part of each head (``partial_rotary_factor``): no parameters.
- ``mlp``: fc1 (d -> F) and fc2 (F -> d), with biases (no gate).
- one ``input_layernorm`` (weight and bias, 2d) feeding both branches; ``final_layernorm`` (2d).
- ``lm_head`` with a bias of V, its own even when the weight is tied to the embedding.

head_dim is hidden_size / heads unless the config gives it; K defaults to H; embeddings untied.

Phi-2: 32 · (4 · (2,560² + 2,560) + 2 · 2,560 · 10,240 + 10,240 + 2,560 + 2 · 2,560)
+ 2 · 51,200 · 2,560 + 51,200 + 2 · 2,560 = 2,779,683,840 parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader, attention_config, head_dim_or_derived
from estimator.families.conventions import Conventions, PeftConventions
from estimator.families.schema import flag
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import attention_maps, output_head, roles

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

QK_LAYERNORM = "qk_layernorm"


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    qk_norm = r.get(QK_LAYERNORM, False)
    return {
        "num_hidden_layers": r.need("num_hidden_layers"),
        "hidden_size": hidden,
        "intermediate_size": r.need("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", heads, "as many KV heads as query heads (config default)"),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.need("vocab_size"),
        "max_position_embeddings": r.get("max_position_embeddings", 2048, "2,048 (PhiConfig default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": True,
        "mlp_bias": True,
        "family_fields": ((QK_LAYERNORM, qk_norm),),
    }


def _maps(spec: ModelSpec) -> tuple[LinearMap, ...]:
    d, f = spec.hidden_size, spec.mlp_width
    q_out, kv_out = spec.attention_heads * spec.attention_head_dim, spec.kv_heads * spec.attention_head_dim
    q, k, v, _ = attention_maps(d, q_out, kv_out, True, True)
    return (
        q,
        k,
        v,
        LinearMap("self_attn.dense", q_out, d, True, roles("o"), "attention"),
        LinearMap("mlp.fc1", d, f, True, roles("up"), "mlp"),
        LinearMap("mlp.fc2", f, d, True, roles("down"), "mlp"),
    )


def _norms(spec: ModelSpec) -> tuple[ParamTensor, ...]:
    """input_layernorm (2d); with qk_layernorm, q_layernorm and k_layernorm of 2 · (d / H) each (PhiAttention
    sizes them from hidden_size / heads, whatever head_dim is)."""
    norms: tuple[ParamTensor, ...] = (ParamTensor("input_layernorm", 2 * spec.hidden_size, "norm"),)
    if spec.option(QK_LAYERNORM, False):
        width = 2 * (spec.hidden_size // spec.attention_heads)
        norms += (
            ParamTensor("self_attn.q_layernorm", width, "norm"),
            ParamTensor("self_attn.k_layernorm", width, "norm"),
        )
    return norms


def build(spec: ModelSpec) -> Layout:
    """One group; the embedding, final_layernorm (2d), lm_head weight (unless tied) and its bias (V)."""
    d, v = spec.hidden_size, spec.vocab_size
    mixer = Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim)
    tensors = (
        ParamTensor("embed_tokens", v * d, "embedding"),
        ParamTensor("final_layernorm", 2 * d, "norm"),
        *output_head(v, d, spec.tie_word_embeddings),
        ParamTensor("lm_head.bias", v, "lm_head"),
    )
    return Layout((LayerGroup(spec.num_hidden_layers, mixer, _maps(spec), _norms(spec)),), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {**attention_config(spec), QK_LAYERNORM: spec.option(QK_LAYERNORM, False)}


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """Keep hidden_size: the q/k LayerNorms are d / H wide whatever head_dim is."""
    return {**update, "hidden_size": spec.hidden_size}


# peft's IA3 and LN-tuning defaults
CONVENTIONS = {
    "phi": Conventions(
        peft=PeftConventions(
            ia3=(("q_proj", "v_proj", "fc2"), ("fc2",)), ln_tuning=("input_layernorm", "final_layernorm")
        )
    )
}

FAMILIES = [Family(("phi",), read, build, to_config, fields={QK_LAYERNORM: flag}, twin=twin, conventions=CONVENTIONS)]
