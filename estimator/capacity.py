"""Bytes are not information: how much knowledge each store can hold, against what the text carries.

Notation: P trained parameters, c knowledge bits per parameter (2 at ~1,000 exposures per fact,
Allen-Zhu & Li 2024), h information bits per token of text (default: Chinchilla's irreducible
loss, 1.69 nats = 2.44 bits, a reference point), T tokens of new text, N model parameters, D
pretraining tokens.

c and h are different quantities: c counts bits of facts a model can be made to state (extractable
knowledge, measured on synthetic biographies), h the entropy of a token of typical text. Their ratio is
a reference point for scale, not a prediction of what a store will keep.

    capacity(P)      = c · P bits
    information(T)   = h · T bits
    headroom         = capacity / information (above 1: room to spare)
    fill tokens      = ⌊c · P / h⌋ (the most text the store could hold)
    KV redundancy    = 8 · KV bytes per token / h (stored bits per bit of information)

Applying c to adapter parameters is an assumption: the paper measured whole models trained from
scratch. All pure functions; no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Any

from estimator.compare import Estimate
from estimator.constants import EXPOSURES_FOR_CAPACITY, KNOWLEDGE_BITS_PER_PARAM, TEXT_NATS_PER_TOKEN, nats_to_bits
from estimator.errors import EstimatorError
from estimator.information import Information, Sample
from estimator.query.vocabulary import Method
from estimator.units import BITS_PER_BYTE

DEFAULT_TEXT_BITS_PER_TOKEN = nats_to_bits(TEXT_NATS_PER_TOKEN.value)
BITS_PER_PARAM_RANGE = (0.001, 64.0)  # knowledge bits a parameter may hold: at most what a float64 stores
BITS_PER_TOKEN_RANGE = (0.001, 1000.0)  # a token carries at most log2(vocabulary) ≈ 17 bits: 1,000 is ample


class Exposures(StrEnum):
    """Times each fact is seen in training: the two points the paper measured (2 bits per parameter at
    ~1,000, 1 bit at ~100; :func:`estimator.constants.knowledge_bits_per_param`)."""

    many = str(EXPOSURES_FOR_CAPACITY)
    few = "100"


def check_rate(value: float, what: str, bounds: tuple[float, float], example: str) -> float:
    """A finite rate within ``bounds``; one line naming ``what`` and an example otherwise."""
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EstimatorError(f"{what} {value!r} is not a number; give e.g. {example}")
    if value <= 0:
        raise EstimatorError(f"{what} {value:g} must be positive; give e.g. {example}")
    if not low <= value <= high:  # also nan and inf
        raise EstimatorError(f"{what} {value:g} must be a number from {low:g} to {high:,g}; give e.g. {example}")
    return float(value)


def knowledge_capacity_bits(params: int, bits_per_param: float = KNOWLEDGE_BITS_PER_PARAM.value) -> float:
    """c · P: Llama 3 70B's r = 32 LoRA, 414,187,520 params at 2 bits: 828,375,040 bits (103.5 MB)."""
    return params * bits_per_param


def text_information_bits(tokens: int, bits_per_token: float = DEFAULT_TEXT_BITS_PER_TOKEN) -> float:
    """h · T: 100,000 tokens at 2.438 bits = 243,817 bits (30.5 kB)."""
    return tokens * bits_per_token


def fill_tokens(params: int, bits_per_param: float, bits_per_token: float) -> int:
    """⌊c · P / h⌋, exactly (the floats' exact values, no rounding before the floor): tokens of text a
    store of P parameters could hold (r = 32 LoRA, 2 bits, 1.69 nats: 339,754,925)."""
    return math.floor(Fraction(bits_per_param) * params / Fraction(bits_per_token))


def stored_bits_per_information_bit(stored_bytes_per_token: float, bits_per_token: float) -> float:
    """8 · bytes per token / h: how many stored bits each bit of information costs (KV: 1,075,175)."""
    return stored_bytes_per_token * BITS_PER_BYTE / bits_per_token


def pretraining_capacity_bits_per_token(params: int, pretraining_tokens: int, bits_per_param: float) -> float:
    """c · N / D: knowledge capacity per pretraining token (Llama 3 70B, 15T: 0.0094 bits)."""
    return knowledge_capacity_bits(params, bits_per_param) / pretraining_tokens


@dataclass(frozen=True)
class CapacityRow:
    """One trained store: its parameters, capacity, headroom at T and the tokens that would fill it.

    ``shared``: the parameters are the pretrained weights themselves (full fine-tuning). By the same
    constant they are already full (c · N bits against the far larger information of D pretraining tokens),
    so their capacity is a bound shared with all the model knows, not room for the text: no headroom."""

    method: Method
    params: int
    capacity_bits: float
    headroom: float | None
    fill_tokens: int | None
    headroom_at_ceiling: float | None = None  # capacity ÷ the information at the range's ceiling
    shared: bool = False


@dataclass(frozen=True)
class Capacity:
    """Knowledge capacity against information for one query (``est``), under stated constants."""

    est: Estimate
    bits_per_param: float
    text_bits_per_token: float
    rows: tuple[CapacityRow, ...]
    information_range: Information | None = None
    sample: Sample | None = None

    @property
    def information_bits(self) -> float:
        return text_information_bits(self.est.tokens, self.text_bits_per_token)

    @property
    def kv_stored_bits_per_token(self) -> float:
        return self.est.kv_bytes_per_token * BITS_PER_BYTE

    @property
    def kv_redundancy(self) -> float:
        """Stored bits of the KV cache per bit of information in the text."""
        return stored_bits_per_information_bit(self.est.kv_bytes_per_token, self.text_bits_per_token)

    @property
    def pretraining_weight_bits_per_token(self) -> float | None:
        per_token = self.est.pretraining_bytes_per_token
        return None if per_token is None else per_token * BITS_PER_BYTE

    @property
    def pretraining_capacity_bits_per_token(self) -> float | None:
        tokens = self.est.pretraining_tokens
        if tokens is None:
            return None
        return pretraining_capacity_bits_per_token(self.est.params, tokens, self.bits_per_param)

    @property
    def pretraining_information_bits(self) -> float | None:
        """h · D: the information of the pretraining tokens at the text's rate (Llama 3 70B: 36.6 Tbit)."""
        tokens = self.est.pretraining_tokens
        return None if tokens is None else tokens * self.text_bits_per_token

    def row(self, method: Method) -> CapacityRow | None:
        return next((r for r in self.rows if r.method is method), None)

    def to_dict(self) -> dict[str, Any]:
        """Every key names its unit."""
        return {
            "model": self.est.spec.name,
            "tokens": self.est.tokens,
            "knowledge_bits_per_param": self.bits_per_param,
            "text_bits_per_token": self.text_bits_per_token,
            "text_information_bits": self.information_bits,
            "text_bits_per_token_range": None
            if self.information_range is None
            else {
                "low_reference": self.information_range.low_bits_per_token,
                "ceiling": self.information_range.ceiling_bits_per_token,
                "point_source": self.information_range.point_source,
                "ceiling_source": self.information_range.ceiling_source,
            },
            "text_sample": None
            if self.sample is None
            else {
                "path": self.sample.path,
                "bytes": self.sample.size_bytes,
                "tokens": self.sample.tokens,
                "tokens_counted": self.sample.tokens_counted,
                "compressed_bytes": self.sample.compressed_bytes,
                "compressed_bits_per_token": self.sample.compressed_bits_per_token,
            },
            "methods": [
                {
                    "method": r.method.value,
                    "params": r.params,
                    "capacity_bits": r.capacity_bits,
                    "capacity_shared_with_pretraining": r.shared,
                    "headroom_capacity_to_information": r.headroom,
                    "headroom_at_information_ceiling": r.headroom_at_ceiling,
                    "fill_tokens": r.fill_tokens,
                }
                for r in self.rows
            ],
            "kv_cache": {
                "stored_bits_per_token": self.kv_stored_bits_per_token,
                "information_bits_per_token": self.text_bits_per_token,
                "stored_bits_per_information_bit": self.kv_redundancy,
            },
            "pretraining": {
                "tokens": self.est.pretraining_tokens,
                "information_bits": self.pretraining_information_bits,
                "weight_bits_per_token": self.pretraining_weight_bits_per_token,
                "capacity_bits_per_token": self.pretraining_capacity_bits_per_token,
            },
        }


def capacity(
    est: Estimate,
    bits_per_param: float = KNOWLEDGE_BITS_PER_PARAM.value,
    text_bits_per_token: float = DEFAULT_TEXT_BITS_PER_TOKEN,
    information_range: Information | None = None,
    sample: Sample | None = None,
) -> Capacity:
    """Capacity and headroom of every trained method in ``est`` (LoRA, DoRA, ..., full fine-tuning); the
    headroom also at the ceiling of ``information_range`` where one is given."""
    check_rate(bits_per_param, "bits per parameter", BITS_PER_PARAM_RANGE, "2")
    check_rate(text_bits_per_token, "bits per token", BITS_PER_TOKEN_RANGE, "2.44")
    information = text_information_bits(est.tokens, text_bits_per_token)
    ceiling = None if information_range is None else est.tokens * information_range.ceiling_bits_per_token
    rows = []
    for row in est.rows:
        if row.params is None or row.method is Method.pretraining:
            continue
        bits = knowledge_capacity_bits(row.params, bits_per_param)
        if row.method is Method.full:
            rows.append(CapacityRow(row.method, row.params, bits, None, None, None, shared=True))
            continue
        fill = fill_tokens(row.params, bits_per_param, text_bits_per_token)
        rows.append(
            CapacityRow(
                row.method, row.params, bits, bits / information, fill, None if ceiling is None else bits / ceiling
            )
        )
    return Capacity(est, bits_per_param, text_bits_per_token, tuple(rows), information_range, sample)
