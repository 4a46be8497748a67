"""Llama 4 (Scout, Maverick): chunked attention on RoPE layers, global NoPE layers, interleaved experts.

What transformers 5's ``Llama4TextModel`` builds, layer by layer:

- Attention: q, k, v, o (biases from ``attention_bias``). ``no_rope_layers[i]`` 1 means a RoPE layer,
  which attends within its chunk of ``attention_chunk_size`` C (its cache holds at most C − 1 tokens,
  as a window does); 0 a NoPE layer with global attention. Absent, every ``no_rope_layer_interval``-th
  layer (default 4) is NoPE. ``layer_types`` in the config overrides the derived pattern. The QK norm
  (``use_qk_norm``) is an L2 norm and attention temperature tuning a scale: neither has parameters.
- MLP: the layers in ``moe_layers`` (default every ``interleave_moe_layer_step``-th, from step − 1)
  hold ``num_local_experts`` experts of width ``intermediate_size`` (fused ``feed_forward.experts
  .gate_up_proj`` E × d × 2F and ``down_proj`` E × F × d), a router ``feed_forward.router`` (an
  ``nn.Linear`` d -> E) and an ungated shared expert of width ``intermediate_size``; the other layers
  a dense MLP of width ``intermediate_size_mlp``.

peft 0.21 has no conversion for Llama 4's experts (``llama4`` is not in transformers' conversion
table), so an all-linear LoRA adapts the router (an ``nn.Linear`` subclass) and leaves the fused
experts alone. The spec keeps ``intermediate_size`` as the dense MLP width (``intermediate_size_mlp``)
and ``moe_intermediate_size`` as the expert and shared-expert width (the config's ``intermediate_size``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from estimator.errors import EstimatorError
from estimator.families import Family, Reader
from estimator.families.conventions import Conventions
from estimator.families.moe import GATED_NAMES, expert_shape
from estimator.families.schema import LAYERS, SIZE, counts, flag, words
from estimator.layout import Attention, LayerGroup, Layout, LinearMap
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, grouped, rms_norms, roles
from estimator.layout.moe import MoE

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.specs import ModelSpec

_DEFAULTS = {  # Llama4TextConfig's defaults for absent keys
    "vocab_size": 202048,
    "hidden_size": 5120,
    "intermediate_size": 8192,
    "intermediate_size_mlp": 16384,
    "num_hidden_layers": 48,
    "num_attention_heads": 40,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "num_local_experts": 16,
    "num_experts_per_tok": 1,
}
CHUNKED, FULL = "chunked_attention", "full_attention"

FIELDS = {
    "intermediate_size_mlp": SIZE,
    "interleave_moe_layer_step": LAYERS,
    "moe_layers": counts(),
    "no_rope_layers": counts(0, 1),
    "no_rope_layer_interval": LAYERS,
    "attention_chunk_size": SIZE,
    "use_qk_norm": flag,
    "layer_types": words(FULL, CHUNKED),
}


@dataclass(frozen=True)
class Llama4Experts(MoE):
    """Llama 4's routed experts: the router is an ``nn.Linear`` (``feed_forward.router``) in both layouts,
    and the fused tensors live under ``feed_forward.experts``."""

    def linears(self, fused: bool) -> tuple[LinearMap, ...]:
        if not fused:
            return super().linears(fused)
        d, f, e = self.d_model, self.width, self.experts
        return (
            LinearMap(self.router, d, e, False, roles("router"), "mlp"),
            LinearMap(f"{self.prefix}.gate_up_proj", d, 2 * f, False, roles("gate", "up"), "mlp", e, module=False,
                      expert=True),
            LinearMap(f"{self.prefix}.down_proj", f, d, False, roles("down"), "mlp", e, module=False, expert=True),
        )  # fmt: skip


def _layer_types(r: Reader, n: int, chunk: Any) -> list[str]:
    """``layer_types`` from the config, else chunked on RoPE layers (``no_rope_layers``, or every
    ``no_rope_layer_interval``-th layer NoPE) when a chunk size is set, as Llama4TextConfig derives it."""
    given = r.config.get("layer_types")
    if given:
        if len(given) != n:
            raise EstimatorError(f"{r.path}: layer_types has {len(given)} entries for {n} layers; fix the config.json")
        return list(given)
    rope = r.config.get("no_rope_layers")
    if not rope:
        interval = r.get("no_rope_layer_interval", 4, "4: every fourth layer is NoPE (config default)")
        rope = [int((i + 1) % interval != 0) for i in range(n)]
    elif len(rope) < n:
        raise EstimatorError(f"{r.path}: no_rope_layers has {len(rope)} entries for {n} layers; fix the config.json")
    return [CHUNKED if rope[i] and chunk is not None else FULL for i in range(n)]


def _mlp_types(r: Reader, n: int) -> tuple[str, ...]:
    moe = r.config.get("moe_layers")
    if moe is None:
        step = r.get("interleave_moe_layer_step", 1, "1: every layer holds experts (config default)")
        moe = range(step - 1, n, step)
    sparse = set(moe)
    return tuple("sparse" if i in sparse else "dense" for i in range(n))


def read(r: Reader) -> dict[str, Any]:
    n = r.field("num_hidden_layers", _DEFAULTS)
    hidden, heads = r.field("hidden_size", _DEFAULTS), r.field("num_attention_heads", _DEFAULTS)
    head_dim = r.get("head_dim", 128, "128 (Llama4TextConfig default)", null_is_default=False)
    if head_dim is None:
        head_dim = hidden // heads
        r.note("head_dim is null: hidden_size / num_attention_heads, as transformers does")
    chunk = r.get("attention_chunk_size", 8192, "8,192 (config default)", null_is_default=False)
    types = _layer_types(r, n, chunk)
    experts = r.field("num_local_experts", _DEFAULTS)
    return {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": r.field("intermediate_size_mlp", _DEFAULTS),
        "num_attention_heads": heads,
        "num_key_value_heads": r.field("num_key_value_heads", _DEFAULTS),
        "head_dim": head_dim,
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("max_position_embeddings", _DEFAULTS),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "layer_types": tuple(types),
        "attention_chunk_size": chunk if CHUNKED in types else None,
        "n_routed_experts": experts,
        "num_experts_per_tok": r.field("num_experts_per_tok", _DEFAULTS),
        "moe_intermediate_size": r.field("intermediate_size", _DEFAULTS),
        "mlp_layer_types": _mlp_types(r, n),
    }


def _experts(spec: ModelSpec) -> Llama4Experts:
    return Llama4Experts(
        **expert_shape(spec),
        prefix="feed_forward.experts",
        names=GATED_NAMES,
        router="feed_forward.router",
    )


def build(spec: ModelSpec) -> Layout:
    """One group per (chunked or global attention, dense or sparse MLP) kind of layer.

    Per layer: q, k, v, o; two RMSNorms (d each); a dense MLP (3 · d · F_mlp) or the router (d · E),
    E experts (3 · d · F each) and the shared expert (3 · d · F). Llama 4 Scout's sparse layer:
    5120 · (5120 + 1024 + 1024 + 5120) + 5120 · 16 + 17 · 3 · 5120 · 8192 + 2 · 5120 = 2,202,101,760.
    """
    d = spec.hidden_size
    q_out, kv_out = spec.attention_heads * spec.attention_head_dim, spec.kv_heads * spec.attention_head_dim
    attention = attention_maps(d, q_out, kv_out, spec.attention_bias, spec.attention_bias)
    mlps: dict[str, tuple[LinearMap | MoE, ...]] = {
        "dense": gated_mlp("feed_forward", d, spec.mlp_width),
        "sparse": (_experts(spec), *gated_mlp("feed_forward.shared_expert", d, spec.moe_intermediate_size or 0)),
    }
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))

    def group(kind: Hashable, layers: int) -> LayerGroup:
        layer_type, mlp = cast(tuple[str, str], kind)
        chunk = spec.attention_chunk_size if layer_type == CHUNKED else None
        mixer = Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim, chunk=chunk)
        return LayerGroup(layers, mixer, (*attention, *mlps[mlp]), norms)

    kinds = list(zip(spec.layer_types or (FULL,) * spec.num_hidden_layers, spec.mlp_layer_types or (), strict=True))
    return Layout(grouped(kinds, group), embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings))


def to_config(spec: ModelSpec) -> dict[str, Any]:
    types = list(spec.layer_types or (FULL,) * spec.num_hidden_layers)
    return {
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.moe_intermediate_size,
        "intermediate_size_mlp": spec.mlp_width,
        "num_attention_heads": spec.attention_heads,
        "num_key_value_heads": spec.kv_heads,
        "head_dim": spec.head_dim,
        "max_position_embeddings": spec.max_position_embeddings,
        "attention_bias": spec.attention_bias,
        "num_local_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "moe_layers": [i for i, t in enumerate(spec.mlp_layer_types or ()) if t == "sparse"],
        "attention_chunk_size": spec.attention_chunk_size,
        "layer_types": types,
        "no_rope_layers": [int(t == CHUNKED) for t in types],
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """Every twin layer holds experts, so one layer per kind of attention is enough (Maverick's dense
    and sparse chunked layers would otherwise make three)."""
    types = tuple(update.get("layer_types") or ())
    kinds = tuple(dict.fromkeys(types))
    chosen = kinds if len(kinds) > 1 else types[:2]
    if len(chosen) < len(types):
        update.update(num_hidden_layers=len(chosen), layer_types=chosen, mlp_layer_types=("sparse",) * len(chosen))
    return update


# the multimodal llama4 wraps it
CONVENTIONS = {"llama4_text": Conventions(wrappers=("llama4",))}

FAMILIES = [Family(("llama4_text",), read, build, to_config, fields=FIELDS, twin=twin, conventions=CONVENTIONS)]
