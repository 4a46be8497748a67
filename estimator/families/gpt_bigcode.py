"""GPTBigCode (StarCoder, SantaCoder): GPT-2's layout with multi-query attention.

transformers 5's ``GPTBigCodeBlock``: ``ln_1`` and ``ln_2`` (LayerNorm, 2d each); ``attn.c_attn``
fused d -> d + 2 · K · d_h, with K = 1 when ``multi_query`` (the default) and K = heads otherwise;
``attn.c_proj`` (d -> d); ``mlp.c_fc`` (d -> n_inner, default 4d) and ``mlp.c_proj``; every map
with a bias, all ``nn.Linear`` (not GPT-2's Conv1D, the same count). Outside the blocks: ``wte``
(V × d), learned positions ``wpe`` (n_positions × d), ``ln_f`` (2d) and a head tied by default.
head_dim is always n_embd / n_head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader
from estimator.families.conventions import Conventions, PeftConventions
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import output_head, roles

if TYPE_CHECKING:
    from estimator.specs import ModelSpec


def read(r: Reader) -> dict[str, Any]:
    hidden = r.need("n_embd", "hidden_size")
    heads = r.need("n_head", "num_attention_heads")
    inner = r.config.get("n_inner")
    numeric = isinstance(hidden, int) and isinstance(heads, int) and heads > 0
    multi_query = r.get("multi_query", True, "multi-query attention, one KV head (GPTBigCodeConfig default)")
    if inner is None and isinstance(hidden, int):
        r.note(f"n_inner is null: the MLP is 4 · n_embd = {4 * hidden:,} wide, as transformers does")
    return {
        "num_hidden_layers": r.need("n_layer", "num_hidden_layers"),
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": 1 if multi_query else heads,
        "head_dim": hidden // heads if numeric else None,
        "vocab_size": r.get("vocab_size", 50257, "50,257 (GPTBigCodeConfig default)"),
        "intermediate_size": inner if inner is not None else (4 * hidden if isinstance(hidden, int) else None),
        "max_position_embeddings": r.get("n_positions", 1024, "1,024 (GPTBigCodeConfig default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", True, "tied embeddings (GPTBigCodeConfig default)"),
    }


def build(spec: ModelSpec) -> Layout:
    """One group of biased maps (fused c_attn with one KV head under multi-query) and two LayerNorms.

    SantaCoder: 24 · (2,048 · 2,304 + 2,304 + 2,048² + 2,048 + 2 · 2,048 · 8,192 + 8,192 + 2,048 + 4 · 2,048)
    + 49,280 · 2,048 + 2,048 · 2,048 + 2 · 2,048 = 1,124,886,528 parameters (tied head).
    """
    d, f, dh = spec.hidden_size, spec.mlp_width, spec.attention_head_dim
    maps = (
        LinearMap(
            "attn.c_attn", d, (spec.attention_heads + 2 * spec.kv_heads) * dh, True, roles("q", "k", "v"), "attention"
        ),
        LinearMap("attn.c_proj", d, d, True, roles("o"), "attention"),
        LinearMap("mlp.c_fc", d, f, True, roles("up"), "mlp"),
        LinearMap("mlp.c_proj", f, d, True, roles("down"), "mlp"),
    )
    norms = (ParamTensor("ln_1", 2 * d, "norm"), ParamTensor("ln_2", 2 * d, "norm"))
    mixer = Attention(spec.attention_heads, spec.kv_heads, dh)
    tensors = (
        ParamTensor("wte", spec.vocab_size * d, "embedding"),
        ParamTensor("wpe", spec.max_position_embeddings * d, "embedding"),
        ParamTensor("ln_f", 2 * d, "norm"),
        *output_head(spec.vocab_size, d, spec.tie_word_embeddings),
    )
    return Layout((LayerGroup(spec.num_hidden_layers, mixer, maps, norms),), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        "n_embd": spec.hidden_size,
        "n_head": spec.attention_heads,
        "n_layer": spec.num_hidden_layers,
        "n_positions": spec.max_position_embeddings,
        "n_inner": spec.mlp_width,
        "multi_query": spec.kv_heads == 1,
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """head_dim is n_embd / n_head: the twin keeps n_embd (and so head_dim)."""
    return {**update, "hidden_size": spec.hidden_size}


# peft's IA3 default
CONVENTIONS = {"gpt_bigcode": Conventions(peft=PeftConventions(ia3=(("c_attn", "mlp.c_proj"), ("c_proj",))))}

FAMILIES = [Family(("gpt_bigcode",), read, build, to_config, twin=twin, conventions=CONVENTIONS)]
