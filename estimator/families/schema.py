"""What each config.json field the readers use may hold, checked before any reader computes with it.

Strict: a count is an int (not ``"32"``, ``32.0`` or ``true``), a flag is a bool, and every count has
a range, so that a reader never divides by zero, builds a list of a trillion layers, or reads a
string as one layer. ``null`` is always allowed (the readers treat it as absent, or as "none" where
that is its meaning, e.g. ``sliding_window``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_LAYERS = 100_000  # readers build per-layer lists: far above any real model (DeepSeek-V3: 61)
MAX_SIZE = 10**9  # widths, heads, vocabularies, windows, experts: far above any real model
MAX_CONTEXT = 10**12  # max_position_embeddings

Check = Callable[[Any], str | None]  # None when the value is fine, else what it should be


def count(low: int = 1, high: int = MAX_SIZE) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"a whole number from {low:,} to {high:,}"
        return None

    return check


def flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def text(value: Any) -> str | None:
    return None if isinstance(value, str) else "a string"


def counts(low: int = 0, high: int = MAX_LAYERS) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, list) and len(value) <= MAX_LAYERS
        ok = ok and all(not isinstance(v, bool) and isinstance(v, int) and low <= v <= high for v in value)
        return None if ok else f"a list of whole numbers from {low:,} to {high:,}"

    return check


def words(*allowed: str) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, list) and len(value) <= MAX_LAYERS and all(v in allowed for v in value)
        return None if ok else f"a list of {', '.join(repr(a) for a in allowed)}"

    return check


LAYERS = count(1, MAX_LAYERS)
SIZE = count()
SIZE_OR_ZERO = count(0)
LAYER_INDEX = count(0, MAX_LAYERS)

# Every field a reader uses, by name (Hugging Face's names mean the same in every family).
FIELDS: dict[str, Check] = {
    "num_hidden_layers": LAYERS,
    "n_layer": LAYERS,
    "hidden_size": SIZE,
    "n_embd": SIZE,
    "n_embed": SIZE,
    "intermediate_size": SIZE,
    "ffn_hidden_size": SIZE,
    "n_inner": SIZE,
    "num_attention_heads": SIZE,
    "n_head": SIZE,
    "num_key_value_heads": SIZE,
    "num_kv_heads": SIZE,
    "head_dim": SIZE,
    "vocab_size": SIZE,
    "max_position_embeddings": count(1, MAX_CONTEXT),
    "n_positions": count(1, MAX_CONTEXT),
    "tie_word_embeddings": flag,
    "attention_bias": flag,
    "mlp_bias": flag,
    "qkv_bias": flag,
    "bias": flag,
    "multi_query": flag,
    "new_decoder_architecture": flag,
    "parallel_attn": flag,
    "num_ln_in_parallel_attn": count(1, 2),
    "sliding_window": SIZE,
    "use_sliding_window": flag,
    "max_window_layers": LAYER_INDEX,
    "sliding_window_pattern": LAYERS,
    "use_bidirectional_attention": flag,
    "layer_types": words("full_attention", "sliding_attention"),
    "num_local_experts": SIZE,
    "num_experts": SIZE,
    "n_routed_experts": SIZE,
    "num_experts_per_tok": SIZE,
    "moe_intermediate_size": SIZE,
    "shared_expert_intermediate_size": count(0),  # 0: none (Qwen3-Coder-480B writes it; qwen3_moe ignores it)
    "n_shared_experts": SIZE,
    "decoder_sparse_step": LAYERS,
    "mlp_only_layers": counts(0, MAX_LAYERS),
    "first_k_dense_replace": LAYER_INDEX,
    "kv_lora_rank": SIZE,
    "q_lora_rank": SIZE,
    "qk_rope_head_dim": SIZE,
    "qk_nope_head_dim": SIZE,
    "v_head_dim": SIZE,
    "num_nextn_predict_layers": LAYER_INDEX,
    "torch_dtype": text,
    "dtype": text,
    "_name_or_path": text,
}


def problem(config: dict[str, Any], family_fields: dict[str, Check] | None = None) -> str | None:
    """The first field of ``config`` that does not hold what it should (by :data:`FIELDS` and the family's
    own checks), as one phrase; None when all do."""
    for key, check in {**FIELDS, **(family_fields or {})}.items():
        value = config.get(key)
        if value is not None and (expected := check(value)) is not None:
            return f"field {key!r} is {_show(value)}, not {expected}"
    return None


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
