"""The question's vocabulary, shared by every face: the ways of storing text (:class:`Method`, with ``all``
and ``peft`` as :data:`CORE` and :data:`PEFT_TUNERS`), the LoReFT shape, and the readers of the options that
choose them (``--methods``, ``--loreft-layers``, ``--loreft-positions``). It imports nothing it is used by.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from estimator.errors import EstimatorError

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
    # peft's other tuners (peft's type names in lower case): shown by name or with ``peft``, never in ``all``
    vera = "vera"
    lokr = "lokr"
    loha = "loha"
    fourierft = "fourierft"
    vblora = "vblora"
    tinylora = "tinylora"
    hra = "hra"
    road = "road"
    oft = "oft"
    boft = "boft"
    miss = "miss"
    gralora = "gralora"
    c3a = "c3a"
    waveft = "waveft"
    delora = "delora"
    shira = "shira"
    randlora = "randlora"
    unilora = "unilora"
    hira = "hira"
    beft = "beft"
    adalora = "adalora"
    poly = "poly"
    p_tuning = "p_tuning"
    cartridge = "cartridge"
    ln_tuning = "ln_tuning"
    peanut = "peanut"
    deft = "deft"
    psoft = "psoft"
    supertuning = "supertuning"
    pvera = "pvera"
    glora = "glora"
    lily = "lily"
    osf = "osf"
    frod = "frod"
    multitask_prompt_tuning = "multitask_prompt_tuning"
    cpt = "cpt"
    adaption_prompt = "adaption_prompt"
    trainable_tokens = "trainable_tokens"
    shadow = "shadow"


CORE = tuple(Method)[: tuple(Method).index(Method.pretraining) + 1]  # ``all``: the nine rows of the table
PEFT_TUNERS = tuple(m for m in Method if m not in CORE)  # ``peft``: every other tuner of peft
# peft tuner types that are no row, and why (each refused in one line by name)
NOT_STORES = {
    "xlora": (
        "peft's X-LoRA is no way of storing text on its own: it mixes LoRA adapters already trained (XLoraConfig needs "
        "their paths) through a trained classifier; size the adapters it mixes with --methods lora"
    ),
    "adamss": (
        "peft's AdaMSS sizes its B factors by a KMeans clustering of each weight matrix's singular vectors "
        "(peft/tuners/adamss/layer.py), so its parameter count depends on the checkpoint's weights, not on its "
        "config.json; not counted here"
    ),
}


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


def parse_methods(text: str) -> tuple[Method, ...]:
    """``all`` (the nine rows), or a comma list of kv, lora, dora, ia3, loreft, prefix, prompt, full, pretraining,
    peft's other tuners by name (vera, lokr, ...) and ``peft`` for all of those."""
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if words == ["all"]:
        return CORE
    valid = ", ".join(m.value for m in Method) + ", peft"
    if "all" in words:
        raise EstimatorError(f"--methods {text!r} mixes all with single methods; give all alone, or a list of: {valid}")
    chosen: list[Method] = []
    for word in words:
        if word == "peft":
            chosen.extend(PEFT_TUNERS)
            continue
        if word in NOT_STORES:
            raise EstimatorError(f"--methods {word}: {NOT_STORES[word]}")
        if word not in Method.__members__:
            raise EstimatorError(f"unknown method {word[:40]!r}; use all, or a comma list of: {valid}")
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
    """LoReFT positions as pyreft writes them: ``f7+l7`` (first 7 and last 7), ``f5``, ``l3``; each side at
    most once (``f7+f8`` is refused, not read as ``f8``)."""
    counts: dict[str, int] = {}
    for part in text.lower().replace(" ", "").split("+"):
        if not 2 <= len(part) <= 10 or part[0] not in "fl" or not part[1:].isascii() or not part[1:].isdigit():
            raise EstimatorError(f"cannot read --loreft-positions {text!r}; write e.g. f7+l7, f5 or l3")
        if part[0] in counts:
            raise EstimatorError(f"--loreft-positions {text!r} gives {part[0]} twice; give each of f and l once")
        counts[part[0]] = int(part[1:])
    first, last = counts.get("f", 0), counts.get("l", 0)
    if first + last == 0:
        raise EstimatorError(f"--loreft-positions {text!r} selects no positions; write e.g. f7+l7")
    return first, last
