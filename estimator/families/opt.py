"""OPT: learned positions (offset 2), LayerNorms with biases, biases from ``enable_bias``, project_in/out.

What transformers 5.24's ``OPTForCausalLM`` builds:

- ``embed_tokens`` (V × P, P = ``word_embed_proj_dim``, hidden_size when absent) and ``embed_positions``
  ((max_position_embeddings + 2) × d: ``OPTLearnedPositionalEmbedding`` keeps two rows for its offset);
- where P ≠ d: ``project_in`` (P -> d) and ``project_out`` (d -> P), ``nn.Linear`` without bias outside the
  layers (all-linear adapts them; they are counted with layer 0);
- per layer: q, k, v, out_proj (d -> d) and fc1 (d -> F), fc2 (F -> d), F = ``ffn_dim``, all with biases
  from ``enable_bias``; ``self_attn_layer_norm`` and ``final_layer_norm`` (LayerNorm, 2d each; none where
  ``layer_norm_elementwise_affine`` is false); H heads of d / H, as many KV heads;
- ``decoder.final_layer_norm`` (2d) only where ``do_layer_norm_before`` and not ``_remove_final_layer_norm``;
- ``lm_head`` (P -> V, no bias), tied to embed_tokens by default.

``activation_function`` changes no count (one with parameters is refused); ``dropout`` and ``layerdrop``
none either.

OPT-350m (facebook/opt-350m config.json: d 1,024, F 4,096, 24 layers, 16 heads, P 512, positions 2,048,
vocabulary 50,272, do_layer_norm_before false, tied): 24 · (4 · (1,024² + 1,024) + 2 · 1,024 · 4,096 + 4,096
+ 1,024 + 4 · 1,024) + 50,272 · 512 + 2,050 · 1,024 + 2 · 512 · 1,024 = 331,196,416 parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader
from estimator.families.activation import activation, whole_heads
from estimator.families.conventions import Conventions, PeftConventions
from estimator.families.schema import SIZE, Check, flag, text
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import output_head, roles

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

POSITION_OFFSET = 2  # OPTLearnedPositionalEmbedding: max_position_embeddings + 2 rows
_DEFAULTS = {  # OPTConfig's defaults for absent keys
    "vocab_size": 50272, "hidden_size": 768, "num_hidden_layers": 12, "ffn_dim": 3072,
    "max_position_embeddings": 2048, "num_attention_heads": 12,
}  # fmt: skip


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.field("hidden_size", _DEFAULTS), r.field("num_attention_heads", _DEFAULTS)
    numeric = isinstance(hidden, int) and isinstance(heads, int) and heads > 0
    whole_heads(r, hidden, heads)
    projected = r.get("word_embed_proj_dim", hidden)
    activation(r, "activation_function", "relu")
    own = {
        "enable_bias": r.get("enable_bias", True),
        "layer_norm_elementwise_affine": r.get("layer_norm_elementwise_affine", True),
        "do_layer_norm_before": r.get("do_layer_norm_before", True),
        "_remove_final_layer_norm": r.get("_remove_final_layer_norm", False),
        "word_embed_proj_dim": projected,
    }
    return {
        "num_hidden_layers": r.field("num_hidden_layers", _DEFAULTS),
        "hidden_size": hidden,
        "intermediate_size": r.field("ffn_dim", _DEFAULTS),
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "head_dim": hidden // heads if numeric else None,
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("max_position_embeddings", _DEFAULTS),
        "tie_word_embeddings": r.get("tie_word_embeddings", True, "tied embeddings (OPTConfig default)"),
        "family_fields": tuple(own.items()),
    }


def _projected(spec: ModelSpec) -> int:
    """P, the width of the token embeddings and the head (hidden_size unless word_embed_proj_dim differs)."""
    return int(spec.option("word_embed_proj_dim", spec.hidden_size))


def _layer_norm(spec: ModelSpec, name: str) -> tuple[ParamTensor, ...]:
    """A LayerNorm of d: weight and bias (2d), or nothing without ``layer_norm_elementwise_affine``."""
    return (ParamTensor(name, 2 * spec.hidden_size, "norm"),) if spec.option("layer_norm_elementwise_affine") else ()


def build(spec: ModelSpec) -> Layout:
    """Layer 0 apart where P ≠ d (it carries project_in and project_out); the other layers alike."""
    d, f, p, bias = spec.hidden_size, spec.mlp_width, _projected(spec), bool(spec.option("enable_bias"))
    maps = (
        LinearMap("self_attn.q_proj", d, d, bias, roles("q"), "attention"),
        LinearMap("self_attn.k_proj", d, d, bias, roles("k"), "attention"),
        LinearMap("self_attn.v_proj", d, d, bias, roles("v"), "attention"),
        LinearMap("self_attn.out_proj", d, d, bias, roles("o"), "attention"),
        LinearMap("fc1", d, f, bias, roles("up"), "mlp"),
        LinearMap("fc2", f, d, bias, roles("down"), "mlp"),
    )
    norms = _layer_norm(spec, "self_attn_layer_norm") + _layer_norm(spec, "final_layer_norm")
    mixer = Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim)
    n = spec.num_hidden_layers
    groups: tuple[LayerGroup, ...]
    if p == d:
        groups = (LayerGroup(n, mixer, maps, norms),)
    else:
        projections = (
            LinearMap("project_in", p, d, False, roles("up"), "mlp"),
            LinearMap("project_out", d, p, False, roles("down"), "mlp"),
        )
        first = LayerGroup(1, mixer, maps + projections, norms)
        groups = (first,) if n == 1 else (first, LayerGroup(n - 1, mixer, maps, norms))
    final = spec.option("do_layer_norm_before") and not spec.option("_remove_final_layer_norm")
    tensors = (
        ParamTensor("embed_tokens", spec.vocab_size * p, "embedding"),
        ParamTensor("embed_positions", (spec.max_position_embeddings + POSITION_OFFSET) * d, "embedding"),
        *(_layer_norm(spec, "decoder.final_layer_norm") if final else ()),
        *output_head(spec.vocab_size, p, spec.tie_word_embeddings),
    )
    return Layout(groups, tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    own = dict(spec.family_fields)
    return {
        "hidden_size": spec.hidden_size,
        "ffn_dim": spec.mlp_width,
        "num_attention_heads": spec.attention_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        **{key: own[key] for key in _OWN},
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """hidden_size and P kept (head_dim is hidden_size / heads; project_in and project_out exist where they
    differ)."""
    return {**update, "hidden_size": spec.hidden_size}


_OWN = ("enable_bias", "layer_norm_elementwise_affine", "do_layer_norm_before", "_remove_final_layer_norm",
        "word_embed_proj_dim")  # fmt: skip
FIELDS: dict[str, Check] = {
    "ffn_dim": SIZE,
    "word_embed_proj_dim": SIZE,
    "enable_bias": flag,
    "layer_norm_elementwise_affine": flag,
    "do_layer_norm_before": flag,
    "_remove_final_layer_norm": flag,
    "activation_function": text,
}
# peft's IA3 default
CONVENTIONS = {"opt": Conventions(peft=PeftConventions(ia3=(("q_proj", "k_proj", "fc2"), ("fc2",))))}

FAMILIES = [Family(("opt",), read, build, to_config, fields=FIELDS, twin=twin, conventions=CONVENTIONS)]
