"""JetMoE (model type jetmoe): a mixture of attention heads (MoA) and a mixture of MLP experts, same E and k.

What transformers 5.24's ``JetMoeForCausalLM`` builds, per layer:

- ``input_layernorm`` and ``post_attention_layernorm``: RMSNorms of d;
- attention ``self_attention``: ``kv_proj`` (an ``nn.Linear`` d -> 2 · K · d_h, no bias), shared by every
  expert, with K = ``num_key_value_heads`` (16 by default) heads of d_h = ``kv_channels`` (128 by default;
  ``head_dim`` is its other name); and the MoA ``experts``: a router ``router.layer`` (an ``nn.Linear`` d -> E,
  no bias), E = ``num_local_experts`` (8 by default) query experts ``input_linear`` (E × K · d_h × d) and output
  experts ``output_linear`` (E × d × K · d_h), bare tensors, and an output bias ``bias`` (d). A token's top
  k = ``num_experts_per_tok`` (2 by default) experts each compute K query heads over the same K key and
  value heads: H = K · k query heads (``JetMoeConfig`` overwrites ``num_attention_heads`` with it), and the
  cache holds 2 · K · d_h per token and layer;
- the MLP ``mlp``: a router ``router.layer`` (d -> E), experts ``input_linear`` (E × 2F × d, gate and up) and
  ``output_linear`` (E × d × F), F = ``intermediate_size`` (5,632 by default), and an output bias ``bias`` (d);
  ``activation_function`` (silu) picks a parameter-free activation (``prelu`` and ``xielu`` are refused);
- outside the layers: embeddings, a final RMSNorm and the output head, tied by default.

Both mixtures route to E experts, k per token, so one :class:`JetMoeExperts` value holds both: an "expert"
is one attention expert (2 · d · K · d_h) and one MLP expert (3 · d · F), and a token passes through k of
each; the active parameters are all but (E − k) of them per layer, exactly.

peft 0.21 does not convert jetmoe (no entry in transformers' ``_MODEL_TO_CONVERSION_PATTERN``): all-linear
adapts ``kv_proj`` and the two routers (``nn.Linear``), not the expert tensors. The per-expert layout is the
convention of an ``nn.Linear`` per expert map (q and o; gate, up and down).

JetMoeConfig's defaults (its "JetMoe 4B style"): 12 layers of 352,362,496 (kv_proj 8,388,608, MoA experts
8 · 8,388,608, MLP experts 8 · 34,603,008, routers 2 · 16,384, output biases 4,096, norms 4,096) + tied
32,000 · 2,048 + 2,048 = 4,293,888,000; active 4,293,888,000 − 12 · 6 · 42,991,616 = 1,198,491,648.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader
from estimator.families.activation import activation
from estimator.families.moe import expert_shape
from estimator.families.schema import SIZE, text
from estimator.families.unbuildable import refuse_null
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import embedding_and_final_norm, rms_norms, roles
from estimator.layout.moe import MoE

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

_DEFAULTS = {  # JetMoeConfig's defaults for absent keys
    "vocab_size": 32000,
    "num_key_value_heads": 16,
    "kv_channels": 128,
    "intermediate_size": 5632,
    "max_position_embeddings": 4096,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
}
FIELDS = {"kv_channels": SIZE, "activation_function": text}


def read(r: Reader) -> dict[str, Any]:
    def field(key: str) -> Any:
        return r.field(key, _DEFAULTS)

    refuse_null(r, *_DEFAULTS)
    hidden, n = r.need("hidden_size"), r.need("num_hidden_layers")
    kv, head_dim, experts, top_k = (
        field("num_key_value_heads"),
        field("kv_channels"),
        field("num_local_experts"),
        field("num_experts_per_tok"),
    )
    heads = kv * top_k
    if r.config.get("num_attention_heads") not in (None, heads):
        r.note(f"num_attention_heads is K · k = {heads}: JetMoE's attention does not read the value given")
    if top_k > experts:
        raise EstimatorError(
            f"{r.path}: num_experts_per_tok ({top_k}) is more than num_local_experts ({experts}), which "
            "JetMoeConfig refuses; fix one of them"
        )
    width = field("intermediate_size")
    return {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": width,
        "moe_intermediate_size": width,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "head_dim": head_dim,
        "vocab_size": field("vocab_size"),
        "max_position_embeddings": field("max_position_embeddings"),
        "tie_word_embeddings": r.get("tie_word_embeddings", True, "tied (JetMoeConfig default)"),
        "n_routed_experts": experts,
        "num_experts_per_tok": top_k,
        "mlp_layer_types": ("sparse",) * n,
        "family_fields": (("activation_function", activation(r, "activation_function", "silu")),),
    }


@dataclass(frozen=True)
class JetMoeExperts(MoE):
    """The MoA's and the MLP's experts of one layer (E each, k per token): an expert here is one attention
    expert, q (d -> A) and o (A -> d) with A = K · d_h, and one MLP expert, gate and up (d -> F) and down
    (F -> d). Fused: transformers' bare tensors ``input_linear`` and ``output_linear``; per expert: an
    ``nn.Linear`` per map. Both routers are ``router.layer``, an ``nn.Linear`` d -> E."""

    attention_width: int = 0

    @property
    def expert_params(self) -> int:
        """2 · d · A + 3 · d · F (JetMoE-8B: 2 · 2,048 · 2,048 + 3 · 2,048 · 5,632 = 42,991,616)."""
        return 2 * self.d_model * self.attention_width + 3 * self.d_model * self.width

    def linears(self, fused: bool) -> tuple[LinearMap, ...]:
        d, a, f, e = self.d_model, self.attention_width, self.width, self.experts
        moa, mlp = "self_attention.experts", "mlp"
        router = roles("router")
        maps = [
            LinearMap(f"{moa}.router.layer", d, e, False, router, "attention"),
            LinearMap(f"{mlp}.router.layer", d, e, False, router, "mlp"),
        ]
        if fused:
            maps += [
                LinearMap(f"{moa}.input_linear", d, a, False, roles("q"), "attention", e, module=False, expert=True),
                LinearMap(f"{moa}.output_linear", a, d, False, roles("o"), "attention", e, module=False, expert=True),
                LinearMap(f"{mlp}.input_linear", d, 2 * f, False, roles("gate", "up"), "mlp", e, module=False,
                          expert=True),
                LinearMap(f"{mlp}.output_linear", f, d, False, roles("down"), "mlp", e, module=False, expert=True),
            ]  # fmt: skip
            return tuple(maps)
        return (
            *maps,
            LinearMap(f"{moa}.q_proj", d, a, False, roles("q"), "attention", e, expert=True),
            LinearMap(f"{moa}.o_proj", a, d, False, roles("o"), "attention", e, expert=True),
            LinearMap(f"{mlp}.experts.gate_proj", d, f, False, roles("gate"), "mlp", e, expert=True),
            LinearMap(f"{mlp}.experts.up_proj", d, f, False, roles("up"), "mlp", e, expert=True),
            LinearMap(f"{mlp}.experts.down_proj", f, d, False, roles("down"), "mlp", e, expert=True),
        )


def build(spec: ModelSpec) -> Layout:
    """One group. Per layer: 2 · d · K · d_h (kv_proj) + 2 · d · E (routers) + E · (2 · d · K · d_h + 3 · d · F)
    + 2 · d (output biases) + 2 · d (norms)."""
    d, kv, dh = spec.hidden_size, spec.kv_heads, spec.attention_head_dim
    experts = JetMoeExperts(
        **expert_shape(spec),
        prefix="mlp.experts",
        names=("gate_proj", "up_proj", "down_proj"),
        router="mlp.router.layer",
        attention_width=kv * dh,
    )
    maps: tuple[LinearMap | MoE, ...] = (
        LinearMap("self_attention.kv_proj", d, 2 * kv * dh, False, roles("k", "v"), "attention"),
        experts,
    )
    tensors = (
        ParamTensor("self_attention.experts.bias", d, "attention"),
        ParamTensor("mlp.bias", d, "mlp"),
        *rms_norms(d, ("input_layernorm", "post_attention_layernorm")),
    )
    group = LayerGroup(spec.num_hidden_layers, Attention(spec.attention_heads, kv, dh), maps, tensors)
    return Layout((group,), embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings))


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.moe_intermediate_size,
        "num_key_value_heads": spec.num_key_value_heads,
        "kv_channels": spec.head_dim,
        "max_position_embeddings": spec.max_position_embeddings,
        "num_local_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "activation_function": spec.option("activation_function", "silu"),
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """A validation twin's query heads follow its top-k: H = K · k."""
    top_k = update.get("num_experts_per_tok", spec.num_experts_per_tok) or 0
    return {**update, "num_attention_heads": spec.kv_heads * top_k}


FAMILIES = [Family(("jetmoe",), read, build, to_config, fields=FIELDS, twin=twin)]
