"""One row per cache-shrinking method beside the plain cache: its bytes at T, the part that grows and the
part that does not, KV ÷ this, and every trained store measured against this cache (ratio and crossover)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from estimator.frontier.sizes import method_cache_bytes, method_fixed_bytes
from estimator.query import MAX_TOKENS

if TYPE_CHECKING:
    from estimator.compare import MethodRow
    from estimator.frontier.methods import KVMethod
    from estimator.query import Query


@dataclass(frozen=True)
class Crossing:
    """Where a method's cache first holds a store's bytes: the fields of :class:`estimator.compare.Crossover`,
    the reason as its value (crosses, state-exceeds, never-reaches); ``state_bytes``: the cache's fixed part."""

    tokens: int | None
    reason: str
    state_multiple: float | None = None
    ceiling_bytes: int | None = None
    state_bytes: int = 0


@dataclass(frozen=True)
class Against:
    """A trained store against one method's cache: this cache ÷ the store at T, and where the cache first
    holds the store's bytes (the crossover)."""

    method: str  # the store's Method value (lora, dora, ...)
    label: str
    cache_to_store_ratio: float
    crossover: Crossing


@dataclass(frozen=True)
class KVMethodRow:
    """One method's cache at T: ``bytes`` = ``growing_bytes`` + ``fixed_bytes``; ``kv_to_this_bytes_ratio``: the
    plain cache ÷ this."""

    method: KVMethod
    label: str
    bytes: int
    growing_bytes: int
    fixed_bytes: int
    bytes_per_token: float
    kv_to_this_bytes_ratio: float
    against: tuple[Against, ...]


def method_crossover(q: Query, method: KVMethod, adapter_bytes: int) -> Crossing:
    """Smallest T at which the method's cache holds at least A bytes, and why it never does.

    C(0) is its fixed part: where that alone ≥ A there is no crossing (a Cartridge of 2,048 tokens on
    Llama 3.1 8B, 268,435,456 bytes, against a rank-8 q,v LoRA of 6,815,744: 39.4 times it); where the cache
    stops growing below A it never reaches it; otherwise the cache is non-decreasing in T and T is searched
    (Llama 3 70B, NVFP4, r = 32 LoRA of 828,375,040 bytes: ⌈(828,375,040 − 640) / 92,160⌉ = 8,989).
    """
    fixed = method_fixed_bytes(q, method)
    ceiling = method_cache_bytes(q, method, MAX_TOKENS)
    if fixed >= adapter_bytes:
        return Crossing(None, "state-exceeds", fixed / adapter_bytes, ceiling, fixed)
    if ceiling < adapter_bytes:
        return Crossing(None, "never-reaches", None, ceiling, fixed)
    low, high = 1, MAX_TOKENS
    while low < high:
        mid = (low + high) // 2
        if method_cache_bytes(q, method, mid) >= adapter_bytes:
            high = mid
        else:
            low = mid + 1
    return Crossing(high, "crosses", None, None, fixed)


def kv_method_rows(q: Query, kv_bytes: int, trained: tuple[MethodRow, ...]) -> tuple[KVMethodRow, ...]:
    """A row per method of ``q.kv_methods``; ``trained`` are the estimate's rows of trained stores."""
    from estimator.stores import STORES

    rows = []
    for method in q.kv_methods:
        method.check(q)
        size = method_cache_bytes(q, method, q.tokens)
        fixed = method_fixed_bytes(q, method)
        against = tuple(
            Against(r.method.value, STORES[r.method].label(q), size / r.bytes, method_crossover(q, method, r.bytes))
            for r in trained
        )
        rows.append(
            KVMethodRow(method, method.label(), size, size - fixed, fixed, size / q.tokens, kv_bytes / size, against)
        )
    return tuple(rows)
