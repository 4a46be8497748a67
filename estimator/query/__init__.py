"""The question, for every face: its vocabulary (:mod:`estimator.query.vocabulary`), the frozen
:class:`Query` with every rule it enforces (:mod:`estimator.query.model`), and the options that name its
parts, with their defaults, choices and help (:mod:`estimator.query.options`). The CLI turns the options
into typer options, the server into ``GET /api/options``, and the page reads that; neither face imports
the other.
"""

from estimator.query.model import (
    ADAPTER_DTYPES,
    MAX_TOKENS,
    PARTS,
    QUERY_FIELDS,
    Query,
    as_kv_format,
    choice,
    dtype_of,
    whole,
)
from estimator.query.options import query_from_options
from estimator.query.vocabulary import (
    CORE,
    NOT_STORES,
    PEFT_TUNERS,
    LoReFT,
    Method,
    parse_layers,
    parse_methods,
    parse_positions,
)

__all__ = [
    "ADAPTER_DTYPES",
    "CORE",
    "MAX_TOKENS",
    "NOT_STORES",
    "PARTS",
    "PEFT_TUNERS",
    "QUERY_FIELDS",
    "LoReFT",
    "Method",
    "Query",
    "as_kv_format",
    "choice",
    "dtype_of",
    "parse_layers",
    "parse_methods",
    "parse_positions",
    "query_from_options",
    "whole",
]
