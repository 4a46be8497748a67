"""Routed experts that transformers names, or biases, its own way (gpt-oss, Phi-3.5-MoE, GraniteMoE).

:class:`~estimator.layout.moe.MoE` lays fused experts out as ``mlp.experts.gate_up_proj`` and
``mlp.experts.down_proj`` with a bare router ``mlp.gate``, all without biases. Some families differ
in transformers 5.24:

- gpt_oss: the router is ``mlp.router`` (a bare weight E × d and a bias E), and the experts carry
  biases: ``gate_up_proj_bias`` (E × 2F) and ``down_proj_bias`` (E × d). One expert holds
  3 · d · F + 2F + d parameters (gpt-oss-20b: 3 · 2,880 · 2,880 + 2 · 2,880 + 2,880 = 24,891,840).
- phimoe: the router ``mlp.router`` is an ``nn.Linear`` subclass (``PhimoeTopKRouter``), so peft's
  all-linear adapts it even on the fused layout.
- granitemoe: everything under ``block_sparse_moe``: ``router`` (a bare weight) and ``experts``.

The per-expert layout keeps the checkpoint's (or, where the checkpoint itself is fused, the
conventional) per-expert names; the counts are the same in both layouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from estimator.families.moe import GATED_NAMES, expert_shape
from estimator.layout import LinearMap
from estimator.layout.moe import MoE

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

ROUTER = frozenset({"router"})


@dataclass(frozen=True)
class NamedMoE(MoE):
    """:class:`MoE` with the fused layout's own module names, an ``nn.Linear`` router there where
    ``fused_router_linear``, and biases on the router and on every expert projection where set."""

    fused_prefix: str = "mlp.experts"  # module path of transformers 5's fused expert tensors
    fused_router: str = "mlp.gate"  # module path of the router in transformers 5
    fused_router_linear: bool = False  # the router is an nn.Linear in transformers 5 (phimoe)
    router_bias: bool = False
    expert_bias: bool = False

    @property
    def expert_params(self) -> int:
        """3 · d · F, plus 2F + d of biases where the experts have them."""
        bias = 2 * self.width + self.d_model if self.expert_bias else 0
        return 3 * self.d_model * self.width + bias

    def linears(self, fused: bool) -> tuple[LinearMap, ...]:
        """The router, then the experts' maps, in the per-expert or the fused layout."""
        d, f, e, bias = self.d_model, self.width, self.experts, self.expert_bias
        name, linear = (self.fused_router, self.fused_router_linear) if fused else (self.router, self.router_linear)
        router = LinearMap(name, d, e, self.router_bias, ROUTER, "mlp", module=linear)
        if fused:
            p = self.fused_prefix
            return (
                router,
                LinearMap(f"{p}.gate_up_proj", d, 2 * f, bias, frozenset({"gate", "up"}), "mlp", e, module=False,
                          expert=True),
                LinearMap(f"{p}.down_proj", f, d, bias, frozenset({"down"}), "mlp", e, module=False, expert=True),
            )  # fmt: skip
        gate, up, down = (f"{self.prefix}.{name}" for name in self.names)
        return (
            router,
            LinearMap(gate, d, f, bias, frozenset({"gate"}), "mlp", e, expert=True),
            LinearMap(up, d, f, bias, frozenset({"up"}), "mlp", e, expert=True),
            LinearMap(down, f, d, bias, frozenset({"down"}), "mlp", e, expert=True),
        )


def named_moe(spec: ModelSpec, **layout: Any) -> NamedMoE:
    """The spec's routed experts as :func:`estimator.families.moe.routed_experts` reads them, with this module's
    names and biases: E = ``n_routed_experts``, top-k ``num_experts_per_tok``, d = ``hidden_size``,
    F = ``moe_intermediate_size``, gated maps ``gate_proj``, ``up_proj``, ``down_proj`` under ``mlp.experts``;
    ``layout``: the family's own names, router and biases (any :class:`NamedMoE` field)."""
    return NamedMoE(**{**expert_shape(spec), "prefix": "mlp.experts", "names": GATED_NAMES, **layout})
