"""``sweep --kv-method``: per point of the grid, each method's cache and the LoRA against it (numpy columns)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from estimator.frontier.sizes import method_cache_bytes

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from estimator.frontier.methods import KVMethod
    from estimator.query import Query


def column_stem(method: KVMethod) -> str:
    """``commvq:bits=1`` → ``commvq_bits_1``; ``turboquant:bits=3.5`` → ``turboquant_bits_3.5``."""
    return re.sub(r"[^a-z0-9.]+", "_", method.text.lower()).strip("_")


def frontier_columns(q: Query, tokens: NDArray[Any], lora_bytes: NDArray[Any]) -> dict[str, NDArray[Any]]:
    """For each method of ``q.kv_methods``: ``<stem>_cache_bytes`` C(T), ``<stem>_bytes_per_token`` C(T) / T and
    ``<stem>_to_lora_bytes_ratio`` C(T) / LoRA bytes, at each row's T (Llama 3 70B, NVFP4, T = 100,000, r = 32:
    9,216,000,640 bytes, 92,160.0064 per token, 11.1x the LoRA's 828,375,040)."""
    columns: dict[str, NDArray[Any]] = {}
    unique = np.unique(tokens)
    for method in q.kv_methods:
        method.check(q)
        sizes = {int(t): method_cache_bytes(q, method, int(t)) for t in unique}
        cache = np.array([sizes[int(t)] for t in tokens], dtype=np.int64)
        stem = column_stem(method)
        columns[f"{stem}_cache_bytes"] = cache
        columns[f"{stem}_bytes_per_token"] = cache / tokens
        columns[f"{stem}_to_lora_bytes_ratio"] = cache / lora_bytes
    return columns
