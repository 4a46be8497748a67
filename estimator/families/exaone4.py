"""EXAONE 4.0 (``exaone4``): hybrid sliding/full attention, per-head QK RMSNorm, post-norms.

What transformers' ``Exaone4DecoderLayer`` builds per layer:

- ``self_attn``: q_proj (d -> H d_h), k_proj and v_proj (d -> K d_h), o_proj (H d_h -> d), no biases;
  ``q_norm`` and ``k_norm``: RMSNorm of d_h, shared by every head (d_h weights each).
- ``mlp``: gate_proj, up_proj, down_proj, no biases.
- post-norms only: ``post_attention_layernorm`` and ``post_feedforward_layernorm`` (d each).

Which layers slide is ``layer_types`` (the 32B lists 3 sliding layers to 1 full, window 4,096; the
1.2B has no window and 30 full layers). Without ``layer_types``, Exaone4Config derives them from an
integer ``sliding_window_pattern`` P (layer i full when (i + 1) % P == 0); a string pattern ("LLLG")
or a null window leaves transformers unable to derive them, so the reader asks for layer_types.
Full layers skip RoPE when there is a window (NoPE), which changes no count. Defaults: K = 32,
vocabulary 102,400, max_position_embeddings 2,048, untied embeddings, window 4,096, P = 4.

EXAONE 4.0 1.2B: 30 · (2,048² + 2 · 2,048 · 512 + 2,048² + 3 · 2,048 · 4,096 + 2 · 64 + 2 · 2,048)
+ 102,400 · 2,048 + 2,048 = 1,279,391,488 parameters (tied head).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, attention_config, head_dim_or_derived, windowed_attention_layout
from estimator.families.schema import MAX_LAYERS
from estimator.layout import Layout
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, rms_norms

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

WINDOW, PATTERN = 4096, 4  # Exaone4Config defaults


def pattern(value: Any) -> str | None:
    """``sliding_window_pattern``: a whole number of layers (0 as Exaone4Config writes it when sliding_window is
    null), or a string such as "LLLG"."""
    if isinstance(value, str) and len(value) <= MAX_LAYERS:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_LAYERS:
        return None
    return f"a whole number from 0 to {MAX_LAYERS:,} or a string such as 'LLLG'"


def _layer_types(r: Reader, n: Any, window: Any) -> Any:
    """The config's layer_types, else Exaone4Config's: sliding unless (i + 1) % P == 0."""
    if (types := r.config.get("layer_types")) is not None:
        return types
    every = r.get("sliding_window_pattern", PATTERN, f"{PATTERN} (Exaone4Config default)")
    if window is None or not isinstance(every, int) or every == 0:
        raise EstimatorError(
            f"{r.path}: config.json has no layer_types, and transformers cannot derive them from "
            f"sliding_window {window!r} and sliding_window_pattern {every!r}; give layer_types"
        )
    if not isinstance(n, int):
        return None
    r.note(f"config.json has no layer_types: every {every}th layer full, the others sliding (Exaone4Config)")
    return ["full_attention" if (i + 1) % every == 0 else "sliding_attention" for i in range(n)]


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    n = r.need("num_hidden_layers")
    window = r.get("sliding_window", WINDOW, f"{WINDOW:,} (Exaone4Config default)", null_is_default=False)
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": r.need("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", 32, "32 KV heads (Exaone4Config default)"),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.get("vocab_size", 102400, "102,400 (Exaone4Config default)"),
        "max_position_embeddings": r.get("max_position_embeddings", 2048, "2,048 (Exaone4Config default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
    }
    types = _layer_types(r, n, window)
    if types is not None and "sliding_attention" in types:
        fields.update(sliding_window=window, layer_types=tuple(types))
    return fields


def build(spec: ModelSpec) -> Layout:
    """One group per kind of layer (sliding, full), all with the same maps and norms."""
    d, head_dim = spec.hidden_size, spec.attention_head_dim
    maps = attention_maps(d, spec.attention_heads * head_dim, spec.kv_heads * head_dim, False, False)
    maps += gated_mlp("mlp", d, spec.mlp_width)
    norms = rms_norms(head_dim, ("self_attn.q_norm", "self_attn.k_norm"))
    norms += rms_norms(d, ("post_attention_layernorm", "post_feedforward_layernorm"))

    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return windowed_attention_layout(spec, maps, norms, tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        **attention_config(spec),
        "sliding_window": spec.sliding_window,
        "layer_types": list(spec.layer_types or ("full_attention",) * spec.num_hidden_layers),
    }


FAMILIES = [Family(("exaone4",), read, build, to_config, fields={"sliding_window_pattern": pattern})]
