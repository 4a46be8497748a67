"""estimator: exact bytes per token for each way of teaching a language model new text.

>>> from estimator import load_spec, estimate
>>> est = estimate(load_spec("llama3-70b"), tokens=100_000, rank=32)
>>> est.kv_bytes_per_token, est.lora_params, round(est.kv_to_lora_bytes_ratio, 1)
(327680.0, 414187520, 39.6)

The names below are imported on first use, so that ``import estimator.cli`` loads only what a
command needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from estimator.compare import Crossover, CrossoverReason, Estimate, estimate, evaluate
    from estimator.errors import EstimatorError
    from estimator.hf_config import spec_from_hf_config as read_config
    from estimator.present.records import estimate_record
    from estimator.query import Query, query_from_options
    from estimator.specs import ModelSpec
    from estimator.units import DType, parse_tokens
    from estimator.zoo import load_spec, model_names

_EXPORTS = {
    "DType": ("estimator.units", "DType"),
    "Crossover": ("estimator.compare", "Crossover"),
    "CrossoverReason": ("estimator.compare", "CrossoverReason"),
    "Estimate": ("estimator.compare", "Estimate"),
    "EstimatorError": ("estimator.errors", "EstimatorError"),
    "ModelSpec": ("estimator.specs", "ModelSpec"),
    "Query": ("estimator.query", "Query"),
    "query_from_options": ("estimator.query.options", "query_from_options"),
    "estimate": ("estimator.compare", "estimate"),
    "estimate_record": ("estimator.present.records", "estimate_record"),
    "evaluate": ("estimator.compare", "evaluate"),
    "load_spec": ("estimator.zoo", "load_spec"),
    "model_names": ("estimator.zoo", "model_names"),
    "parse_tokens": ("estimator.units", "parse_tokens"),
    "read_config": ("estimator.hf_config", "spec_from_hf_config"),
}
__all__ = [
    "Crossover",
    "CrossoverReason",
    "DType",
    "Estimate",
    "EstimatorError",
    "ModelSpec",
    "Query",
    "estimate",
    "estimate_record",
    "evaluate",
    "load_spec",
    "model_names",
    "parse_tokens",
    "query_from_options",
    "read_config",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'estimator' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's own names and the API's, which :func:`__getattr__` imports on first use."""
    return sorted({*globals(), *__all__})
