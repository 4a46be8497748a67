"""Words for what the cache holds: one formula where every layer attends alike (the common case), and a
sentence per kind of layer where they differ (windows apart): attention, latent attention, recurrent
states, layers that mix nothing."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING

from estimator.architecture import layout_of
from estimator.kv import KV_TENSORS, MlaCache, WindowCache, kv_bytes_per_token, mla_forms
from estimator.layout import Attention
from estimator.transformers_rules import transformers_kv_heads
from estimator.units import format_bytes, format_number

if TYPE_CHECKING:
    from estimator.compare import Estimate


def cache_words(est: Estimate) -> list[str]:
    """What the cache holds, with the formula and every convention that sets it."""
    uniform = _uniform(est)
    words = _uniform_attention_words(est) if uniform else _per_kind_words(est)
    return [*words, *_window_words(est)] if not uniform else words


def _uniform(est: Estimate) -> bool:
    """Every layer is attention with the same cache row (windows may differ), or latent attention."""
    mixers = [g.mixer for g in layout_of(est.spec).groups]
    if mla_forms(est.spec):
        from estimator.layout.latent import LatentAttention  # only models with latent attention load it

        return all(isinstance(m, LatentAttention) for m in mixers)
    rows = {m.vectors(est.kv) for m in mixers if isinstance(m, Attention)}
    return len(rows) == 1 and all(isinstance(m, Attention) and m.chunk is None and m.stores_kv for m in mixers)


def _uniform_attention_words(est: Estimate) -> list[str]:
    """Every layer attends alike (one K and head_dim, or MLA): one formula for the whole model."""
    spec, kv = est.spec, est.kv
    per_token = est.kv_bytes_per_token_unbounded
    storage = kv.describe()
    bits = kv.vector_bits(spec.attention_head_dim) / spec.attention_head_dim
    if mla_forms(spec):
        mixer = layout_of(spec).groups[0].mixer
        vectors = " + ".join(f"{count} × {length}" for count, length in mixer.vectors(kv))
        form = (
            "the latent vector (kv_lora_rank + qk_rope_head_dim)"
            if kv.mla is MlaCache.latent
            else ("per-head keys (qk_nope + qk_rope) and values (v_head_dim)")
        )
        formula = (
            f"KV cache (multi-head latent attention, {kv.mla.value}): {spec.num_hidden_layers} layers × ({vectors}) "
            f"elements of {form} in {storage} = {format_number(per_token)} bytes per cached token."
        )
        other = MlaCache.expanded if kv.mla is MlaCache.latent else MlaCache.latent
        alt = kv_bytes_per_token(spec, replace(kv, mla=other))
        formula += (
            f" The {other.value} form (--mla-cache {other.value}) holds {format_number(alt)} bytes per token; "
            "serving engines (vLLM, SGLang) and transformers >= 5 keep the latent form, a naive implementation "
            "(and transformers 4.x) the expanded one."
        )
    else:
        element = f"{bits:g} bits" if kv.quantised else f"{kv.dtype.bits / 8:g} bytes"
        formula = (
            f"KV cache: {KV_TENSORS} (K and V) × {spec.num_hidden_layers} layers × {spec.kv_heads} KV "
            f"heads × {spec.attention_head_dim} head_dim × {element} ({storage}) = {format_number(per_token)} "
            "bytes per cached token; one sequence, no paging or allocator overhead."
        )
    words = [formula]
    held = transformers_kv_heads(spec)
    if held != spec.kv_heads:
        words.append(
            f"transformers' {spec.model_type} code caches K and V broadcast to all {held} query heads, "
            f"{held // spec.kv_heads}x this; the architecture (and serving engines) need only "
            f"{spec.kv_heads} KV heads, which is what is counted here."
        )
    windows = [g.mixer.window for g in layout_of(spec).groups for _ in range(g.layers)]
    windowed = [w for w in windows if w is not None]
    if windowed:
        widths = ", ".join(f"{w:,}" for w in sorted(set(windowed)))
        keep = (
            "w tokens (a ring buffer of the window)"
            if kv.window is WindowCache.window
            else ("w − 1 tokens between steps, as transformers does")
        )
        words.append(
            f"Sliding window of {widths} tokens on {len(windowed)} of {len(windows)} layers: such a layer keeps "
            f"{keep} (--window-cache), so at {est.tokens:,} tokens the cache holds {est.kv_cache_bytes:,} bytes, "
            f"{format_number(est.kv_bytes_per_token)} bytes per token of text."
        )
    return words


def _per_kind_words(est: Estimate) -> list[str]:
    spec, fmt = est.spec, est.kv
    kinds: Counter[str] = Counter()
    for group in layout_of(spec).groups:
        kinds[group.mixer.describe(fmt)] += group.layers
    parts = "; ".join(f"{n} of {spec.num_hidden_layers} layers hold {what}" for what, n in kinds.items())
    per_token = format_number(est.kv_bytes_per_token_unbounded)
    state = est.kv_state_bytes
    total = (
        f"In all: {per_token} bytes per cached token"
        + (f" and a fixed state of {format_bytes(state)} ({state:,} bytes) per sequence" if state else "")
        + f" ({fmt.describe()}; --conv-cache, --state-dtype); one sequence, no paging or allocator overhead."
    )
    if not est.kv_growing_bytes:
        total += " The model has no cache that grows: what it keeps of any text is its fixed state."
    return [f"Cache: {parts}.", total]


def _window_words(est: Estimate) -> list[str]:
    spec, kv = est.spec, est.kv
    spans: Counter[int] = Counter()
    for g in layout_of(spec).groups:
        span = (g.mixer.sliding_window or g.mixer.chunk) if isinstance(g.mixer, Attention) else None
        if span:
            spans[span] += g.layers
    if not spans:
        return []
    keep = "w (a ring buffer)" if kv.window is WindowCache.window else "w − 1 between steps, as transformers does"
    widths = ", ".join(f"{w:,}" for w in sorted(spans))
    return [
        f"Windows or chunks of {widths} tokens on {sum(spans.values())} layers keep at most {keep} (--window-cache): "
        f"at {est.tokens:,} tokens the cache holds {est.kv_cache_bytes:,} bytes, "
        f"{format_number(est.kv_bytes_per_token)} bytes per token of text."
    ]
