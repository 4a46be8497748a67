"""Every empirical constant in one sourced table: value, unit, source, conditions.

Structural numbers (2 for K and V, 8 bits per byte) live next to the formulas that use them; the
numbers here are measurements from papers, each overridable from the CLI (``estimate constants``
lists them with their options).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from estimator.errors import EstimatorError


@dataclass(frozen=True)
class Constant:
    """One empirical number and where it comes from."""

    name: str
    value: float
    unit: str
    source: str
    conditions: str
    option: str  # the CLI option that overrides it


PHYSICS_3_3 = (
    "Allen-Zhu & Li 2024, Physics of Language Models: Part 3.3, Knowledge Capacity Scaling Laws (arXiv:2404.05405)"
)
EXPOSURES_FOR_CAPACITY = 1_000  # Physics of LMs 3.3: 2 bits per parameter once each fact is seen ~1,000 times
CHINCHILLA = "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models (arXiv:2203.15556), approach 3"

KNOWLEDGE_BITS_PER_PARAM = Constant(
    "knowledge_bits_per_param",
    2.0,
    "bits per parameter",
    PHYSICS_3_3,
    "each fact seen about 1,000 times in training; holds for bf16 and int8 weights",
    "--bits-per-param",
)
KNOWLEDGE_BITS_PER_PARAM_100_EXPOSURES = Constant(
    "knowledge_bits_per_param_100_exposures",
    1.0,
    "bits per parameter",
    PHYSICS_3_3,
    "each fact seen about 100 times in training",
    "--exposures 100",
)
KNOWLEDGE_BITS_PER_PARAM_INT4 = Constant(
    "knowledge_bits_per_param_int4",
    0.7,
    "bits per parameter",
    PHYSICS_3_3,
    "weights quantised to int4 (about 1,000 exposures)",
    "--bits-per-param 0.7",
)
TEXT_NATS_PER_TOKEN = Constant(
    "text_nats_per_token",
    1.69,
    "nats per token",
    CHINCHILLA,
    "the irreducible loss E of the fitted L(N, D) = E + A/N^α + B/D^β on MassiveText: the entropy of the "
    "text that no model size removes",
    "--text-nats-per-token",
)

CONSTANTS = (
    KNOWLEDGE_BITS_PER_PARAM,
    KNOWLEDGE_BITS_PER_PARAM_100_EXPOSURES,
    KNOWLEDGE_BITS_PER_PARAM_INT4,
    TEXT_NATS_PER_TOKEN,
)


def nats_to_bits(nats: float) -> float:
    """bits = nats / ln 2 (1.69 nats = 2.438 bits)."""
    return nats / math.log(2)


def knowledge_bits_per_param(exposures: int = 1000) -> float:
    """The table's capacity for a number of exposures per fact: 2 bits at 1,000, 1 bit at 100.

    The paper measures those two points; other counts are refused rather than interpolated.
    """
    if exposures == EXPOSURES_FOR_CAPACITY:
        return KNOWLEDGE_BITS_PER_PARAM.value
    if exposures == 100:
        return KNOWLEDGE_BITS_PER_PARAM_100_EXPOSURES.value
    raise EstimatorError(f"exposures {exposures}: the measured points are 100 and 1000; use one of them")
