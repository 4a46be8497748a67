"""GPT-2: ``Conv1D`` maps (the same parameters as linear maps), biases everywhere, LayerNorm,
learned position embeddings, tied embeddings. Config names: n_embd, n_layer, n_head, n_positions;
``n_inner`` null means 4 · n_embd.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader
from estimator.families.conventions import Conventions, PeftConventions, TransformersConventions
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import output_head, roles

if TYPE_CHECKING:
    from estimator.specs import ModelSpec


def read(r: Reader) -> dict[str, Any]:
    hidden = r.need("n_embd", "hidden_size")
    heads = r.need("n_head", "num_attention_heads")
    inner = r.config.get("n_inner")
    numeric = isinstance(hidden, int) and isinstance(heads, int) and heads > 0
    return {
        "num_hidden_layers": r.need("n_layer", "num_hidden_layers"),
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "head_dim": hidden // heads if numeric else None,
        "vocab_size": r.need("vocab_size"),
        "intermediate_size": inner if inner is not None else (4 * hidden if isinstance(hidden, int) else None),
        "max_position_embeddings": r.need("n_positions", "max_position_embeddings"),
        "tie_word_embeddings": r.get("tie_word_embeddings", True),
    }


def build(spec: ModelSpec) -> Layout:
    """One group of Conv1D maps with biases and two LayerNorms; learned position embeddings; tied head."""
    d, f = spec.hidden_size, spec.mlp_width
    maps = (
        LinearMap("attn.c_attn", d, 3 * d, True, roles("q", "k", "v"), "attention"),
        LinearMap("attn.c_proj", d, d, True, roles("o"), "attention"),
        LinearMap("mlp.c_fc", d, f, True, roles("up"), "mlp"),
        LinearMap("mlp.c_proj", f, d, True, roles("down"), "mlp"),
    )
    norms = (ParamTensor("ln_1", 2 * d, "norm"), ParamTensor("ln_2", 2 * d, "norm"))
    mixer = Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim)
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
    }


# peft's IA3 and LN-tuning defaults; transformers' Conv1D maps
CONVENTIONS = {
    "gpt2": Conventions(
        peft=PeftConventions(ia3=(("c_attn", "mlp.c_proj"), ("c_proj",)), ln_tuning=("ln_1", "ln_2", "ln_f")),
        transformers=TransformersConventions(conv1d=True),
    )
}

FAMILIES = [Family(("gpt2",), read, build, to_config, conventions=CONVENTIONS)]
