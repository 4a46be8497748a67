"""``serve-memory --kv-method``: whether batches of --tokens fit one GPU when the cache is shrunk by a published
method (NVFP4, TurboQuant, CommVQ, KVTC, MHA2MLA, TransMLA), against the budget of ``--engine none``.

No serving engine release implements these methods (CommVQ, TurboQuant and KVTC are not in vLLM or SGLang), so
there is no engine rule to follow: the pool is the plain budget, memory × fraction − weights − --overhead, and a
batch fits where batch · C(T) ≤ pool, C(T) being the method's cache for T tokens
(:func:`estimator.frontier.sizes.method_cache_bytes`).

Llama 3.1 8B on an RTX 4090 (25,769,803,776 bytes), bf16 weights (16,060,522,496), fraction 0.9: the pool is
23,192,823,398 − 16,060,522,496 = 7,132,300,902 bytes; CommVQ 1 bit at 131,072 tokens needs 1,073,741,824
(fits); the bf16 cache needs 17,179,869,184 (does not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.frontier.sizes import method_cache_bytes
from estimator.query import MAX_TOKENS

if TYPE_CHECKING:
    from estimator.frontier.methods import KVMethod
    from estimator.memory.engines import Pool
    from estimator.query import Query

SERVING_KINDS = ("quantisation", "conversion")  # the methods a pool divides by: a fixed rate per token


@dataclass(frozen=True)
class MethodFit:
    """One method's cache for a batch of --tokens against one GPU's pool."""

    method: KVMethod
    batch: int
    cache_bytes: int  # batch · C(T)
    pool_bytes: int
    longest_tokens: int  # the most tokens one sequence of the batch can hold in the pool (0: none)

    @property
    def fits(self) -> bool:
        return self.cache_bytes <= self.pool_bytes

    @property
    def headroom_bytes(self) -> int:
        return self.pool_bytes - self.cache_bytes


def check_serving(q: Query, engine: str, tps: tuple[int, ...]) -> None:
    """Refuse what is not modelled: an engine rule (none implements these methods), tensor parallelism, evictions."""
    if engine != "none":
        raise EstimatorError(
            "--kv-method: no serving engine release implements these methods (CommVQ, TurboQuant, KVTC, MLA "
            "conversions are not in vLLM or SGLang); use --engine none, the plain budget"
        )
    if tps != (1,):
        raise EstimatorError("--kv-method is sized on one GPU; use --tp 1")
    for method in q.kv_methods:
        if method.kind not in SERVING_KINDS:
            raise EstimatorError(
                f"serve-memory --kv-method {method.text}: {method.kind} methods have no fixed bytes per token for a "
                f"pool to divide by; give a quantisation or a conversion (nvfp4, turboquant, commvq, kvtc, mha2mla, "
                "transmla)"
            )
        method.check(q)


def longest_tokens(q: Query, method: KVMethod, batch: int, pool_bytes: int) -> int:
    """The largest T with batch · C(T) ≤ pool (C non-decreasing in T), at most the model's context window (its
    hard limit, as the plain verdict stops at it): 0 where even one token does not fit."""
    from estimator.compare import context_window_tokens

    if batch * method_cache_bytes(q, method, 1) > pool_bytes:
        return 0
    low, high = 1, context_window_tokens(q.spec) or MAX_TOKENS
    if batch * method_cache_bytes(q, method, high) <= pool_bytes:
        return high
    while low < high:
        mid = (low + high + 1) // 2
        if batch * method_cache_bytes(q, method, mid) <= pool_bytes:
            low = mid
        else:
            high = mid - 1
    return low


def method_fits(q: Query, pool: Pool, batches: tuple[int, ...]) -> tuple[MethodFit, ...]:
    """Every method of ``q.kv_methods`` for every batch against ``pool`` (``--engine none``, one GPU)."""
    room = max(0, pool.pool_bytes)
    return tuple(
        MethodFit(m, b, b * method_cache_bytes(q, m, q.tokens), room, longest_tokens(q, m, b, room))
        for m in q.kv_methods
        for b in batches
    )


def fit_rows(fits: tuple[MethodFit, ...], tokens: int) -> list[list[str]]:
    """The table: method, batch, cache, pool, headroom (GiB), fits, longest context."""
    from estimator.present.serving import gib

    head = ["cache (--kv-method)", "batch", f"cache at {tokens:,}", "pool", "headroom", "fits", "longest context"]
    body = [
        [f.method.label(), str(f.batch), gib(f.cache_bytes), gib(f.pool_bytes),
         gib(f.headroom_bytes) if f.fits else f"short by {gib(-f.headroom_bytes)}",
         "yes" if f.fits else "no", f"{f.longest_tokens:,}"]
        for f in fits
    ]  # fmt: skip
    return [head, *body]


def fit_records(fits: tuple[MethodFit, ...]) -> list[dict[str, Any]]:
    return [
        {
            "method": f.method.text,
            "label": f.method.label(),
            "batch": f.batch,
            "cache_bytes": f.cache_bytes,
            "kv_pool_bytes": f.pool_bytes,
            "headroom_bytes": f.headroom_bytes,
            "fits": f.fits,
            "longest_tokens": f.longest_tokens,
        }
        for f in fits
    ]


def fit_assumptions(q: Query) -> list[str]:
    return [
        "--kv-method: no engine release implements these methods, so the pool is --engine none's plain budget "
        "(memory × fraction − weights − --overhead); each cache is sized from the model's layout "
        f"({', '.join(m.text for m in q.kv_methods)}); the quality is the papers', as `estimate --kv-method` cites it."
    ]
