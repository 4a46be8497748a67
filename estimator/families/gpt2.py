"""GPT-2: ``Conv1D`` maps (the same parameters as linear maps), biases everywhere, LayerNorm,
learned position embeddings, tied embeddings. Config names: n_embd, n_layer, n_head, n_positions;
``n_inner`` null means 4 · n_embd.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader
from estimator.layout import LinearMap, ParamTensor, roles

if TYPE_CHECKING:
    from estimator.layout import ExpertLayout
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


def linear_maps(spec: ModelSpec, _experts: ExpertLayout) -> list[LinearMap]:
    d, f, n = spec.hidden_size, spec.intermediate_size, spec.num_hidden_layers
    return [
        LinearMap("attn.c_attn", d, 3 * d, True, roles("q", "k", "v"), "attention", layers=n),
        LinearMap("attn.c_proj", d, d, True, roles("o"), "attention", layers=n),
        LinearMap("mlp.c_fc", d, f, True, roles("up"), "mlp", layers=n),
        LinearMap("mlp.c_proj", f, d, True, roles("down"), "mlp", layers=n),
    ]


def other_tensors(spec: ModelSpec) -> list[ParamTensor]:
    d, n = spec.hidden_size, spec.num_hidden_layers
    return [
        ParamTensor("wte", spec.vocab_size * d, "embedding"),
        ParamTensor("wpe", spec.max_position_embeddings * d, "embedding"),
        ParamTensor("ln_1", 2 * d, "norm", n),
        ParamTensor("ln_2", 2 * d, "norm", n),
        ParamTensor("ln_f", 2 * d, "norm"),
    ]


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        "n_embd": spec.hidden_size,
        "n_head": spec.num_attention_heads,
        "n_layer": spec.num_hidden_layers,
        "n_positions": spec.max_position_embeddings,
        "n_inner": spec.intermediate_size,
    }


FAMILIES = [Family(("gpt2",), read, linear_maps, other_tensors, to_config)]
