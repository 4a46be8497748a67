"""StableLM (``stablelm``): StableLM-3B-4E1T and StableLM 2, LayerNorm and a gated MLP.

What transformers' ``StableLmDecoderLayer`` builds per layer:

- ``self_attn``: q_proj (d -> d), k_proj and v_proj (d -> K d_h), with biases when ``use_qkv_bias``;
  o_proj (d -> d) never biased. head_dim is always hidden_size / heads (a config head_dim is ignored).
  With ``qk_layernorm``, one bias-free LayerNorm of d_h per query head (``q_layernorm``, H d_h
  weights) and per KV head (``k_layernorm``, K d_h). Rotary on part of each head: no parameters.
- ``mlp``: gate_proj, up_proj, down_proj, no biases.
- ``input_layernorm`` (weight and bias, 2d), and ``post_attention_layernorm`` (2d) unless
  ``use_parallel_residual`` (attention and MLP side by side on the one norm); the final ``norm`` (2d).

Defaults: K = 32 (not H), vocabulary 50,304, max_position_embeddings 4,096, untied embeddings.

StableLM 2 1.6B: 24 · (4 · 2,048² + 3 · 2,048 + 3 · 2,048 · 5,632 + 4 · 2,048) + 2 · 100,352 · 2,048
+ 2 · 2,048 = 1,644,515,328 parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader
from estimator.families.schema import Check, flag
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import attention_maps, gated_mlp, output_head

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

QK_LAYERNORM, PARALLEL = "qk_layernorm", "use_parallel_residual"


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    head_dim = hidden // heads if isinstance(hidden, int) and isinstance(heads, int) and heads > 0 else None
    if r.config.get("head_dim") not in (None, head_dim):
        r.note(f"head_dim {r.config['head_dim']} is ignored: StableLmAttention uses hidden_size / heads = {head_dim}")
    if r.config.get("use_norm_bias") is False:
        r.note(
            "use_norm_bias is false, but transformers' StableLM gives every LayerNorm a bias "
            "(counted, as it builds them)"
        )
    return {
        "num_hidden_layers": r.need("num_hidden_layers"),
        "hidden_size": hidden,
        "intermediate_size": r.need("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", 32, "32 KV heads (StableLmConfig default)"),
        "head_dim": head_dim,
        "vocab_size": r.need("vocab_size"),
        "max_position_embeddings": r.get("max_position_embeddings", 4096, "4,096 (StableLmConfig default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("use_qkv_bias", False),
        "family_fields": ((QK_LAYERNORM, r.get(QK_LAYERNORM, False)), (PARALLEL, r.get(PARALLEL, False))),
    }


def _maps(spec: ModelSpec) -> tuple[LinearMap, ...]:
    d, kv_out = spec.hidden_size, spec.kv_heads * spec.attention_head_dim
    q, k, v, o = attention_maps(d, d, kv_out, spec.attention_bias, False)
    return (q, k, v, o, *gated_mlp("mlp", d, spec.mlp_width))


def _norms(spec: ModelSpec) -> tuple[ParamTensor, ...]:
    d = spec.hidden_size
    norms: tuple[ParamTensor, ...] = (ParamTensor("input_layernorm", 2 * d, "norm"),)
    if not spec.option(PARALLEL, False):
        norms += (ParamTensor("post_attention_layernorm", 2 * d, "norm"),)
    if spec.option(QK_LAYERNORM, False):
        norms += (
            ParamTensor("self_attn.q_layernorm", spec.attention_heads * spec.attention_head_dim, "norm"),
            ParamTensor("self_attn.k_layernorm", spec.kv_heads * spec.attention_head_dim, "norm"),
        )
    return norms


def build(spec: ModelSpec) -> Layout:
    """One group; embeddings, the final LayerNorm (2d) and the head unless tied."""
    d = spec.hidden_size
    mixer = Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim)
    tensors = (
        ParamTensor("embed_tokens", spec.vocab_size * d, "embedding"),
        ParamTensor("norm", 2 * d, "norm"),
        *output_head(spec.vocab_size, d, spec.tie_word_embeddings),
    )
    return Layout((LayerGroup(spec.num_hidden_layers, mixer, _maps(spec), _norms(spec)),), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.mlp_width,
        "num_attention_heads": spec.attention_heads,
        "num_key_value_heads": spec.kv_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "use_qkv_bias": spec.attention_bias,
        QK_LAYERNORM: spec.option(QK_LAYERNORM, False),
        PARALLEL: spec.option(PARALLEL, False),
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """Keep hidden_size: StableLM derives head_dim from it."""
    return {**update, "hidden_size": spec.hidden_size}


FIELDS: dict[str, Check] = {"use_qkv_bias": flag, QK_LAYERNORM: flag, PARALLEL: flag, "use_norm_bias": flag}
FAMILIES = [Family(("stablelm",), read, build, to_config, fields=FIELDS, twin=twin)]
