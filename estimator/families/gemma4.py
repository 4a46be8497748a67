"""Gemma 4 (``gemma4_text``, and the language model of the ``gemma4`` wrapper): sliding and global layers
with their own head sizes, shared KV, keys as values, per-layer embeddings. Every parameter transformers
5.24's ``Gemma4TextModel`` builds:

- Per layer: q_proj (d -> H d_h), q_norm (d_h), o_proj; on layers that keep their own cache k_proj (d -> K d_h),
  k_norm (d_h) and, unless the layer is global with ``attention_k_eq_v``, v_proj (the keys serve as values
  then; the cache still holds both); ``v_norm`` has no scale. Biases from ``attention_bias``. Sliding layers
  use ``head_dim`` and ``num_key_value_heads``; global layers (``full_attention``) their own head size
  (``global_head_dim``, 512 by default) and, with ``attention_k_eq_v``, ``num_global_key_value_heads``
  (transformers' ``__post_init__`` writes both into ``per_layer_config``; a config saved by 5.24 carries that).
- The last ``num_kv_shared_layers`` S layers reuse the cache of the last earlier layer of the same type and
  build no k or v projection; their MLP is twice as wide with ``use_double_wide_mlp``. MLP gate, up
  (d -> F) and down; four RMSNorms of d. Per-layer input (p = ``hidden_size_per_layer_input``, none when 0):
  ``per_layer_input_gate`` (d -> p), ``per_layer_projection`` (p -> d), ``post_per_layer_input_norm`` (d).
- Outside the layers: ``embed_tokens`` (V × d); with p: ``embed_tokens_per_layer`` (V_p × L · p),
  ``per_layer_model_projection`` (d -> L · p, an ``nn.Linear``, carried by layer 0's group) and
  ``per_layer_projection_norm`` (p); ``norm`` (d); the head tied by default.

Sliding layers keep W − 1 tokens in transformers; shared layers cache nothing. The last layer is always global
(``__post_init__`` forces it, noted). With ``enable_moe_block`` every layer also holds ``num_experts`` experts of
``moe_intermediate_size`` (fused ``experts.gate_up_proj`` and ``down_proj``), top ``top_k_experts``, beside its dense
MLP: the router ``router.proj`` (an ``nn.Linear`` d -> E), its ``scale`` (d) and ``per_expert_scale`` (E), and
three more RMSNorms of d. Not modelled, refused in one line: ``use_bidirectional_attention`` "all" (a halved
window, no causal cache) and any other ``per_layer_config`` entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from estimator.errors import EstimatorError
from estimator.families import Family, Reader
from estimator.families.conventions import Conventions, PeftConventions
from estimator.families.named_experts import NamedMoE, named_moe
from estimator.families.schema import LAYER_INDEX, SIZE, SIZE_OR_ZERO, count, flag, words
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import gated_mlp, grouped, output_head, rms_norms, roles

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS = {  # Gemma4TextConfig's defaults for absent keys
    "vocab_size": 262144,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 30,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "max_position_embeddings": 131072,
    "sliding_window": 512,
    "vocab_size_per_layer_input": 262144,
    "hidden_size_per_layer_input": 256,
    "num_kv_shared_layers": 0,
    "global_head_dim": 512,  # read by __post_init__ only
}
OWN = ("vocab_size_per_layer_input", "hidden_size_per_layer_input", "attention_k_eq_v", "use_double_wide_mlp")
SLIDING, FULL = "sliding_attention", "full_attention"

FIELDS = {
    "vocab_size_per_layer_input": SIZE,
    "hidden_size_per_layer_input": SIZE_OR_ZERO,
    "num_kv_shared_layers": LAYER_INDEX,
    "layer_types": words(FULL, SLIDING),
    "global_head_dim": SIZE,
    "num_global_key_value_heads": count(),
    "attention_k_eq_v": flag,
    "use_double_wide_mlp": flag,
    "enable_moe_block": flag,
    "use_bidirectional_attention": lambda value: None if value in ("all", "vision") else "'all', 'vision' or null",
    "top_k_experts": SIZE,
    "per_layer_config": lambda value: None if isinstance(value, dict) else "an object (per-layer overrides) or null",
}


def _types(r: Reader, n: int) -> list[str]:
    """layer_types, else five sliding layers to one global; the last layer global whatever is given."""
    types = list(r.config.get("layer_types") or [FULL if (i + 1) % 6 == 0 else SLIDING for i in range(n)])
    if len(types) != n:
        raise EstimatorError(f"{r.path}: layer_types has {len(types)} entries for {n} layers; fix the config.json")
    if types and types[-1] != FULL:
        r.note("the last layer is full_attention: transformers forces it so, whatever layer_types says")
        types[-1] = FULL
    return types


def _global_shape(r: Reader, types: list[str], kv: int) -> tuple[int, int]:
    """(head_dim, KV heads) of the global layers: from per_layer_config where given, else from __post_init__'s
    global_head_dim and, with attention_k_eq_v, num_global_key_value_heads."""
    k_eq_v = r.get("attention_k_eq_v", False)
    per_layer = r.config.get("per_layer_config")
    if per_layer is None:
        head = r.field("global_head_dim", _DEFAULTS)
        heads = r.config.get("num_global_key_value_heads") if k_eq_v else None
        return head, kv if heads is None else heads
    if per_layer == {}:  # no overrides: the global layers take head_dim and num_key_value_heads too
        return r.field("head_dim", _DEFAULTS), kv
    full = {str(i) for i, t in enumerate(types) if t == FULL}
    values = list(per_layer.values()) if isinstance(per_layer, dict) else []
    fine = isinstance(per_layer, dict) and set(per_layer) == full and all(v == values[0] for v in values)
    fine = fine and isinstance(values[0], dict) and set(values[0]) <= {"head_dim", "num_key_value_heads"}
    shape = values[0] if fine else {}
    if not fine or SIZE(shape.get("head_dim")) or SIZE(shape.get("num_key_value_heads", kv)):
        raise EstimatorError(
            f"{r.path}: per_layer_config is {str(per_layer)[:60]}; modelled: none, or the same head_dim (and "
            f"num_key_value_heads) on every full_attention layer, as transformers writes it; fix the config.json"
        )
    return shape["head_dim"], shape.get("num_key_value_heads", kv)


def _shared(r: Reader, types: list[str]) -> int:
    shared = r.field("num_kv_shared_layers", _DEFAULTS)
    first = len(types) - shared
    if shared and shared != len(types) and (first < 0 or set(types[:first]) != set(types)):
        raise EstimatorError(
            f"{r.path}: the last {shared} layers share the cache of earlier layers of their type, but "
            f"{'there are too few layers' if first < 0 else 'some type has no earlier layer'}; fix the config.json"
        )
    if shared == len(types):
        raise EstimatorError(f"{r.path}: num_kv_shared_layers is every layer: no layer keeps a cache; fix it")
    return cast(int, shared)


def _experts(r: Reader, n: int) -> dict[str, Any]:
    """With ``enable_moe_block``: every layer's experts (the config class has no defaults for them)."""
    if not r.get("enable_moe_block", False):
        return {}
    return {
        "n_routed_experts": r.need("num_experts"),
        "num_experts_per_tok": r.need("top_k_experts"),
        "moe_intermediate_size": r.need("moe_intermediate_size"),
        "mlp_layer_types": ("sparse",) * n,
    }


def _refuse_unmodelled(r: Reader) -> None:
    if r.config.get("use_bidirectional_attention") == "all":
        raise EstimatorError(
            f"{r.path}: use_bidirectional_attention is 'all' (no causal cache, a halved window): not modelled; "
            f"set it to null or 'vision'"
        )


def read(r: Reader) -> dict[str, Any]:
    _refuse_unmodelled(r)
    n = r.field("num_hidden_layers", _DEFAULTS)
    types = _types(r, n)
    kv = r.field("num_key_value_heads", _DEFAULTS)
    global_head, global_kv = _global_shape(r, types, kv)
    own = tuple((key, r.field(key, {**_DEFAULTS, "attention_k_eq_v": False, "use_double_wide_mlp": False}))
                for key in OWN)  # fmt: skip
    return {
        "num_hidden_layers": n,
        "hidden_size": r.field("hidden_size", _DEFAULTS),
        "intermediate_size": r.field("intermediate_size", _DEFAULTS),
        "num_attention_heads": r.field("num_attention_heads", _DEFAULTS),
        "num_key_value_heads": kv,
        "head_dim": r.field("head_dim", _DEFAULTS),
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("max_position_embeddings", _DEFAULTS),
        "tie_word_embeddings": r.get("tie_word_embeddings", True),
        "attention_bias": r.get("attention_bias", False),
        "sliding_window": r.field("sliding_window", _DEFAULTS) if SLIDING in types else None,
        "layer_types": tuple(types),
        "num_kv_shared_layers": _shared(r, types),
        "family_fields": (*own, ("global_head_dim", global_head), ("num_global_key_value_heads", global_kv)),
        **_experts(r, n),
    }


def _attention(spec: ModelSpec, layer_type: str, stores: bool) -> tuple[Attention, tuple[LinearMap, ...], int]:
    """The layer's attention (its own heads and head size), its maps and its head size."""
    d, h, bias = spec.hidden_size, spec.attention_heads, spec.attention_bias
    full = layer_type == FULL
    head = spec.option("global_head_dim") if full else spec.attention_head_dim
    kv = spec.option("num_global_key_value_heads") if full else spec.kv_heads
    window = None if full else spec.sliding_window
    k_is_v = full and bool(spec.option("attention_k_eq_v"))
    own: tuple[LinearMap, ...] = (LinearMap("self_attn.k_proj", d, kv * head, bias, roles("k"), "attention"),)
    own += () if k_is_v else (LinearMap("self_attn.v_proj", d, kv * head, bias, roles("v"), "attention"),)
    maps = (
        LinearMap("self_attn.q_proj", d, h * head, bias, roles("q"), "attention"),
        *(own if stores else ()),
        LinearMap("self_attn.o_proj", h * head, d, bias, roles("o"), "attention"),
    )
    return Attention(h, kv, head, window, stores_kv=stores), maps, head


def _moe(spec: ModelSpec) -> NamedMoE:
    """The experts beside the dense MLP: fused ``experts.gate_up_proj`` / ``down_proj`` and the router
    ``router.proj``, an ``nn.Linear`` (d -> E) that peft's all-linear adapts."""
    return named_moe(
        spec,
        prefix="experts",
        router="router.proj",
        router_linear=True,
        renormalised=True,
        fused_prefix="experts",
        fused_router="router.proj",
        fused_router_linear=True,
    )


def _moe_tensors(spec: ModelSpec) -> tuple[ParamTensor, ...]:
    """The router's scale (d) and per-expert scale (E), and the MoE block's three RMSNorms of d (the router's own
    norm has no scale)."""
    d = spec.hidden_size
    names = ("post_feedforward_layernorm_1", "post_feedforward_layernorm_2", "pre_feedforward_layernorm_2")
    return (
        ParamTensor("router.scale", d, "mlp"),
        ParamTensor("router.per_expert_scale", spec.n_routed_experts or 0, "mlp"),
        *rms_norms(d, names),
    )


def build(spec: ModelSpec) -> Layout:
    """One group per (attention type, own or shared cache, first layer) kind of layer. Defaults at d 2,304 (a
    sliding layer keeping its cache): 2304 · 2048 · 2 + 2 · 2304 · 1024 + 3 · 2304 · 9216 + 2 · 2304 · 256 +
    5 · 2304 + 2 · 256 = 79,900,160."""
    d, n, shared = spec.hidden_size, spec.num_hidden_layers, spec.num_kv_shared_layers or 0
    p = spec.option("hidden_size_per_layer_input")
    double = bool(spec.option("use_double_wide_mlp"))

    def group(kind: Hashable, layers: int) -> LayerGroup:
        layer_type, stores, first = cast(tuple[str, bool, bool], kind)
        mixer, attention, head = _attention(spec, layer_type, stores)
        width = spec.mlp_width * (2 if double and not stores else 1)
        per_layer = (
            LinearMap("per_layer_input_gate", d, p, False, roles("gate"), "mlp"),
            LinearMap("per_layer_projection", p, d, False, roles("down"), "mlp"),
        )
        model_map = LinearMap("per_layer_model_projection", d, n * p, False, roles("up"), "mlp")
        maps: tuple[LinearMap | MoE, ...] = (*attention, *gated_mlp("mlp", d, width), *(per_layer if p else ()))
        maps += (model_map,) if p and first else ()
        names = ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm"]
        names += ["post_feedforward_layernorm", *(["post_per_layer_input_norm"] if p else [])]
        heads = ("self_attn.q_norm", "self_attn.k_norm") if stores else ("self_attn.q_norm",)
        norms = (*rms_norms(d, names), *rms_norms(head, heads))
        if spec.is_moe:
            maps, norms = (*maps, _moe(spec)), (*norms, *_moe_tensors(spec))  # experts beside the dense MLP
        return LayerGroup(layers, mixer, maps, norms)

    types = spec.layer_types or (FULL,) * n
    kinds = [(types[i], i < n - shared, i == 0) for i in range(n)]
    per_layer_tensors = (
        ParamTensor("embed_tokens_per_layer", spec.option("vocab_size_per_layer_input") * n * p, "embedding"),
        ParamTensor("per_layer_projection_norm", p, "norm"),
    )
    tensors = (
        ParamTensor("embed_tokens", spec.vocab_size * d, "embedding"),
        *(per_layer_tensors if p else ()),
        ParamTensor("norm", d, "norm"),
        *output_head(spec.vocab_size, d, spec.tie_word_embeddings),
    )
    return Layout(grouped(kinds, group), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.mlp_width,
        "num_attention_heads": spec.attention_heads,
        "num_key_value_heads": spec.kv_heads,
        "head_dim": spec.head_dim,
        "max_position_embeddings": spec.max_position_embeddings,
        "attention_bias": spec.attention_bias,
        "sliding_window": spec.sliding_window or _DEFAULTS["sliding_window"],
        "layer_types": list(spec.layer_types or ()),
        "num_kv_shared_layers": spec.num_kv_shared_layers or 0,
        "global_head_dim": spec.option("global_head_dim"),
        "num_global_key_value_heads": spec.option("num_global_key_value_heads"),
        **{key: spec.option(key) for key in OWN},
        **(
            {
                "enable_moe_block": True,
                "num_experts": spec.n_routed_experts,
                "top_k_experts": spec.num_experts_per_tok,
                "moe_intermediate_size": spec.moe_intermediate_size,
            }
            if spec.is_moe
            else {}
        ),
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """A per-layer vocabulary of 128 and per-layer width 32 where the model has them, and global heads no
    larger than the twin's: small enough to build on the CPU."""
    own = dict(spec.family_fields)
    if own.get("hidden_size_per_layer_input"):
        own.update(vocab_size_per_layer_input=128, hidden_size_per_layer_input=32)
    own["global_head_dim"] = min(int(spec.option("global_head_dim")), 64)
    heads = update.get("num_key_value_heads", spec.num_key_value_heads)
    if not own.get("attention_k_eq_v"):
        own["num_global_key_value_heads"] = heads
    update.update(family_fields=tuple(own.items()))
    return update


def peft_prefix(spec: ModelSpec, virtual_tokens: int) -> tuple[int, str] | None:
    """peft provisions every layer's prefix for the largest head (its global layers', where wider): n · 2 · L · K · d_h
    at that head, skipping layers of another shape when it injects it."""
    layers = spec.num_hidden_layers
    wider = int(spec.option("global_head_dim")) > spec.attention_head_dim
    head = int(spec.option("global_head_dim")) if wider else spec.attention_head_dim
    kv = int(spec.option("num_global_key_value_heads")) if wider else spec.kv_heads
    why = (
        f"peft sizes a Gemma 4 prefix for all {layers} layers at the largest head ({kv} KV heads of {head}), "
        "skipping layers of another shape when it injects it; the estimate is the cache of n tokens"
    )
    return virtual_tokens * 2 * layers * kv * head, why


# peft provisions every layer's prefix for the largest head; gemma4 wraps it
CONVENTIONS = {"gemma4_text": Conventions(peft=PeftConventions(prefix=peft_prefix), wrappers=("gemma4",))}

FAMILIES = [Family(("gemma4_text",), read, build, to_config, fields=FIELDS, twin=twin, conventions=CONVENTIONS)]
