"""Putting the stores side by side: rows, ratios, crossover tokens and parity ranks (no I/O).

:func:`evaluate` answers a :class:`~estimator.query.Query`; :func:`estimate` builds the query from
arguments (the Python API). Both return an :class:`Estimate`, a plain result that the CLI prints and
the plots draw.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from enum import StrEnum
from os import PathLike
from typing import TYPE_CHECKING, Any

from estimator.architecture import active_params, param_breakdown
from estimator.errors import MethodNotApplicableError
from estimator.kv import (
    KVFormat,
    kv_bytes_per_token,
    kv_cache_bytes,
    kv_max_cache_bytes,
    kv_state_bytes,
    kv_tokens_held,
    mla_forms,
    windowed,
)
from estimator.query import Query, query_from_options
from estimator.query.vocabulary import Method
from estimator.specs import ModelSpec
from estimator.stores import STORES
from estimator.stores.targets import Targets, lora_bytes, lora_params
from estimator.units import BITS_PER_BYTE, DType, bits_to_bytes

if TYPE_CHECKING:
    from estimator.frontier.rows import KVMethodRow


class CrossoverReason(StrEnum):
    """Why the cache and an adapter meet where they do, or never."""

    crosses = "crosses"  # KV(T) rises past A at T (KV(T − 1) < A; KV(0) = fixed state < A)
    state_exceeds = "state-exceeds"  # the fixed state alone ≥ A: the cache is larger from the first token
    never_reaches = "never-reaches"  # windows (and a fixed state) cap the cache below A: it is smaller at any T


@dataclass(frozen=True)
class Crossover:
    """Where the KV cache first holds an adapter's bytes, with the reason; ``tokens`` is None unless it crosses.

    ``state_multiple`` = fixed state ÷ adapter bytes where the state alone exceeds it; ``ceiling_bytes`` =
    the most the cache ever holds where windows cap it (None where it grows without end); ``state_bytes`` =
    the fixed state S = KV(0).
    """

    tokens: int | None
    reason: CrossoverReason
    state_multiple: float | None = None
    ceiling_bytes: int | None = None
    state_bytes: int = 0


def crossover(spec: ModelSpec, adapter_bytes: int, kv: KVFormat | DType) -> Crossover:
    """Smallest T at which the KV cache holds at least the adapter's bytes, KV(T) ≥ A, and why.

    KV(0) is the fixed state S (recurrent and convolution states): where S ≥ A the cache exceeds the
    adapter before any token, so there is no crossing (Qwen3-Next-80B-A3B, r = 16 on q_proj, v_proj:
    S = 39,518,208 bytes = 8.04 × A = 4,915,200). Where windows cap the cache below A it never reaches it.
    Otherwise T = ⌈(A − S) / per-token bytes⌉ without windows (Llama 3 70B, r = 32 LoRA in bf16:
    ⌈828,375,040 / 327,680⌉ = 2,528 tokens); with windows the cache grows slower and T is searched.
    """
    state = kv_state_bytes(spec, kv)
    ceiling = kv_max_cache_bytes(spec, kv)
    if state >= adapter_bytes:
        return Crossover(None, CrossoverReason.state_exceeds, state / adapter_bytes, ceiling, state)
    per_token = kv_bytes_per_token(spec, kv)
    if (ceiling is not None and ceiling < adapter_bytes) or per_token == 0:
        return Crossover(None, CrossoverReason.never_reaches, None, ceiling if per_token else state, state)
    low, high = 1, max(1, int(adapter_bytes // per_token) + 1)
    while kv_cache_bytes(spec, high, kv) < adapter_bytes:  # windows: the cache grows slower
        low, high = high, high * 2
    while low < high:  # KV(T) is non-decreasing in T
        mid = (low + high) // 2
        if kv_cache_bytes(spec, mid, kv) >= adapter_bytes:
            high = mid
        else:
            low = mid + 1
    return Crossover(high, CrossoverReason.crosses, None, ceiling, state)


def crossover_tokens(spec: ModelSpec, adapter_bytes: int, kv: KVFormat | DType) -> int | None:
    """The T of :func:`crossover` where the cache crosses the adapter; None where it never does (its fixed
    state already exceeds the adapter, or windows cap it below). 2,528 for Llama 3 70B at r = 32."""
    return crossover(spec, adapter_bytes, kv).tokens


def context_window_tokens(spec: ModelSpec) -> int | None:
    """max_position_embeddings, or None where the family records none (MAX_CONTEXT = 10^12: Mamba 2.8B)."""
    from estimator.families.schema import MAX_CONTEXT

    window = spec.max_position_embeddings
    return None if window >= MAX_CONTEXT else window


def parity_rank(targets: Targets, kv_bytes: int, adapter_dtype: DType) -> int:
    """Smallest r whose LoRA holds at least the KV cache's bytes: ⌈8 · KV(T) / (b · P₁)⌉.

    where: P₁ = LoRA parameters at rank 1, b = adapter bits per parameter, KV(T) = cache bytes.
    Llama 3 70B, 100k tokens, bf16: ⌈32,768,000,000 / 25,886,720⌉ = 1,266.
    """
    per_rank_bits = lora_params(targets, 1) * adapter_dtype.bits
    return max(1, -(-kv_bytes * BITS_PER_BYTE // per_rank_bits))


@dataclass(frozen=True)
class MethodRow:
    """One way of storing the text: its size, its bytes per token of the text, and the KV ratio."""

    method: Method
    params: int | None
    bytes: int
    bytes_per_token: float
    kv_to_this_bytes_ratio: float
    crossover: Crossover | None  # None for the cache itself and the stores not trained (pretraining)

    @property
    def crossover_tokens(self) -> int | None:
        return None if self.crossover is None else self.crossover.tokens


@dataclass(frozen=True, eq=False)  # compared by identity: a record, never a key
class Estimate:
    """One query's numbers, every field in base units (bytes, parameters, tokens)."""

    query: Query
    targets: Targets
    params: int
    active_params: int
    params_breakdown: dict[str, int]
    kv_bytes_per_token_unbounded: float
    kv_cache_bytes: int
    kv_state_bytes: int  # the part of the cache that does not grow (recurrent and convolution states)
    tokens_held: int  # the most tokens any layer's cache holds (T, or a window's w; 0 for a pure SSM)
    lora_params: int
    lora_bytes: int
    weights_bytes: int
    crossover: Crossover
    parity_rank: int
    parity_lora_params: int
    rows: tuple[MethodRow, ...] = ()
    skipped: tuple[tuple[Method, str], ...] = ()
    kv_method_rows: tuple[KVMethodRow, ...] = ()  # --kv-method: the shrunk caches beside the plain one

    @property
    def spec(self) -> ModelSpec:
        return self.query.spec

    @property
    def crossover_tokens(self) -> int | None:
        """Tokens at which the cache crosses the LoRA; None where it does not (``crossover.reason`` says why)."""
        return self.crossover.tokens

    @property
    def tokens(self) -> int:
        return self.query.tokens

    @property
    def rank(self) -> int:
        return self.query.rank

    @property
    def kv(self) -> KVFormat:
        return self.query.kv

    @property
    def kv_dtype(self) -> DType:
        return self.query.kv.dtype

    @property
    def adapter_dtype(self) -> DType:
        return self.query.adapter_dtype

    @property
    def weights_dtype(self) -> DType:
        return self.query.weights_dtype

    @property
    def methods(self) -> tuple[Method, ...]:
        return self.query.methods

    @property
    def pretraining_tokens(self) -> int | None:
        return self.query.pretraining_tokens_or_published

    @property
    def kv_bytes_per_token(self) -> float:
        """KV bytes per token of text at this T (= the unbounded figure without sliding windows)."""
        return self.kv_cache_bytes / self.tokens

    @property
    def holds_all_tokens(self) -> bool:
        """Whether the cache keeps the whole text: every token in some layer, or a recurrent state that
        summarises all of it. False where every layer is windowed and T is past the window: the cache then
        holds only the last w tokens, so its bytes are no storage rate of the text."""
        return self.tokens_held >= self.tokens or self.kv_state_bytes > 0

    @property
    def context_window_tokens(self) -> int | None:
        """The model's context window (max_position_embeddings); None for a model without one (a pure SSM,
        whose family records 10^12 for "no limit of its own")."""
        return context_window_tokens(self.spec)

    @property
    def beyond_context_window(self) -> bool:
        """Whether T exceeds the model's context window (never where it has none)."""
        window = self.context_window_tokens
        return window is not None and self.tokens > window

    @property
    def holds_text_as(self) -> str:
        """What the cache keeps of the text: "tokens" (some layer holds every one), "window" (every layer only
        the last w), "state" (a fixed state summarising it, no token held), or "tokens and state"."""
        if self.kv_bytes_per_token_unbounded == 0:
            return "state"
        held = "tokens" if self.tokens_held >= self.tokens else "window"
        return f"{held} and state" if self.kv_state_bytes else held

    @property
    def kv_growing_bytes(self) -> int:
        """The part of the cache that grows with the text (keys and values): total − fixed state."""
        return self.kv_cache_bytes - self.kv_state_bytes

    @property
    def lora_bytes_per_token(self) -> float:
        return self.lora_bytes / self.tokens

    @property
    def kv_to_lora_bytes_ratio(self) -> float:
        """KV bytes per token / LoRA bytes per token at T: how much more the cache spends."""
        return self.kv_cache_bytes / self.lora_bytes

    @property
    def pretraining_bytes_per_token(self) -> float | None:
        if self.pretraining_tokens is None:
            return None
        return self.weights_bytes / self.pretraining_tokens  # N · b / 8 / D, N the part counted (--part)

    @property
    def lora_fraction_of_model_params(self) -> float:
        return self.lora_params / self.params

    @property
    def parity_fraction_of_model_params(self) -> float:
        return self.parity_lora_params / self.params

    @property
    def beyond_full_rank(self) -> bool:
        return self.rank > self.targets.smallest_full_rank

    def row(self, method: Method) -> MethodRow | None:
        return next((r for r in self.rows if r.method is method), None)


def _rows(q: Query, kv_bytes: int) -> tuple[tuple[MethodRow, ...], tuple[tuple[Method, str], ...]]:
    """One row per method, each sized by its store; ``kv_bytes`` is the cache's size at T."""
    rows, skipped = [], []
    kv_per_token = kv_bytes / q.tokens
    for method in q.methods:
        store = STORES[method]
        try:
            size = store.size(q, kv_bytes)
        except MethodNotApplicableError as exc:  # e.g. DoRA on fused expert tensors: say why, keep the rest
            skipped.append((method, str(exc)))
            continue
        if size is None:
            continue
        per_token = size.bytes / size.tokens
        meets = crossover(q.spec, size.bytes, q.kv) if store.trained else None
        rows.append(MethodRow(method, size.params, size.bytes, per_token, kv_per_token / per_token, meets))
    return tuple(rows), tuple(skipped)


def evaluate(q: Query) -> Estimate:
    """Bytes for learning ``q.tokens`` tokens of text with ``q.spec``, each way in ``q.methods``."""
    spec = q.spec
    targets = q.resolved_targets
    kv_bytes = kv_cache_bytes(spec, q.tokens, q.kv)
    adapter = lora_bytes(targets, q.rank, q.adapter_dtype)
    parity = parity_rank(targets, kv_bytes, q.adapter_dtype)
    rows, skipped = _rows(q, kv_bytes)
    shrunk: tuple[KVMethodRow, ...] = ()
    if q.kv_methods:
        from estimator.frontier.rows import kv_method_rows

        shrunk = kv_method_rows(q, kv_bytes, tuple(r for r in rows if r.crossover is not None))
    return Estimate(
        query=q,
        targets=targets,
        params=q.counted_params,  # --part: the language model, or the whole checkpoint
        active_params=active_params(spec),
        params_breakdown={**param_breakdown(spec), **(q.whole_model[1] if q.part == "all" else {})},
        kv_bytes_per_token_unbounded=kv_bytes_per_token(spec, q.kv),
        kv_cache_bytes=kv_bytes,
        kv_state_bytes=kv_state_bytes(spec, q.kv),
        tokens_held=kv_tokens_held(spec, q.tokens, q.kv),
        lora_params=lora_params(targets, q.rank),
        lora_bytes=adapter,
        weights_bytes=bits_to_bytes(q.counted_params * q.weights_dtype.bits),
        crossover=crossover(spec, adapter, q.kv),
        parity_rank=parity,
        parity_lora_params=lora_params(targets, parity),
        rows=rows,
        skipped=skipped,
        kv_method_rows=shrunk,
    )


def estimate(spec: ModelSpec | str | PathLike[str], *args: Any, **options: Any) -> Estimate:
    """Bytes for learning ``tokens`` tokens of text with ``spec``, each way in ``methods``: every option the
    CLI takes, as :func:`estimator.query.query_from_options` reads them (tokens as ``100_000`` or ``"100k"``;
    dtypes, methods, layouts and cache conventions by name). Bad input raises
    :class:`~estimator.errors.EstimatorError`."""
    return evaluate(query_from_options(spec, *args, **options))


estimate.__signature__ = inspect.signature(query_from_options).replace(return_annotation="Estimate")  # type: ignore[attr-defined]


__all__ = [
    "Crossover",
    "CrossoverReason",
    "Estimate",
    "MethodRow",
    "crossover",
    "crossover_tokens",
    "estimate",
    "evaluate",
    "mla_forms",
    "parity_rank",
    "windowed",
]
