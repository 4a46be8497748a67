"""BLOOM: ALiBi (no position embeddings), fused query_key_value with biases, LayerNorms with biases.

What transformers 5.24's ``BloomForCausalLM`` builds:

- ``word_embeddings`` (V × d) followed by ``word_embeddings_layernorm`` (a LayerNorm: 2d);
- per layer (``BloomBlock``): ``input_layernorm`` and ``post_attention_layernorm`` (2d each),
  ``self_attention.query_key_value`` (d -> 3d, bias), ``self_attention.dense`` (d -> d, bias),
  ``mlp.dense_h_to_4h`` (d -> 4d, bias) and ``mlp.dense_4h_to_h`` (4d -> d, bias): every head attends with
  its own K and V (H KV heads of d / H), and the MLP is always 4d wide;
- ``ln_f`` (2d) and the head, tied by default.

Config names: ``n_layer`` and ``n_head`` (``num_hidden_layers`` and ``num_attention_heads`` are their
aliases), ``hidden_size`` (``n_embed`` in older files, read by BloomConfig's ``__post_init__``). ALiBi has no
positions to learn and no context limit of its own. ``apply_residual_connection_post_layernorm``,
``pretraining_tp`` and ``slow_but_exact`` change the computation, never a count.

BLOOM-560m (bigscience/bloom-560m config.json: d 1,024, 24 layers, 16 heads, vocabulary 250,880, tied):
24 · (1,024 · 3,072 + 3,072 + 1,024² + 1,024 + 2 · 1,024 · 4,096 + 4,096 + 1,024 + 4 · 1,024)
+ 250,880 · 1,024 + 2 · 1,024 + 2 · 1,024 = 559,214,592 parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader
from estimator.families.activation import whole_heads
from estimator.families.conventions import Conventions, PeftConventions
from estimator.families.schema import MAX_CONTEXT
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import output_head, roles

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

_DEFAULTS = {"vocab_size": 250880, "hidden_size": 64, "n_layer": 2, "n_head": 8}  # BloomConfig's


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.field("hidden_size", _DEFAULTS), r.field("n_head", _DEFAULTS)
    numeric = isinstance(hidden, int) and isinstance(heads, int) and heads > 0
    whole_heads(r, hidden, heads)
    return {
        "num_hidden_layers": r.field("n_layer", _DEFAULTS),
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden if isinstance(hidden, int) else None,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "head_dim": hidden // heads if numeric else None,
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.get(
            "max_position_embeddings", MAX_CONTEXT, "ALiBi: no position embeddings, no context limit of its own"
        ),
        "tie_word_embeddings": r.get("tie_word_embeddings", True, "tied embeddings (BloomConfig default)"),
    }


def build(spec: ModelSpec) -> Layout:
    """One group: fused query_key_value, dense, the 4d MLP, all with biases; two LayerNorms (2d each)."""
    d = spec.hidden_size
    maps = (
        LinearMap("self_attention.query_key_value", d, 3 * d, True, roles("q", "k", "v"), "attention"),
        LinearMap("self_attention.dense", d, d, True, roles("o"), "attention"),
        LinearMap("mlp.dense_h_to_4h", d, 4 * d, True, roles("up"), "mlp"),
        LinearMap("mlp.dense_4h_to_h", 4 * d, d, True, roles("down"), "mlp"),
    )
    norms = (ParamTensor("input_layernorm", 2 * d, "norm"), ParamTensor("post_attention_layernorm", 2 * d, "norm"))
    mixer = Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim)
    tensors = (
        ParamTensor("word_embeddings", spec.vocab_size * d, "embedding"),
        ParamTensor("word_embeddings_layernorm", 2 * d, "norm"),
        ParamTensor("ln_f", 2 * d, "norm"),
        *output_head(spec.vocab_size, d, spec.tie_word_embeddings),
    )
    return Layout((LayerGroup(spec.num_hidden_layers, mixer, maps, norms),), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {"hidden_size": spec.hidden_size, "n_head": spec.attention_heads}


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """hidden_size kept (head_dim is hidden_size / n_head), and the MLP 4 · hidden_size."""
    return {**update, "hidden_size": spec.hidden_size, "intermediate_size": 4 * spec.hidden_size}


# peft's IA3 and LN-tuning defaults
CONVENTIONS = {
    "bloom": Conventions(
        peft=PeftConventions(
            ia3=(("query_key_value", "mlp.dense_4h_to_h"), ("dense_4h_to_h",)),
            ln_tuning=("input_layernorm", "post_attention_layernorm", "ln_f"),
        )
    )
}

FAMILIES = [Family(("bloom",), read, build, to_config, twin=twin, conventions=CONVENTIONS)]
