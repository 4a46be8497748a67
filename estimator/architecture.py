"""Parameters of a spec: linear maps and other tensors from its family, summed by part.

Each family module (:mod:`estimator.families`) describes what its transformers code builds;
parameters, active parameters, LoRA and every other adapter size derive from those linear maps,
so they cannot drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from estimator.families import family
from estimator.layout import ExpertLayout, LinearMap, ParamTensor

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

PARTS = ("embedding", "attention", "mlp", "experts", "norm", "lm_head")


def linear_maps(spec: ModelSpec, experts: ExpertLayout = ExpertLayout.per_expert) -> tuple[LinearMap, ...]:
    """The linear maps of the decoder layers, as the family's transformers code builds them."""
    return tuple(family(spec.model_type).linear_maps(spec, experts))


def other_tensors(spec: ModelSpec) -> tuple[ParamTensor, ...]:
    """Embeddings, norms and the output head: every parameter that is not in a linear map.

    RMSNorm holds d weights; LayerNorm d weights and d biases. A tied output head shares the
    input embedding's tensor and is counted once (as transformers' ``parameters()`` does).
    """
    tensors = list(family(spec.model_type).other_tensors(spec))
    if not spec.tie_word_embeddings:
        tensors.append(ParamTensor("lm_head", spec.vocab_size * spec.hidden_size, "lm_head"))
    return tuple(tensors)


def param_breakdown(spec: ModelSpec) -> dict[str, int]:
    """Parameters by part: embedding, attention, mlp (dense and shared MLPs, routers), experts
    (routed experts), norm, lm_head (zero when tied)."""
    parts = dict.fromkeys(PARTS, 0)
    for linear in spec.linear_maps:
        parts["experts" if linear.expert else linear.block] += linear.params
    for tensor in other_tensors(spec):
        parts[tensor.group] += tensor.params
    return parts


def total_params(spec: ModelSpec) -> int:
    """All parameters: the sum of :func:`param_breakdown` (Llama 3 70B: 70,553,706,496)."""
    return sum(param_breakdown(spec).values())


def active_params(spec: ModelSpec) -> int:
    """Parameters one token passes through: all but the routed experts it is not sent to.

    N_active = N − Σ_sparse layers (E − k) · P_expert, where E routed experts of P_expert
    parameters each, k = num_experts_per_tok. Embeddings and head included, as Mixtral's "12.9B"
    and DeepSeek-V3's "37B" are. Equal to N for a dense model.
    """
    routed = sum(linear.params for linear in spec.linear_maps if linear.expert)
    if not routed or spec.n_routed_experts is None or spec.num_experts_per_tok is None:
        return total_params(spec)
    idle = spec.n_routed_experts - spec.num_experts_per_tok
    return total_params(spec) - routed * idle // spec.n_routed_experts
