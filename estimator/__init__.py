"""estimator: exact bytes per token for each way of teaching a language model new text.

>>> from estimator import load_spec, estimate
>>> est = estimate(load_spec("llama3-70b"), tokens=100_000, rank=32)
>>> est.kv_bytes_per_token, est.lora_params, round(est.ratio, 1)
(327680.0, 414187520, 39.6)
"""

from estimator.compare import Estimate, estimate, evaluate
from estimator.errors import EstimatorError
from estimator.hf_config import spec_from_hf_config as read_config
from estimator.query import Query
from estimator.specs import ModelSpec, load_spec, model_names
from estimator.units import DType, parse_tokens

__all__ = [
    "DType",
    "Estimate",
    "EstimatorError",
    "ModelSpec",
    "Query",
    "estimate",
    "evaluate",
    "load_spec",
    "model_names",
    "parse_tokens",
    "read_config",
]
__version__ = "0.1.0"
