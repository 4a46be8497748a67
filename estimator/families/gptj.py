"""GPT-J: a parallel block (attention and MLP read one LayerNorm), rotary embeddings on part of each head.

transformers 5's ``GPTJBlock``: ``ln_1`` (LayerNorm, weight and bias: 2d), ``attn.k_proj``,
``attn.v_proj``, ``attn.q_proj``, ``attn.out_proj`` (d -> d each, no bias), ``mlp.fc_in``
(d -> n_inner, default 4d) and ``mlp.fc_out`` (n_inner -> d), both with biases. Outside the blocks:
``wte`` (V × d), ``ln_f`` (2d) and ``lm_head`` (d -> V) with a bias of V, which stays even when
the weight is tied. head_dim is always n_embd / n_head; ``rotary_dim`` (64 by default) is the part
of each head that rotates, which changes no count. Embeddings are untied by default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader
from estimator.families.conventions import Conventions, PeftConventions
from estimator.families.schema import SIZE
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import output_head, roles

if TYPE_CHECKING:
    from estimator.specs import ModelSpec


def read(r: Reader) -> dict[str, Any]:
    hidden = r.need("n_embd", "hidden_size")
    heads = r.need("n_head", "num_attention_heads")
    inner = r.config.get("n_inner")
    numeric = isinstance(hidden, int) and isinstance(heads, int) and heads > 0
    if inner is None and isinstance(hidden, int):
        r.note(f"n_inner is null: the MLP is 4 · n_embd = {4 * hidden:,} wide, as transformers does")
    return {
        "num_hidden_layers": r.need("n_layer", "num_hidden_layers"),
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "head_dim": hidden // heads if numeric else None,
        "vocab_size": r.get("vocab_size", 50400, "50,400 (GPTJConfig default)"),
        "intermediate_size": inner if inner is not None else (4 * hidden if isinstance(hidden, int) else None),
        "max_position_embeddings": r.get("n_positions", 2048, "2,048 (GPTJConfig default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "family_fields": (("rotary_dim", r.get("rotary_dim", 64, "64 (GPTJConfig default)")),),
    }


def build(spec: ModelSpec) -> Layout:
    """One group: four d × d attention maps without biases, fc_in and fc_out with biases, ln_1.

    GPT-J 6B: 28 · (4 · 4,096² + 2 · 4,096 · 16,384 + 16,384 + 4,096 + 2 · 4,096) + 2 · 50,400 · 4,096
    + 50,400 + 2 · 4,096 = 6,050,882,784 parameters.
    """
    d, f = spec.hidden_size, spec.mlp_width
    maps = (
        LinearMap("attn.k_proj", d, d, False, roles("k"), "attention"),
        LinearMap("attn.v_proj", d, d, False, roles("v"), "attention"),
        LinearMap("attn.q_proj", d, d, False, roles("q"), "attention"),
        LinearMap("attn.out_proj", d, d, False, roles("o"), "attention"),
        LinearMap("mlp.fc_in", d, f, True, roles("up"), "mlp"),
        LinearMap("mlp.fc_out", f, d, True, roles("down"), "mlp"),
    )
    mixer = Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim)
    tensors = (
        ParamTensor("wte", spec.vocab_size * d, "embedding"),
        ParamTensor("ln_f", 2 * d, "norm"),
        *output_head(spec.vocab_size, d, spec.tie_word_embeddings),
        ParamTensor("lm_head.bias", spec.vocab_size, "lm_head"),
    )
    layers = (LayerGroup(spec.num_hidden_layers, mixer, maps, (ParamTensor("ln_1", 2 * d, "norm"),)),)
    return Layout(layers, tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        "n_embd": spec.hidden_size,
        "n_head": spec.attention_heads,
        "n_layer": spec.num_hidden_layers,
        "n_positions": spec.max_position_embeddings,
        "n_inner": spec.mlp_width,
        "rotary_dim": spec.option("rotary_dim", 64),
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """head_dim is n_embd / n_head: the twin keeps n_embd (and so head_dim)."""
    return {**update, "hidden_size": spec.hidden_size}


# peft's IA3 and LN-tuning defaults
CONVENTIONS = {
    "gptj": Conventions(
        peft=PeftConventions(ia3=(("q_proj", "v_proj", "fc_out"), ("fc_out",)), ln_tuning=("ln_1", "ln_f"))
    )
}

FAMILIES = [Family(("gptj",), read, build, to_config, fields={"rotary_dim": SIZE}, twin=twin, conventions=CONVENTIONS)]
