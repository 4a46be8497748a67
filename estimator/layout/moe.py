"""Routed experts of a sparse layer, as data: one value that expands to its maps in either layout."""

from __future__ import annotations

from dataclasses import dataclass

from estimator.layout.maps import LinearMap


@dataclass(frozen=True)
class MoE:
    """Routed experts of one sparse layer: E experts of width F, k per token, and the router d -> E.

    The same weights in two layouts: per expert (``{prefix}.{i}.gate/up/down``, as the released
    checkpoints, vLLM and transformers < 5) or fused (transformers >= 5: ``mlp.experts.gate_up_proj``
    E × 2F × d and ``mlp.experts.down_proj`` E × d × F, bare parameters). The router is an
    ``nn.Linear`` in the per-expert code where ``router_linear``, a bare weight otherwise.

    ``zero_experts`` Z (LongCat-Flash): identity experts the router also scores (d -> E + Z) and that compute
    nothing; transformers 5.24 still allocates their rows of the fused gate_up ((E + Z) × 2F × d, down E × d × F),
    never read. The per-expert layout holds them as one bare, never adapted map ``{prefix}.zero_gate_up``.
    """

    experts: int
    top_k: int
    d_model: int
    width: int
    prefix: str  # per-expert module path of the experts: "mlp.experts", "block_sparse_moe.experts"
    names: tuple[str, str, str]  # per-expert gate, up and down names: ("gate_proj", "up_proj", "down_proj")
    router: str  # per-expert path of the router: "mlp.gate", "block_sparse_moe.gate"
    router_linear: bool = True
    renormalised: bool = False  # the top-k weights divided by their sum (norm_topk_prob; Mixtral always)
    zero_experts: int = 0  # identity experts the router scores beside the E (LongCat-Flash's zero_expert_num)

    @property
    def expert_params(self) -> int:
        """Parameters of one expert: gate and up (d -> F) and down (F -> d), 3 · d · F."""
        return 3 * self.d_model * self.width

    @property
    def idle_params(self) -> int:
        """Parameters of a sparse layer one token does not pass through: the E − k experts it is not sent to, and
        the zero experts' gate_up rows, 2 · d · F each, that no token reads ((E − k) · 3dF + Z · 2dF)."""
        return (self.experts - self.top_k) * self.expert_params + self.zero_experts * 2 * self.d_model * self.width

    def linears(self, fused: bool) -> tuple[LinearMap, ...]:
        """The router, then the experts' maps, in the per-expert or the fused layout."""
        d, f, e, z = self.d_model, self.width, self.experts, self.zero_experts
        router_name = "mlp.gate" if fused else self.router
        router = LinearMap(
            router_name, d, e + z, False, frozenset({"router"}), "mlp", module=self.router_linear and not fused
        )
        if fused:
            return (
                router,
                LinearMap("mlp.experts.gate_up_proj", d, 2 * f, False, frozenset({"gate", "up"}), "mlp", e + z,
                          module=False, expert=True),
                LinearMap("mlp.experts.down_proj", f, d, False, frozenset({"down"}), "mlp", e, module=False,
                          expert=True),
            )  # fmt: skip
        gate, up, down = (f"{self.prefix}.{name}" for name in self.names)
        return (
            router,
            LinearMap(gate, d, f, False, frozenset({"gate"}), "mlp", e, expert=True),
            LinearMap(up, d, f, False, frozenset({"up"}), "mlp", e, expert=True),
            LinearMap(down, f, d, False, frozenset({"down"}), "mlp", e, expert=True),
            *((LinearMap(f"{self.prefix}.zero_gate_up", d, 2 * f, False, frozenset(), "mlp", z, module=False,
                         expert=True),) if z else ()),
        )  # fmt: skip
