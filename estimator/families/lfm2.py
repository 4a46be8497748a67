"""LFM2 (Liquid AI): gated short convolutions mixed with grouped-query attention layers.

What transformers' ``Lfm2DecoderLayer`` builds, by ``layer_types`` ("conv" or "full_attention"; absent,
the layers in ``full_attn_idxs`` attend, all of them if that is absent too):

- ``conv`` (``Lfm2ShortConv``): ``in_proj`` (d -> 3 d: the gates B, C and the input x), a depthwise
  ``conv`` of kernel L = ``conv_L_cache`` over d channels, ``out_proj`` (d -> d), biases on all three
  from ``conv_bias``. It keeps a convolution state of d channels × L columns and no recurrent state.
- ``full_attention`` (``Lfm2Attention``): q_proj (d -> H d_h), k_proj and v_proj (d -> K d_h),
  ``out_proj`` (H d_h -> d), no biases; RMSNorm on q and k per head (``q_layernorm``, ``k_layernorm``).
  head_dim is hidden_size / heads unless the config gives it.
- every layer: ``operator_norm`` and ``ffn_norm`` (RMSNorm, d each) and a SwiGLU ``feed_forward`` w1, w3
  (d -> F) and w2 (F -> d), where F comes from ``block_ff_dim`` (else ``intermediate_size``) and, with
  ``block_auto_adjust_ff_dim``, F = ⌈int(m · int(2 F / 3)) / M⌉ · M (m = ``block_ffn_dim_multiplier``,
  M = ``block_multiple_of``).

The model ends in ``embedding_norm`` (d); embeddings are tied by default (``tie_embedding`` overrides
``tie_word_embeddings`` where both are given). LFM2-1.2B: F = 256 · ⌈int(1.0 · int(2 · 12,288 / 3)) / 256⌉
= 8,192.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader, attention_config, head_dim_or_derived
from estimator.families.schema import count, counts, flag, words
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import attention_maps, grouped, output_head, rms_norms, roles
from estimator.layout.recurrent import RecurrentState

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.specs import ModelSpec

_DEFAULTS: dict[str, Any] = {  # Lfm2Config's defaults for absent keys
    "vocab_size": 65536,
    "intermediate_size": 12288,
    "num_key_value_heads": 8,
    "max_position_embeddings": 128000,
    "conv_L_cache": 3,
    "block_multiple_of": 256,
}


def _multiplier(value: Any) -> str | None:
    ok = not isinstance(value, bool) and isinstance(value, int | float) and 0 < value <= 1024
    return None if ok else "a number above 0, at most 1,024"


FIELDS = {
    "layer_types": words("conv", "full_attention"),
    "full_attn_idxs": counts(),
    "block_ff_dim": count(),
    "block_auto_adjust_ff_dim": flag,
    "block_ffn_dim_multiplier": _multiplier,
    "block_multiple_of": count(1, 10**6),
    "conv_L_cache": count(1, 1024),
    "conv_bias": flag,
    "tie_embedding": flag,
}


def _default(r: Reader, key: str) -> Any:
    return r.get(key, _DEFAULTS[key], f"{_DEFAULTS[key]:,} (Lfm2Config default)")


def ffn_width(r: Reader) -> Any:
    """The feed-forward width Lfm2MLP builds (LFM2-1.2B: 12,288 -> 8,192; LFM2-350M: 6,656 -> 4,608)."""
    width = r.get("block_ff_dim", None) or _default(r, "intermediate_size")
    if not r.get("block_auto_adjust_ff_dim", True, "true (Lfm2Config default): the width is adjusted"):
        return width
    if not isinstance(width, int):
        return None
    adjusted = int(2 * width / 3)
    multiplier = r.get("block_ffn_dim_multiplier", 1.0, "1.0 (Lfm2Config default)")
    multiple = _default(r, "block_multiple_of")
    adjusted = multiple * -(-int(multiplier * adjusted) // multiple)
    r.note(f"feed-forward width {adjusted:,}, adjusted from {width:,} (block_auto_adjust_ff_dim, as Lfm2MLP)")
    return adjusted


def _layer_types(r: Reader, n: Any) -> tuple[str, ...] | None:
    types = r.config.get("layer_types")
    if types is not None:
        return tuple(types)
    if not isinstance(n, int):
        return None
    full = r.get("full_attn_idxs", list(range(n)), "every layer attends (Lfm2Config default)")
    return tuple("full_attention" if i in full else "conv" for i in range(n))


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    n = r.need("num_hidden_layers")
    tied = r.get("tie_embedding", None)
    return {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": ffn_width(r),
        "num_attention_heads": heads,
        "num_key_value_heads": _default(r, "num_key_value_heads"),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": _default(r, "vocab_size"),
        "max_position_embeddings": _default(r, "max_position_embeddings"),
        "tie_word_embeddings": tied if tied is not None else r.get("tie_word_embeddings", True, "true (Lfm2Config)"),
        "layer_types": _layer_types(r, n),
        "conv_L_cache": _default(r, "conv_L_cache"),
        "conv_bias": r.get("conv_bias", False),
    }


def short_conv(spec: ModelSpec) -> RecurrentState:
    """The state of a conv layer: d channels × L, no recurrent state (LFM2-1.2B: 2,048 × 3)."""
    return RecurrentState("short convolution", spec.hidden_size, spec.need("conv_L_cache"), 0)


def build(spec: ModelSpec) -> Layout:
    """Two groups, conv layers and attention layers (LFM2-1.2B: 10 and 6), each with the SwiGLU block."""
    d, f, dh = spec.hidden_size, spec.mlp_width, spec.attention_head_dim
    bias = spec.conv_bias
    feed_forward = tuple(
        LinearMap(f"feed_forward.{name}", d_in, d_out, False, roles(role), "mlp")
        for name, role, d_in, d_out in (("w1", "gate", d, f), ("w3", "up", d, f), ("w2", "down", f, d))
    )
    norms = rms_norms(d, ("operator_norm", "ffn_norm"))
    q, k, v, o = attention_maps(d, spec.attention_heads * dh, spec.kv_heads * dh, False, False)
    conv = short_conv(spec)
    conv_tensors: tuple[ParamTensor, ...] = (ParamTensor("conv.conv", d * conv.conv_kernel, "recurrent"),)
    if bias:
        conv_tensors += (ParamTensor("conv.conv.bias", d, "recurrent"),)
    kinds = {
        "conv": (
            conv,
            (
                LinearMap("conv.in_proj", d, 3 * d, bias, roles("q", "k", "v"), "attention"),
                LinearMap("conv.out_proj", d, d, bias, roles("o"), "attention"),
            ),
            conv_tensors,
        ),
        "full_attention": (
            Attention(spec.attention_heads, spec.kv_heads, dh),
            (q, k, v, LinearMap("self_attn.out_proj", o.d_in, d, False, o.roles, "attention")),
            rms_norms(dh, ("self_attn.q_layernorm", "self_attn.k_layernorm")),
        ),
    }

    def group(kind: Hashable, layers: int) -> LayerGroup:
        mixer, maps, tensors = kinds[str(kind)]
        return LayerGroup(layers, mixer, (*maps, *feed_forward), (*tensors, *norms))

    outside = (ParamTensor("embed_tokens", spec.vocab_size * d, "embedding"), ParamTensor("embedding_norm", d, "norm"))
    types = spec.layer_types or ("full_attention",) * spec.num_hidden_layers
    return Layout(grouped(types, group), (*outside, *output_head(spec.vocab_size, d, spec.tie_word_embeddings)))


def to_config(spec: ModelSpec) -> dict[str, Any]:
    """The spec's own widths: the feed-forward width as built (no adjustment), layer_types explicit."""
    config = attention_config(spec)
    config.update(
        block_auto_adjust_ff_dim=False,
        layer_types=list(spec.layer_types or ()),
        conv_L_cache=spec.conv_L_cache,
        conv_bias=spec.conv_bias,
    )
    return config


FAMILIES = [Family(("lfm2",), read, build, to_config, fields=FIELDS)]
