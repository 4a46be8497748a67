"""Every way of storing new text, sized: KV cache, LoRA, DoRA, IA3, LoReFT, prefix and prompt
tuning, full fine-tuning, pretraining. Pure functions of (spec, settings); no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from estimator.adapters import Targets, dora_params, ia3_params, lora_params, resolve_targets
from estimator.architecture import linear_maps
from estimator.errors import EstimatorError
from estimator.kv import KVFormat, kv_vectors
from estimator.layout import ExpertLayout

if TYPE_CHECKING:
    from estimator.specs import ModelSpec


class Method(StrEnum):
    kv = "kv"
    lora = "lora"
    dora = "dora"
    ia3 = "ia3"
    loreft = "loreft"
    prefix = "prefix"
    prompt = "prompt"
    full = "full"
    pretraining = "pretraining"


TRAINED = (Method.lora, Method.dora, Method.ia3, Method.loreft, Method.prefix, Method.prompt, Method.full)

# peft's default IA3 targets (TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING) and the feed-forward
# ones among them (scaled at their input). Families peft has no default for use the IA3 paper's
# choice: keys, values and the MLP's down projection.
IA3_DEFAULTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "llama": (("k_proj", "v_proj", "down_proj"), ("down_proj",)),
    "mistral": (("k_proj", "v_proj", "down_proj"), ("down_proj",)),
    "mixtral": (("k_proj", "v_proj", "w2"), ("w2",)),
    "qwen2": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "qwen3": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "gemma2": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "gemma3_text": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "falcon": (("query_key_value", "dense_4h_to_h"), ("dense_4h_to_h",)),
    "gpt2": (("c_attn", "mlp.c_proj"), ("c_proj",)),
}
IA3_FALLBACK_ROLES = frozenset({"k", "v", "down"})


@dataclass(frozen=True)
class LoReFT:
    """LoReFT interventions (Wu et al. 2024): the paper's commonsense recipe by default.

    Each intervention edits the hidden state h of one layer at chosen positions as
    h + Rᵀ(W h + b − R h), with R (r × d, orthonormal rows), W (r × d) and b (r): 2 r d + r parameters.
    """

    rank: int = 8
    layers: tuple[int, ...] | None = None  # None: every layer
    prefix_positions: int = 7
    suffix_positions: int = 7
    tied: bool = True  # prefix and suffix positions share one intervention per layer

    def interventions(self, spec: ModelSpec) -> int:
        """Chosen layers × (1 if tied, else one per position group: prefix and suffix)."""
        layers = spec.num_hidden_layers if self.layers is None else len(self.layers)
        groups = (self.prefix_positions > 0) + (self.suffix_positions > 0)
        return layers * (1 if self.tied else groups)

    def describe(self, spec: ModelSpec) -> str:
        where = "every layer" if self.layers is None else f"layers {', '.join(map(str, self.layers))}"
        sharing = "tied (one intervention per layer)" if self.tied else "untied (prefix and suffix apart)"
        return (
            f"rank {self.rank} on {where}, first {self.prefix_positions} and last {self.suffix_positions} "
            f"positions, {sharing}: {self.interventions(spec):,} interventions"
        )


@dataclass(frozen=True)
class Settings:
    """Every knob of the trained methods, with the defaults the CLI uses."""

    rank: int = 32
    targets: str = "all-linear"
    experts: ExpertLayout = ExpertLayout.per_expert
    virtual_tokens: int = 20
    loreft: LoReFT = field(default_factory=LoReFT)
    ia3_targets: str | None = None  # None: peft's default for the family


def loreft_params(spec: ModelSpec, loreft: LoReFT) -> int:
    """LoReFT parameters: interventions × (2 · r · d + r), where d = hidden_size.

    Llama 2 7B, commonsense recipe (r = 8, 32 layers, tied): 32 × (2 · 8 · 4,096 + 8) = 2,097,408.
    """
    return loreft.interventions(spec) * (2 * loreft.rank * spec.hidden_size + loreft.rank)


def prefix_params(spec: ModelSpec, virtual_tokens: int, kv: KVFormat) -> int:
    """Prefix tuning: the KV cache of n virtual tokens, stored as parameters: n · L · (values per token).

    Standard attention: n · 2 · L · K · d_h (Llama 3 70B, n = 20: 20 · 2 · 80 · 8 · 128 = 3,276,800).
    Multi-head latent attention: per token the same vectors as the cache (latent or expanded).
    """
    per_layer = sum(count * length for count, length in kv_vectors(spec, kv.mla))
    return virtual_tokens * spec.num_hidden_layers * per_layer


def prompt_params(spec: ModelSpec, virtual_tokens: int) -> int:
    """Prompt tuning: n virtual token embeddings of d = hidden_size (Llama 3 70B, n = 20: 163,840)."""
    return virtual_tokens * spec.hidden_size


def _modules_only(targets: Targets) -> Targets:
    """IA3 scales ``nn.Linear`` modules only (peft's weight conversion for experts is LoRA's alone)."""
    return Targets(targets.label, tuple(m for m in targets.linears if m.module), targets.experts)


def ia3_targets(spec: ModelSpec, settings: Settings) -> tuple[Targets, frozenset[str], bool]:
    """IA3's targets, the feed-forward ones among them, and whether they are peft's own default."""
    experts = settings.experts
    maps = tuple(m for m in linear_maps(spec, experts) if m.module)
    if settings.ia3_targets is not None:
        targets = _modules_only(resolve_targets(spec, settings.ia3_targets, ExpertLayout.per_expert))
        return targets, frozenset({"down_proj", "w2", "dense_4h_to_h", "c_proj"}), False
    if spec.model_type in IA3_DEFAULTS:
        names, feedforward = IA3_DEFAULTS[spec.model_type]
        chosen = tuple(m for m in maps if m.short_name in names or m.name in names)
        return Targets(",".join(names), chosen, experts), frozenset(feedforward), True
    chosen = tuple(m for m in maps if m.roles & IA3_FALLBACK_ROLES and "router" not in m.roles)
    down = frozenset(m.short_name for m in chosen if m.roles == {"down"})
    return Targets("k,v,down", chosen, experts), down, False


def method_params(spec: ModelSpec, method: Method, settings: Settings, kv: KVFormat, total: int) -> int:
    """Trainable parameters of a trained method (``total``: all of the model's, for full fine-tuning)."""
    match method:
        case Method.lora:
            return lora_params(resolve_targets(spec, settings.targets, settings.experts), settings.rank)
        case Method.dora:
            return dora_params(resolve_targets(spec, settings.targets, settings.experts), settings.rank)
        case Method.ia3:
            targets, feedforward, _ = ia3_targets(spec, settings)
            return ia3_params(targets, feedforward)
        case Method.loreft:
            return loreft_params(spec, settings.loreft)
        case Method.prefix:
            return prefix_params(spec, settings.virtual_tokens, kv)
        case Method.prompt:
            return prompt_params(spec, settings.virtual_tokens)
        case Method.full:
            return total
    raise EstimatorError(f"{method.value} is not a trained method")


def parse_methods(text: str) -> tuple[Method, ...]:
    """``all``, or a comma list of kv, lora, dora, ia3, loreft, prefix, prompt, full, pretraining."""
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if words == ["all"]:
        return tuple(Method)
    valid = ", ".join(m.value for m in Method)
    chosen = []
    for word in words:
        if word not in Method.__members__:
            raise EstimatorError(f"unknown method {word!r}; use all or a comma list of: {valid}")
        chosen.append(Method(word))
    if not chosen:
        raise EstimatorError(f"--methods is empty; use all or a comma list of: {valid}")
    return tuple(dict.fromkeys([Method.kv, *chosen]))  # the KV cache is the yardstick, always first


def parse_layers(text: str, spec: ModelSpec) -> tuple[int, ...] | None:
    """``all`` or a comma list of layer indices such as ``0,4,8``; indices must exist in the model."""
    if text.strip().lower() == "all":
        return None
    try:
        layers = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise EstimatorError(f"cannot read --loreft-layers {text!r}; write all or indices such as 0,4,8") from None
    bad = [i for i in layers if not 0 <= i < spec.num_hidden_layers]
    if bad or not layers:
        raise EstimatorError(
            f"--loreft-layers {text!r}: {spec.display_name} has layers 0 to {spec.num_hidden_layers - 1}; "
            "give indices in that range or all"
        )
    return layers


def parse_positions(text: str) -> tuple[int, int]:
    """LoReFT positions as pyreft writes them: ``f7+l7`` (first 7 and last 7), ``f5``, ``l3``."""
    first = last = 0
    for part in text.lower().replace(" ", "").split("+"):
        if len(part) > 1 and part[0] in "fl" and part[1:].isdigit():
            if part[0] == "f":
                first = int(part[1:])
            else:
                last = int(part[1:])
        else:
            raise EstimatorError(f"cannot read --loreft-positions {text!r}; write e.g. f7+l7, f5 or l3")
    if first + last == 0:
        raise EstimatorError(f"--loreft-positions {text!r} selects no positions; write e.g. f7+l7")
    return first, last
