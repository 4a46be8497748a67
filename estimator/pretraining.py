"""Pretraining: every weight, spread over every pretraining token."""

from __future__ import annotations

from typing import TYPE_CHECKING

from estimator.architecture import total_params
from estimator.units import bits_to_bytes

if TYPE_CHECKING:
    from estimator.specs import ModelSpec
    from estimator.units import DType


def weights_bytes(spec: ModelSpec, weights_dtype: DType) -> int:
    """Bytes of all weights: N · b / 8 (Llama 3 70B in bf16: 70,553,706,496 · 2 = 141,107,412,992)."""
    return bits_to_bytes(total_params(spec) * weights_dtype.bits)


def pretraining_bytes_per_token(spec: ModelSpec, weights_dtype: DType, pretraining_tokens: int) -> float:
    """Weight bytes per pretraining token: N · b / 8 / D.

    where: N = parameters, b = bits per weight, D = pretraining tokens.
    Llama 3 70B, bf16, 15T tokens: 141,107,412,992 / 15e12 = 0.0094 bytes per token.
    """
    return weights_bytes(spec, weights_dtype) / pretraining_tokens
