"""Gemma (Gemma 1) and VaultGemma: Llama's maps with Gemma's defaults, tied embeddings and head_dim 256.

What transformers 5.24 builds per layer:

- gemma (``GemmaDecoderLayer``): q, k, v, o (biases on all four from ``attention_bias``), gate, up, down
  without biases, ``input_layernorm`` and ``post_attention_layernorm`` (d each). No window: a
  ``sliding_window`` is refused (see :data:`estimator.families.WINDOWLESS`).
- vaultgemma (``VaultGemmaDecoderLayer``): the same maps, but only ``input_layernorm`` and
  ``pre_feedforward_layernorm``; sliding and full attention by ``layer_types``, absent alternating, sliding
  first ((i + 1) % 2), window ``sliding_window`` (4,096 by default) on the sliding layers.

Every field has a config-class default (GemmaConfig: the 7B's shape; VaultGemmaConfig: VaultGemma 1B's);
embeddings are tied by default. The activation (``hidden_act``; VaultGemma reads ``hidden_activation``)
changes no count, except one whose module holds parameters, which is refused. Softcapping, ``query_pre_attn_
scalar`` and ``use_bidirectional_attention`` change what is computed, not what is stored.

Gemma 7B (google/gemma-7b config.json: d 3,072, F 24,576, 28 layers, 16 heads of 256, 16 KV heads,
vocabulary 256,000, tied): 28 · (4 · 3,072 · 4,096 + 3 · 3,072 · 24,576 + 2 · 3,072) + 256,000 · 3,072
+ 3,072 = 8,537,680,896 parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, attention_config, windowed_attention_layout
from estimator.families.activation import activation
from estimator.families.conventions import Conventions, PeftConventions
from estimator.families.schema import text
from estimator.layout import Layout
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, rms_norms

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

_DEFAULTS: dict[str, dict[str, Any]] = {  # GemmaConfig's and VaultGemmaConfig's defaults for absent keys
    "gemma": {
        "vocab_size": 256000, "hidden_size": 3072, "intermediate_size": 24576, "num_hidden_layers": 28,
        "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 256, "max_position_embeddings": 8192,
    },
    "vaultgemma": {
        "vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
        "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 8192,
        "sliding_window": 4096,
    },
}  # fmt: skip
_SHAPE = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads")
_NORMS = {
    "gemma": ("input_layernorm", "post_attention_layernorm"),
    "vaultgemma": ("input_layernorm", "pre_feedforward_layernorm"),
}


def _vault_windows(r: Reader, n: int) -> dict[str, Any]:
    """VaultGemma's layer_types (absent: sliding and full alternating, sliding first) and its window."""
    types = r.config.get("layer_types")
    if types is None:
        r.note("config.json has no layer_types: sliding and full attention alternate, sliding first (default)")
        types = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)]
    window = r.get("sliding_window", 4096, "4,096 (VaultGemmaConfig default)", null_is_default=False)
    if "sliding_attention" not in types:
        return {}
    if window is None:
        raise EstimatorError(
            f"{r.path}: layer_types has sliding_attention layers but sliding_window is null; "
            "give the window or make every layer full_attention"
        )
    return {"sliding_window": window, "layer_types": tuple(types)}


def read(r: Reader) -> dict[str, Any]:
    defaults = _DEFAULTS[r.model_type]
    fields: dict[str, Any] = {key: r.field(key, defaults) for key in _SHAPE}
    fields.update(
        head_dim=r.field("head_dim", defaults),
        vocab_size=r.field("vocab_size", defaults),
        max_position_embeddings=r.field("max_position_embeddings", defaults),
        tie_word_embeddings=r.get("tie_word_embeddings", True, f"tied embeddings ({r.model_type} default)"),
        attention_bias=r.get("attention_bias", False),
    )
    if r.model_type == "gemma":
        activation(r, "hidden_act", "gelu_pytorch_tanh")
    else:
        activation(r, "hidden_activation", "gelu_pytorch_tanh")
        fields.update(_vault_windows(r, fields["num_hidden_layers"]))
    return fields


def build(spec: ModelSpec) -> Layout:
    """One group per window: q, k, v, o (biases from ``attention_bias``), gate, up, down, two RMSNorms of d."""
    d, dh, bias = spec.hidden_size, spec.attention_head_dim, spec.attention_bias
    maps = attention_maps(d, spec.attention_heads * dh, spec.kv_heads * dh, bias, bias) + gated_mlp(
        "mlp", d, spec.mlp_width
    )
    norms = rms_norms(d, _NORMS[spec.model_type])
    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return windowed_attention_layout(spec, maps, norms, tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    config = {**attention_config(spec), "attention_bias": spec.attention_bias}
    if spec.model_type == "vaultgemma":
        config["sliding_window"] = spec.sliding_window
        config["layer_types"] = list(spec.layer_types or ("full_attention",) * spec.num_hidden_layers)
    return config


# peft's default IA3 and LN-tuning targets for gemma (none for vaultgemma)
_PEFT = PeftConventions(ia3=(("q_proj", "v_proj", "down_proj"), ("down_proj",)),
                        ln_tuning=("input_layernorm", "post_attention_layernorm", "norm"))  # fmt: skip
CONVENTIONS = {"gemma": Conventions(peft=_PEFT)}

FAMILIES = [
    Family(
        ("gemma", "vaultgemma"),
        read,
        build,
        to_config,
        fields={"hidden_act": text, "hidden_activation": text},
        conventions=CONVENTIONS,
    )
]
