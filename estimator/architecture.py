"""A spec's layout, and its parameters: folds over the layer groups its family builds.

Each family module (:mod:`estimator.families`) describes what its transformers code builds as a
:class:`~estimator.layout.Layout`; parameters, active parameters, LoRA and every other adapter size
derive from it, so they cannot drift apart.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from estimator.families import family
from estimator.layout import ExpertLayout, Layout, LinearMap, ParamTensor

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

PARTS = ("embedding", "attention", "recurrent", "mlp", "experts", "norm", "lm_head")


@lru_cache(maxsize=256)
def layout_of(spec: ModelSpec) -> Layout:
    """The layer groups the family's transformers code builds for ``spec`` (computed once per spec)."""
    return family(spec.model_type).build(spec)


def linear_maps(spec: ModelSpec, experts: ExpertLayout = ExpertLayout.per_expert) -> tuple[LinearMap, ...]:
    """Every linear map of the decoder layers (``layers`` set), experts in the given layout."""
    return layout_of(spec).linear_maps(experts.fused_weights)


def other_tensors(spec: ModelSpec) -> tuple[ParamTensor, ...]:
    """Embeddings, norms and the output head: every parameter that is not in a linear map.

    RMSNorm holds d weights; LayerNorm d weights and d biases. A tied output head shares the
    input embedding's tensor and is counted once (as transformers' ``parameters()`` does).
    """
    return layout_of(spec).other_tensors()


def param_breakdown(spec: ModelSpec) -> dict[str, int]:
    """Parameters by part: embedding, attention, recurrent (a recurrent mixer's own tensors: its convolution,
    A_log, D, dt_bias), mlp (dense and shared MLPs, routers), experts (routed experts), norm, lm_head (zero
    when tied)."""
    parts = dict.fromkeys(PARTS, 0)
    for linear in linear_maps(spec):
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
    and DeepSeek-V3's "37B" are. Equal to N for a dense model
    (Mixtral 8x7B: 46,702,792,704 − 32 · 6 · 3 · 4,096 · 14,336 = 12,879,925,248).
    """
    idle = sum(g.layers * g.moe.idle_params for g in layout_of(spec).groups if g.moe)
    return total_params(spec) - idle
