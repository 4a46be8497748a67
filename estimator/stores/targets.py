"""Which linear maps an adapter targets, and LoRA, DoRA and IA3 parameters on them.

LoRA on a map d_in -> d_out adds A (r × d_in) and B (d_out × r): r · (d_in + d_out) parameters,
whether the map is an ``nn.Linear``, GPT-2's ``Conv1D`` or a fused expert tensor adapted through
peft's ``target_parameters`` (there A is d_in × r·E and B r·E × d_out: the same count for E experts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from estimator.architecture import linear_maps
from estimator.errors import EstimatorError, MethodNotApplicableError
from estimator.layout import ExpertLayout
from estimator.stores.peft_rules import adaptable, rank_factor
from estimator.units import bits_to_bytes

if TYPE_CHECKING:
    from estimator.layout import LinearMap
    from estimator.specs import ModelSpec
    from estimator.units import DType

ROLES = ("q", "k", "v", "o", "gate", "up", "down", "router")
FUSED_ROLES = {"qkv": ("q", "k", "v"), "gate_up": ("gate", "up")}
PRESETS = {
    "all-linear": "every linear map of the decoder layers (peft's 'all-linear': lm_head excluded)",
    "attention": "the attention maps q, k, v, o (alias: attn)",
    "mlp": "the MLP maps gate, up, down (experts and routers included)",
    "qv": "q and v only (peft's default for Llama)",
}
_ALIASES = {"attn": "attention", "all": "all-linear"}


@dataclass(frozen=True)
class Targets:
    """A resolved choice of linear maps: ``label`` as the user wrote it, ``linears`` selected."""

    label: str
    linears: tuple[LinearMap, ...]
    experts: ExpertLayout = ExpertLayout.per_expert
    rank_factors: tuple[int, ...] = field(default=())  # peft's rank multiplier per map (1 unless given)
    moe: bool = False  # the model has routed experts, so ``experts`` decides what the targets are

    @property
    def described(self) -> str:
        """The label, with the experts' layout where the model has experts (it decides the adapter:
        DeepSeek-V3's LoRA r=32 is 26.78 GB per expert, 0.51 GB with ``--experts none``)."""
        return f"{self.label}, experts {self.experts.value}" if self.moe else self.label

    def factor(self, index: int) -> int:
        return self.rank_factors[index] if self.rank_factors else 1

    def only(self, linears: tuple[LinearMap, ...], label: str | None = None) -> Targets:
        """The same targets narrowed to ``linears`` (each keeping its rank factor)."""
        kept = [i for i, linear in enumerate(self.linears) if linear in linears]
        factors = tuple(self.factor(i) for i in kept)
        return Targets(label or self.label, tuple(self.linears[i] for i in kept), self.experts, factors, self.moe)

    @property
    def module_names(self) -> tuple[str, ...]:
        """Module paths inside a layer of the targeted ``nn.Linear`` maps (peft's ``target_modules``)."""
        return tuple(linear.name for linear in self.linears if linear.module)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Fused expert tensors targeted as parameters (peft's ``target_parameters``)."""
        return tuple(linear.name for linear in self.linears if not linear.module)

    @property
    def _ranked(self) -> tuple[LinearMap, ...]:
        """The targets whose full rank limits LoRA: all but routers (d -> E or d -> 1), unless only routers."""
        maps = tuple(linear for linear in self.linears if "router" not in linear.roles)
        return maps or self.linears

    @property
    def smallest_full_rank(self) -> int:
        """min(d_in, d_out) over the targets (routers aside): the rank beyond which LoRA adds no expressiveness."""
        return min(linear.full_rank for linear in self._ranked)

    def narrowest(self) -> tuple[str, ...]:
        """Short names of the targets whose full rank is the smallest."""
        rank = self.smallest_full_rank
        return tuple(dict.fromkeys(linear.short_name for linear in self._ranked if linear.full_rank == rank))

    def routers_beyond_full_rank(self, rank: int) -> tuple[str, ...]:
        """Routers (tiny maps d -> E or d -> 1) that a LoRA of this rank exceeds: stated, never refused."""
        return tuple(
            dict.fromkeys(
                f"{m.short_name} ({m.d_in:,} -> {m.d_out:,})"
                for m in self.linears
                if "router" in m.roles and rank > m.full_rank
            )
        )


def valid_target_words(spec: ModelSpec) -> list[str]:
    """Everything ``--targets`` accepts for this model: presets, roles, module names."""
    maps = linear_maps(spec)
    roles = sorted({role for linear in maps for role in linear.roles}, key=ROLES.index)
    fused = [name for name, parts in FUSED_ROLES.items() if set(parts) <= set(roles)]
    modules = sorted({linear.short_name for linear in maps})
    return [*PRESETS, *roles, *fused, *modules]


@lru_cache(maxsize=1024)
def resolve_targets(spec: ModelSpec, text: str, experts: ExpertLayout = ExpertLayout.per_expert) -> Targets:
    """Read ``--targets``: a preset, or a comma list of roles (q, k, ..., qkv) and module names.

    A role that a fused map computes together with others (k inside Phi-3's ``qkv_proj``) cannot
    be adapted alone: that is an error naming the fused map, not a silent widening. Maps that
    cannot be adapted under the expert layout (routers stored as bare weights, fused experts
    without ``target_parameters``) are left out.
    """
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if not words:
        raise EstimatorError("--targets is empty; use all-linear, attention, mlp, qv or a comma list such as q,v")
    layout = linear_maps(spec, experts)
    maps = tuple(m for m in layout if adaptable(spec, m, experts))
    preset = _ALIASES.get(words[0], words[0])
    if len(words) == 1 and preset in PRESETS:
        chosen_maps = _preset(spec, maps, preset)
        if not chosen_maps:
            if not _preset(spec, layout, preset):  # the model has no such maps at all (attention in a pure SSM)
                usable = [w for w in valid_target_words(spec) if w not in PRESETS or _preset(spec, layout, w)]
                raise EstimatorError(
                    f"{spec.display_name} has no {preset} maps to adapt; use one of: {', '.join(usable)}"
                )
            raise EstimatorError(
                f"{spec.display_name} has nothing {preset} can adapt under --experts {experts.value} (its MLP maps "
                "are routed experts or routers without adapters there); use --experts per-expert or fused, or other "
                "--targets"
            )
        return _targets(spec, preset, chosen_maps, experts)
    roles: set[str] = set()
    names: set[str] = set()
    module_names = {m.short_name for m in layout} | {m.name for m in layout}
    for word in words:
        if word in ROLES:
            roles.add(word)
        elif word in FUSED_ROLES:
            roles.update(FUSED_ROLES[word])
        elif word in module_names:
            names.add(word)
        else:
            valid = ", ".join(valid_target_words(spec))
            raise EstimatorError(f"unknown target {word!r} for {spec.display_name}; use one of: {valid}")
    chosen = []
    for linear in maps:
        if linear.name in names or linear.short_name in names or linear.roles <= roles:
            chosen.append(linear)
        elif linear.roles & roles:
            missing = ",".join(sorted(linear.roles - roles, key=ROLES.index))
            raise EstimatorError(
                f"{spec.display_name} computes {'+'.join(sorted(linear.roles, key=ROLES.index))} in one fused map "
                f"{linear.short_name}; add {missing} to --targets or target {linear.short_name} whole"
            )
    missing_roles = roles - {role for linear in chosen for role in linear.roles}
    if missing_roles or not chosen:
        what = ", ".join(sorted(missing_roles, key=ROLES.index)) or text
        raise EstimatorError(
            f"{spec.display_name} has no adaptable {what} (non-gated MLP, or a bare weight under --experts "
            f"{experts.value}?); use one of: {', '.join(valid_target_words(spec))}"
        )
    return _targets(spec, ",".join(words), tuple(chosen), experts)


def _targets(spec: ModelSpec, label: str, chosen: tuple[LinearMap, ...], experts: ExpertLayout) -> Targets:
    factors = tuple(rank_factor(spec, linear, experts) for linear in chosen)
    return Targets(label, chosen, experts, factors, spec.n_routed_experts is not None)


def _preset(spec: ModelSpec, maps: tuple[LinearMap, ...], preset: str) -> tuple[LinearMap, ...]:
    match preset:
        case "all-linear":
            return maps
        case "attention" | "mlp":
            return tuple(linear for linear in maps if linear.block == preset)
        case _:  # qv
            chosen = tuple(linear for linear in maps if linear.roles & {"q", "v"})
            fused = [linear for linear in chosen if not linear.roles <= {"q", "v"}]
            if fused:
                raise EstimatorError(
                    f"{spec.display_name} computes k with q or v in one map {fused[0].short_name}, so q and v "
                    f"cannot be adapted alone; use --targets qkv or attention"
                )
            return chosen


def lora_params(targets: Targets, rank: int) -> int:
    """LoRA parameters: Σ over targeted maps and their copies of r · (d_in + d_out).

    where: r = rank (times 2 for peft's fused gate_up of experts), d_in / d_out = the map's widths.
    Llama 3 70B, r = 32, all-linear: 32 · 12,943,360 = 414,187,520 per model (5,177,344 per layer).
    """
    return rank * sum(
        targets.factor(i) * (linear.d_in + linear.d_out) * linear.copies for i, linear in enumerate(targets.linears)
    )


def lora_bytes(targets: Targets, rank: int, adapter_dtype: DType) -> int:
    """Bytes of the LoRA weights: :func:`lora_params` · b / 8 (Llama 3 70B, r = 32, bf16: 828,375,040)."""
    return bits_to_bytes(lora_params(targets, rank) * adapter_dtype.bits)


def dora_params(targets: Targets, rank: int) -> int:
    """DoRA parameters: LoRA plus one magnitude vector of d_out per targeted map and copy.

    Llama 3 70B, r = 32, all-linear: 414,187,520 + 80 · (2 · 8,192 + 2 · 1,024 + 2 · 28,672 + 8,192)
    = 420,904,960.
    """
    fused = [linear.short_name for linear in targets.linears if not linear.module]
    if fused:
        raise MethodNotApplicableError(
            f"peft's DoRA cannot adapt fused expert tensors ({', '.join(dict.fromkeys(fused))}); "
            "use --experts per-expert or none"
        )
    return lora_params(targets, rank) + sum(linear.d_out * linear.copies for linear in targets.linears)


def ia3_params(targets: Targets, feedforward: frozenset[str]) -> int:
    """IA3 parameters: one scaling vector per targeted map and copy, of d_out, or of d_in for
    feed-forward maps (which IA3 scales at their input).

    Llama 3 70B with peft's default targets (k_proj, v_proj; down_proj feed-forward):
    80 · (1,024 + 1,024 + 28,672) = 2,457,600.
    """
    return sum(
        (linear.d_in if linear.short_name in feedforward else linear.d_out) * linear.copies
        for linear in targets.linears
    )
