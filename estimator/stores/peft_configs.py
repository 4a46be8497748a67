"""peft configurations as data, for validation: what :mod:`estimator.validate.measure` asks peft to build.

Kept apart from the rules so that a plain query never defines them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PeftConfig:
    """A peft configuration as data: the class name in ``peft`` and its keyword arguments (built by
    :mod:`estimator.validate.measure`, which alone imports peft)."""

    kind: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def lora_config(target_modules: str | list[str], rank: int, dora: bool = False) -> PeftConfig:
    kwargs: dict[str, Any] = {"r": rank, "target_modules": target_modules}
    if dora:
        kwargs["use_dora"] = True
    return PeftConfig("LoraConfig", kwargs)


def ia3_config(targets: list[str] | None, feedforward: list[str]) -> PeftConfig:
    """peft's own default targets (``targets`` None) or the given ones."""
    if targets is None:
        return PeftConfig("IA3Config", {"task_type": "CAUSAL_LM"})
    return PeftConfig(
        "IA3Config", {"task_type": "CAUSAL_LM", "target_modules": targets, "feedforward_modules": feedforward}
    )


def virtual_tokens_config(kind: str, virtual_tokens: int) -> PeftConfig:
    """Prefix (``PrefixTuningConfig``) or prompt (``PromptTuningConfig``) tuning of n virtual tokens."""
    return PeftConfig(kind, {"task_type": "CAUSAL_LM", "num_virtual_tokens": virtual_tokens})
