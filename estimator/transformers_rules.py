"""What transformers does that the architecture does not require: its conventions, in one place.

- Falcon's new decoder architecture (40B, 180B) broadcasts K and V to all H query heads before
  caching (``FalconAttention._split_heads``): transformers holds H heads where the model needs K.
- Weights kept in float32 whatever the model's dtype (``_keep_in_fp32_modules_strict``), from the
  release that began to: DeepSeek V2/V3's router from 5.24. peft creates a LoRA on such a weight in
  float32 too (even with ``autocast_adapter_dtype=False``).
- What one model type does (the above, and the dtype of a recurrent state) is declared by its family
  (:class:`~estimator.families.conventions.TransformersConventions`); the rules here read it.
- A full sliding window holds w − 1 tokens between steps (``DynamicSlidingWindowLayer``): the
  ``--window-cache w-1`` convention of :class:`~estimator.layout.WindowCache`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from estimator.families import conventions_of

if TYPE_CHECKING:
    from estimator.families.conventions import TransformersConventions
    from estimator.specs import ModelSpec
    from estimator.units import DType


def transformers_conventions(spec: ModelSpec) -> TransformersConventions:
    """What transformers does with ``spec``'s model type, as its family declares it
    (:mod:`estimator.families.conventions`)."""
    return conventions_of(spec.model_type).transformers


def transformers_state_dtype(spec: ModelSpec) -> DType | None:
    """The dtype transformers 5 keeps ``spec``'s recurrent state in: float32 for families whose code casts
    it so (gated DeltaNet), None where it follows the model's dtype."""
    return transformers_conventions(spec).state_dtype


def transformers_kv_heads(spec: ModelSpec) -> int:
    """KV heads per token that transformers' own cache holds (the architecture needs K).

    Falcon-40B: 128, where the model has 8 KV heads; every other supported family: K.
    """
    own = transformers_conventions(spec).cached_kv_heads
    return own(spec) if own is not None else spec.num_key_value_heads or 0


def release(version: str) -> tuple[int, int]:
    """(major, minor) of a version string such as ``5.24.0`` or ``2.13.0+cpu``; (0, 0) if unreadable."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def fp32_weights(spec: ModelSpec, transformers_version: str) -> tuple[str, ...]:
    """Linear maps whose weights this transformers release keeps in float32 for ``spec``'s family.

    DeepSeek-V3 on transformers 5.24.0: ("mlp.gate",), its router; on 5.23.0: () (all in the model's dtype).
    """
    own = transformers_conventions(spec)
    return own.fp32_weights if own.fp32_weights and release(transformers_version) >= own.fp32_since else ()
