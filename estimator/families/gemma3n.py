"""Gemma 3n (``gemma3n_text``, the language model of E2B and E4B): shared KV, AltUp, LAuReL, per-layer
embeddings. Every parameter transformers 5's ``Gemma3nTextModel`` builds:

- Per layer: q_proj, q_norm (head_dim), o_proj; k_proj, v_proj and k_norm only on layers that keep
  their own cache (``v_norm`` has no scale). The last ``num_kv_shared_layers`` S layers reuse the cache
  of the last earlier layer of the same type and build no k or v projection (transformers'
  ``kv_sharing_modes``). MLP gate, up (d -> F_i, ``intermediate_size`` one value or one per layer) and
  down; four RMSNorms of d. AltUp (A = ``altup_num_inputs``): ``correct_output_scale`` (d),
  ``correction_coefs`` (A -> A), ``prediction_coefs`` (A -> A²), ``modality_router`` (d -> A) and
  ``router_norm`` (d). LAuReL: ``linear_left`` (d -> R), ``linear_right`` (R -> d),
  ``post_laurel_norm`` (d). Per-layer input: ``per_layer_input_gate`` (d -> p), ``per_layer_projection``
  (p -> d), ``post_per_layer_input_norm`` (d).
- Outside the layers: ``embed_tokens`` (V × d), ``embed_tokens_per_layer`` (V_p × L · p),
  ``per_layer_model_projection`` (d -> L · p, an ``nn.Linear``), ``per_layer_projection_norm`` (p),
  A − 1 ``altup_projections`` and A − 1 ``altup_unembed_projections`` (d -> d each), ``norm`` (d); the
  output head is tied by default.

The model-level ``nn.Linear`` maps, which peft's all-linear adapts too, are carried by the group of
layer 0 (one copy), so that every fold over the groups counts them once. Sliding layers keep W − 1
tokens in transformers; shared layers cache nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from estimator.errors import EstimatorError
from estimator.families import Family, Reader
from estimator.families.conventions import Conventions
from estimator.families.schema import LAYER_INDEX, SIZE, count, counts, words
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import gated_mlp, grouped, output_head, rms_norms, roles

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.specs import ModelSpec

_DEFAULTS = {  # Gemma3nTextConfig's defaults for absent keys
    "vocab_size": 262400,
    "hidden_size": 2048,
    "num_hidden_layers": 35,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "max_position_embeddings": 32768,
    "sliding_window": 512,
    "vocab_size_per_layer_input": 262144,
    "hidden_size_per_layer_input": 256,
    "altup_num_inputs": 4,
    "num_kv_shared_layers": 15,
    "laurel_rank": 64,
}
OWN = ("vocab_size_per_layer_input", "hidden_size_per_layer_input", "altup_num_inputs", "laurel_rank")
SLIDING, FULL = "sliding_attention", "full_attention"


def _size_or_sizes(value: Any) -> str | None:
    """``intermediate_size``: one width, or one per layer."""
    return counts(1)(value) if isinstance(value, list) else count()(value)


FIELDS = {
    "intermediate_size": _size_or_sizes,
    "vocab_size_per_layer_input": SIZE,
    "hidden_size_per_layer_input": SIZE,
    "altup_num_inputs": count(2, 64),
    "laurel_rank": SIZE,
    "num_kv_shared_layers": LAYER_INDEX,
    "layer_types": words(FULL, SLIDING),
}


def _widths(r: Reader, n: int) -> tuple[int, str | None]:
    """The MLP width, and the per-layer widths as text where they differ (MatFormer slices)."""
    width = r.get("intermediate_size", 16384, "16,384 (config default)")
    if not isinstance(width, list):
        return width, None
    if len(width) != n:
        raise EstimatorError(
            f"{r.path}: intermediate_size has {len(width)} entries for {n} layers; fix the config.json"
        )
    return width[0], (",".join(str(w) for w in width) if len(set(width)) > 1 else None)


def _shared(r: Reader, types: list[str]) -> int:
    shared = r.field("num_kv_shared_layers", _DEFAULTS)
    first = len(types) - shared
    if shared and (first < 0 or set(types[:first]) != set(types)):
        raise EstimatorError(
            f"{r.path}: the last {shared} layers share the cache of earlier layers of their type, but "
            f"{'there are too few layers' if first < 0 else 'some type has no earlier layer'}; fix the config.json"
        )
    return cast(int, shared)


def read(r: Reader) -> dict[str, Any]:
    n = r.field("num_hidden_layers", _DEFAULTS)
    width, widths = _widths(r, n)
    types = r.config.get("layer_types") or [FULL if (i + 1) % 5 == 0 else SLIDING for i in range(n)]
    if len(types) != n:
        raise EstimatorError(f"{r.path}: layer_types has {len(types)} entries for {n} layers; fix the config.json")
    own = tuple((key, r.field(key, _DEFAULTS)) for key in OWN)
    return {
        "num_hidden_layers": n,
        "hidden_size": r.field("hidden_size", _DEFAULTS),
        "intermediate_size": width,
        "num_attention_heads": r.field("num_attention_heads", _DEFAULTS),
        "num_key_value_heads": r.field("num_key_value_heads", _DEFAULTS),
        "head_dim": r.field("head_dim", _DEFAULTS),
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("max_position_embeddings", _DEFAULTS),
        "tie_word_embeddings": r.get("tie_word_embeddings", True),
        "attention_bias": r.get("attention_bias", False),
        "sliding_window": r.field("sliding_window", _DEFAULTS) if SLIDING in types else None,
        "layer_types": tuple(types),
        "num_kv_shared_layers": _shared(r, types),
        "family_fields": (*own, *((("intermediate_sizes", widths),) if widths else ())),
    }


def _mlp_widths(spec: ModelSpec) -> list[int]:
    text = spec.option("intermediate_sizes")
    return [int(w) for w in text.split(",")] if text else [spec.mlp_width] * spec.num_hidden_layers


def _model_maps(spec: ModelSpec) -> tuple[LinearMap, ...]:
    """The ``nn.Linear`` maps outside the layers: per_layer_model_projection and the AltUp projections."""
    d, p, alt = spec.hidden_size, spec.option("hidden_size_per_layer_input"), spec.option("altup_num_inputs")
    maps = [LinearMap("per_layer_model_projection", d, spec.num_hidden_layers * p, False, roles("up"), "mlp")]
    for name in ("altup_projections", "altup_unembed_projections"):
        maps += [LinearMap(f"{name}.{i}", d, d, False, roles("up"), "mlp") for i in range(alt - 1)]
    return tuple(maps)


def _layer_maps(spec: ModelSpec, stores: bool, width: int) -> tuple[LinearMap, ...]:
    d, q_out, bias = spec.hidden_size, spec.attention_heads * spec.attention_head_dim, spec.attention_bias
    kv_out, p = spec.kv_heads * spec.attention_head_dim, spec.option("hidden_size_per_layer_input")
    alt, rank = spec.option("altup_num_inputs"), spec.option("laurel_rank")
    kv = (
        LinearMap("self_attn.k_proj", d, kv_out, bias, roles("k"), "attention"),
        LinearMap("self_attn.v_proj", d, kv_out, bias, roles("v"), "attention"),
    )
    return (
        LinearMap("self_attn.q_proj", d, q_out, bias, roles("q"), "attention"),
        *(kv if stores else ()),
        LinearMap("self_attn.o_proj", q_out, d, bias, roles("o"), "attention"),
        *gated_mlp("mlp", d, width),
        LinearMap("altup.correction_coefs", alt, alt, False, roles("router"), "mlp"),
        LinearMap("altup.prediction_coefs", alt, alt * alt, False, roles("router"), "mlp"),
        LinearMap("altup.modality_router", d, alt, False, roles("router"), "mlp"),
        LinearMap("laurel.linear_left", d, rank, False, roles("up"), "mlp"),
        LinearMap("laurel.linear_right", rank, d, False, roles("down"), "mlp"),
        LinearMap("per_layer_input_gate", d, p, False, roles("gate"), "mlp"),
        LinearMap("per_layer_projection", p, d, False, roles("down"), "mlp"),
    )


def _norms(spec: ModelSpec, stores: bool) -> tuple[ParamTensor, ...]:
    d, head = spec.hidden_size, spec.attention_head_dim
    names: tuple[str, ...] = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm")
    names += ("post_feedforward_layernorm", "altup.correct_output_scale", "altup.router_norm")
    names += ("laurel.post_laurel_norm", "post_per_layer_input_norm")
    heads = ("self_attn.q_norm", "self_attn.k_norm") if stores else ("self_attn.q_norm",)
    return (*rms_norms(d, names), *rms_norms(head, heads))


def build(spec: ModelSpec) -> Layout:
    """One group per (attention type, own or shared cache, MLP width) kind of layer, layer 0 apart with
    the model-level maps. Gemma 3n E2B's own-cache layer: 2048 · (2048 + 512 + 512 + 2048) + 3 · 2048 ·
    8192 + 4 · 4 + 4 · 16 + 2048 · 4 + 2 · 2048 · 64 + 2 · 2048 · 256 + 8 · 2048 + 2 · 256 = 62,153,296."""
    d, n, shared = spec.hidden_size, spec.num_hidden_layers, spec.num_kv_shared_layers or 0
    types, widths = spec.layer_types or (SLIDING,) * n, _mlp_widths(spec)

    def group(kind: Hashable, layers: int) -> LayerGroup:
        layer_type, stores, width, first = cast(tuple[str, bool, int, bool], kind)
        window = spec.sliding_window if layer_type == SLIDING else None
        mixer = Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim, window, stores_kv=stores)
        maps = _layer_maps(spec, stores, width) + (_model_maps(spec) if first else ())
        return LayerGroup(layers, mixer, maps, _norms(spec, stores))

    kinds = [(types[i], i < n - shared, widths[i], i == 0) for i in range(n)]
    p, vocab_p = spec.option("hidden_size_per_layer_input"), spec.option("vocab_size_per_layer_input")
    tensors = (
        ParamTensor("embed_tokens", spec.vocab_size * d, "embedding"),
        ParamTensor("embed_tokens_per_layer", vocab_p * n * p, "embedding"),
        ParamTensor("per_layer_projection_norm", p, "norm"),
        ParamTensor("norm", d, "norm"),
        *output_head(spec.vocab_size, d, spec.tie_word_embeddings),
    )
    return Layout(grouped(kinds, group), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    widths = _mlp_widths(spec)
    return {
        "hidden_size": spec.hidden_size,
        "intermediate_size": widths if len(set(widths)) > 1 else spec.mlp_width,
        "num_attention_heads": spec.attention_heads,
        "num_key_value_heads": spec.kv_heads,
        "head_dim": spec.head_dim,
        "max_position_embeddings": spec.max_position_embeddings,
        "attention_bias": spec.attention_bias,
        "sliding_window": spec.sliding_window or _DEFAULTS["sliding_window"],
        "layer_types": list(spec.layer_types or ()),
        "num_kv_shared_layers": spec.num_kv_shared_layers or 0,
        **{key: spec.option(key) for key in OWN},
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """One layer of each type, each keeping its own cache (a shared layer needs an earlier one of its type:
    a third layer), MLPs of the generic twin width, a per-layer vocabulary of 128 and per-layer width 32:
    small enough to build on the CPU."""
    own = {key: value for key, value in spec.family_fields if key != "intermediate_sizes"}
    own.update(vocab_size_per_layer_input=128, hidden_size_per_layer_input=32)
    update.update(num_kv_shared_layers=0, family_fields=tuple(own.items()))
    return update


# the multimodal gemma3n wraps it
CONVENTIONS = {"gemma3n_text": Conventions(wrappers=("gemma3n",))}

FAMILIES = [Family(("gemma3n_text",), read, build, to_config, fields=FIELDS, twin=twin, conventions=CONVENTIONS)]
