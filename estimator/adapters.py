"""Adapter sizes: which linear maps an adapter targets, and how many parameters it adds.

LoRA on a linear map d_in -> d_out adds A (r × d_in) and B (d_out × r): r · (d_in + d_out)
parameters, whether the map is an ``nn.Linear`` or GPT-2's ``Conv1D`` (peft adapts both alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from estimator.errors import EstimatorError
from estimator.units import bits_to_bytes

if TYPE_CHECKING:
    from estimator.layout import LinearMap
    from estimator.specs import ModelSpec
    from estimator.units import DType

ROLES = ("q", "k", "v", "o", "gate", "up", "down")
FUSED_ROLES = {"qkv": ("q", "k", "v"), "gate_up": ("gate", "up")}
PRESETS = {
    "all-linear": "every linear map of the decoder layers (peft's 'all-linear': lm_head excluded)",
    "attention": "the attention maps q, k, v, o (alias: attn)",
    "mlp": "the MLP maps gate, up, down",
    "qv": "q and v only (peft's default for Llama)",
}
_ALIASES = {"attn": "attention", "all": "all-linear"}


@dataclass(frozen=True)
class Targets:
    """A resolved choice of linear maps: ``label`` as the user wrote it, ``linears`` selected."""

    label: str
    linears: tuple[LinearMap, ...]

    @property
    def module_names(self) -> tuple[str, ...]:
        """Module paths inside a layer, in layer order (what peft's ``target_modules`` matches)."""
        return tuple(linear.name for linear in self.linears)

    @property
    def smallest_full_rank(self) -> int:
        """min(d_in, d_out) over the targets: the rank beyond which LoRA adds no expressiveness."""
        return min(linear.full_rank for linear in self.linears)

    def narrowest(self) -> tuple[str, ...]:
        """Short names of the targets whose full rank is the smallest."""
        rank = self.smallest_full_rank
        return tuple(linear.short_name for linear in self.linears if linear.full_rank == rank)


def valid_target_words(spec: ModelSpec) -> list[str]:
    """Everything ``--targets`` accepts for this model: presets, roles, module names."""
    roles = sorted({role for linear in spec.linear_maps for role in linear.roles}, key=ROLES.index)
    fused = [name for name, parts in FUSED_ROLES.items() if set(parts) <= set(roles)]
    modules = sorted({linear.short_name for linear in spec.linear_maps})
    return [*PRESETS, *roles, *fused, *modules]


def resolve_targets(spec: ModelSpec, text: str) -> Targets:
    """Read ``--targets``: a preset, or a comma list of roles (q, k, ..., qkv) and module names.

    A role that a fused map computes together with others (k inside Phi-3's ``qkv_proj``) cannot
    be adapted alone: that is an error naming the fused map, not a silent widening.
    """
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if not words:
        raise EstimatorError("--targets is empty; use all-linear, attention, mlp, qv or a comma list such as q,v")
    if len(words) == 1 and _ALIASES.get(words[0], words[0]) in PRESETS:
        return _preset(spec, _ALIASES.get(words[0], words[0]))
    roles: set[str] = set()
    names: set[str] = set()
    module_names = {linear.short_name for linear in spec.linear_maps} | {linear.name for linear in spec.linear_maps}
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
    for linear in spec.linear_maps:
        if linear.name in names or linear.short_name in names or linear.roles <= roles:
            chosen.append(linear)
        elif linear.roles & roles:
            missing = ",".join(sorted(linear.roles - roles, key=ROLES.index))
            raise EstimatorError(
                f"{spec.display_name} computes {'+'.join(sorted(linear.roles, key=ROLES.index))} in one fused map "
                f"{linear.short_name}; add {missing} to --targets or target {linear.short_name} whole"
            )
    missing_roles = roles - {role for linear in chosen for role in linear.roles}
    if missing_roles:
        raise EstimatorError(
            f"{spec.display_name} has no {', '.join(sorted(missing_roles, key=ROLES.index))} projection "
            f"(non-gated MLP?); use one of: {', '.join(valid_target_words(spec))}"
        )
    return Targets(",".join(words), tuple(chosen))


def _preset(spec: ModelSpec, preset: str) -> Targets:
    linears = spec.linear_maps
    match preset:
        case "all-linear":
            chosen = linears
        case "attention" | "mlp":
            chosen = tuple(linear for linear in linears if linear.block == preset)
        case _:  # qv
            chosen = tuple(linear for linear in linears if linear.roles & {"q", "v"})
            fused = [linear for linear in chosen if not linear.roles <= {"q", "v"}]
            if fused:
                raise EstimatorError(
                    f"{spec.display_name} fuses q, k and v into one map {fused[0].short_name}, so q and v cannot "
                    f"be adapted alone; use --targets qkv or attention"
                )
    return Targets(preset, chosen)


def lora_params(targets: Targets, rank: int) -> int:
    """LoRA parameters: Σ over targeted maps and their copies of r · (d_in + d_out).

    where: r = rank, d_in / d_out = the map's input / output width.
    Llama 3 70B, r = 32, all-linear: 32 · 12,943,360 = 414,187,520 per model (5,177,344 per layer).
    """
    return rank * sum((linear.d_in + linear.d_out) * linear.copies for linear in targets.linears)


def lora_bytes(targets: Targets, rank: int, adapter_dtype: DType) -> int:
    """Bytes of the LoRA weights: :func:`lora_params` · b / 8 (Llama 3 70B, r = 32, bf16: 828,375,040)."""
    return bits_to_bytes(lora_params(targets, rank) * adapter_dtype.bits)
