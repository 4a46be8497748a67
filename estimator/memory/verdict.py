"""The serving verdict on one GPU: does a batch of B sequences of T tokens fit in the engine's KV pool, how
many sequences fit, how long a context — with the model's context window as a hard limit.

A sequence of T tokens takes the blocks the engine would give it (:mod:`estimator.memory.paged`: every group
of layers, windows with their scheduling slack), or, where the engine does not page alike, the cache of
:func:`~estimator.memory.serving.cache_bytes_per_gpu`. An engine refuses a max_model_len beyond the model's
context window (vLLM unless VLLM_ALLOW_LONG_MAX_MODEL_LEN is set), so a T past it never "fits".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from estimator.kv import kv_max_cache_bytes
from estimator.memory.paged import BlockLayout, block_layout
from estimator.memory.serving import cache_bytes_per_gpu
from estimator.units import largest_fitting

if TYPE_CHECKING:
    from estimator.memory.engines import Pool
    from estimator.memory.serving import ServeSetup
    from estimator.specs import ModelSpec


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """One (TP size, batch) at T tokens against the pool of one GPU."""

    tp: int
    batch: int
    tokens: int
    pool: Pool
    sequence_bytes: int  # the cache one sequence of T tokens takes on this GPU
    most_sequences: int  # at T tokens
    longest_tokens: int | None  # at this batch, within the context window (None: any length fits)
    context_window: int | None

    @property
    def cache_bytes(self) -> int:
        return self.batch * self.sequence_bytes

    @property
    def past_context(self) -> bool:
        return self.context_window is not None and self.tokens > self.context_window

    @property
    def fits(self) -> bool:
        return not self.past_context and self.pool.pool_bytes >= self.cache_bytes

    @property
    def headroom_bytes(self) -> int:
        return max(0, self.pool.pool_bytes - self.cache_bytes)

    @property
    def short_bytes(self) -> int:
        return max(0, self.cache_bytes - self.pool.pool_bytes)


def context_window(spec: ModelSpec) -> int | None:
    """The model's context window, max_position_embeddings (None where a model declares no limit)."""
    from estimator.compare import context_window_tokens

    return context_window_tokens(spec)


def sequence_bytes(
    spec: ModelSpec,
    setup: ServeSetup,
    layout: BlockLayout | None,
    tokens: int,
    batched_tokens: int,
    draft: ModelSpec | None = None,
) -> int:
    """Bytes one sequence of T tokens takes: its blocks across the groups times a block's bytes (page ·
    layers per group), or the paged cache (the draft's too) where the engine does not lay blocks out alike."""
    if layout is None:
        return sum(cache_bytes_per_gpu(m, tokens, setup) for m in (spec, draft) if m is not None)
    block = max(1, setup.block_tokens)
    return layout.request_blocks(tokens, batched_tokens, block) * layout.page_bytes * layout.group_layers


def verdict(
    spec: ModelSpec,
    setup: ServeSetup,
    pool: Pool,
    tokens: int,
    batch: int,
    limit: int,
    draft: ModelSpec | None = None,
) -> Verdict:
    """The verdict for ``batch`` sequences of ``tokens`` on the pool, and the inverse answers (the most
    sequences at T; the longest T ≤ min(context window, ``limit``) at this batch, by bisection: a sequence's
    cache only grows with T)."""
    at = replace(setup, block_tokens=pool.knobs.block_tokens)
    layout = block_layout(spec, at.kv, at.tp, max(1, at.block_tokens), draft) if pool.blocks is not None else None
    batched = pool.knobs.max_num_batched_tokens

    def need(t: int) -> int:
        return sequence_bytes(spec, at, layout, t, batched, draft)

    window = context_window(spec)
    per = need(tokens)
    most = max(0, pool.pool_bytes) // per if per else 0
    top = min(limit, window) if window is not None else limit
    longest: int | None
    if batch * need(top) <= pool.pool_bytes:
        longest = None if window is None and kv_max_cache_bytes(spec, at.kv) is not None else top
    else:
        longest = largest_fitting(lambda t: batch * need(t) <= pool.pool_bytes, top)
    return Verdict(tp=setup.tp, batch=batch, tokens=tokens, pool=pool, sequence_bytes=per, most_sequences=most,
                   longest_tokens=longest, context_window=window)  # fmt: skip
