"""KV cache bytes: what in-context learning stores for every token it keeps.

Notation: T tokens in the context; per group g of |g| layers built alike, its mixer's bits per held
token b_g, the tokens it holds h_g(T) (T, or min(T, w) for a sliding window of w) and its fixed state
s_g (none for attention). The cache is one fold over the groups, with no branch on the kind of layer:

    bits(T) = Σ_g |g| · (b_g · h_g(T) + s_g),    bytes(T) = ⌈bits(T) / 8⌉

Per token and layer, attention caches K keys and K values of d_h elements (standard, grouped-query
and multi-query attention), multi-head latent attention (DeepSeek) one latent vector of
kv_lora_rank + qk_rope_head_dim elements or, expanded, H keys and H values (see
:mod:`estimator.layout.mixers`). Quantised caches add scales per group of elements
(:class:`~estimator.layout.KVFormat`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from estimator.architecture import layout_of
from estimator.layout.formats import (
    INTEGER_DTYPES,
    SCALE_BITS,
    KVFormat,
    MlaCache,
    WindowCache,
    as_format,
    window_tokens,
)
from estimator.layout.mixers import KV_TENSORS
from estimator.units import BITS_PER_BYTE, DType

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

__all__ = [
    "INTEGER_DTYPES",
    "KV_TENSORS",
    "SCALE_BITS",
    "KVFormat",
    "MlaCache",
    "WindowCache",
    "as_format",
    "kv_bytes_per_token",
    "kv_bytes_per_token_at",
    "kv_cache_bits",
    "kv_cache_bytes",
    "kv_max_cache_bytes",
    "kv_state_bits",
    "kv_state_bytes",
    "kv_tokens_held",
    "kv_window_tokens",
]

kv_window_tokens = window_tokens  # the w / w - 1 rule, in one place (estimator.layout.formats)


def _bytes(bits: int) -> float:
    """Whole bytes where exact; otherwise the exact fraction (a cache of bits rounds up once, in total)."""
    return bits // BITS_PER_BYTE if bits % BITS_PER_BYTE == 0 else bits / BITS_PER_BYTE


def kv_bits_per_token(spec: ModelSpec, kv: KVFormat | DType) -> int:
    """Bits the cache grows by per token while no window is full: Σ_g |g| · b_g."""
    fmt = as_format(kv)
    return sum(group.layers * group.mixer.bits_per_token(fmt) for group in layout_of(spec).groups)


def kv_bytes_per_token(spec: ModelSpec, kv: KVFormat | DType) -> float:
    """Bytes the cache grows by per token while no sliding window is full.

    Standard attention: 2 · L · K · d_h · b / 8, where L = num_hidden_layers, K = num_key_value_heads,
    d_h = head_dim, b = bits per element.
    Llama 3 70B in bf16: 2 (K,V) × 80 (L) × 8 (K) × 128 (d_h) × 2 (bytes) = 327,680 bytes.
    DeepSeek-V3, latent, bf16: 61 × (512 + 64) × 2 = 70,272 bytes.
    """
    return _bytes(kv_bits_per_token(spec, kv))


def kv_cache_bits(spec: ModelSpec, tokens: int, kv: KVFormat | DType) -> int:
    """Bits the cache holds for T tokens: Σ_g |g| · (b_g · h_g(T) + s_g), each layer's exactly where it is not linear
    in T (DeepSeek V4's compressed layers, :meth:`~estimator.layout.Mixer.layer_bits`)."""
    fmt = as_format(kv)
    return sum(group.layers * group.mixer.layer_bits(tokens, fmt) for group in layout_of(spec).groups)


def kv_cache_bytes(spec: ModelSpec, tokens: int, kv: KVFormat | DType) -> int:
    """Bytes the cache holds for T tokens: ⌈Σ_g |g| · (b_g · h_g(T) + s_g) / 8⌉, rounded up once, in total.

    Without sliding windows this is T · :func:`kv_bytes_per_token`
    (Llama 3 70B, bf16, 100,000 tokens: 32,768,000,000 bytes = 32.77 GB).
    """
    return -(-kv_cache_bits(spec, tokens, kv) // BITS_PER_BYTE)


def kv_state_bits(spec: ModelSpec, kv: KVFormat | DType) -> int:
    """Bits held per sequence whatever its length: Σ_g |g| · s_g (recurrent and convolution states)."""
    fmt = as_format(kv)
    return sum(group.layers * group.mixer.fixed_bits(fmt) for group in layout_of(spec).groups)


def kv_state_bytes(spec: ModelSpec, kv: KVFormat | DType) -> int:
    """Bytes of the fixed state, ⌈Σ_g |g| · s_g / 8⌉: zero for attention-only models.

    Qwen3-Next-80B-A3B (36 gated DeltaNet layers, bf16, K − 1 = 3 columns):
    36 · (8,192 · 3 + 32 · 128 · 128) · 2 = 39,518,208 bytes.
    """
    return -(-kv_state_bits(spec, kv) // BITS_PER_BYTE)


def kv_bytes_per_token_at(spec: ModelSpec, tokens: int, kv: KVFormat | DType) -> float:
    """Bytes per token of text at T tokens: cache bits / 8 / T (constant without windows)."""
    return kv_cache_bits(spec, tokens, kv) / BITS_PER_BYTE / tokens


def kv_max_cache_bytes(spec: ModelSpec, kv: KVFormat | DType) -> int | None:
    """The most the cache can ever hold, or None when some layer holds every token (unbounded)."""
    fmt = as_format(kv)
    caps = [g.mixer.cap_tokens(fmt) for g in layout_of(spec).groups if g.mixer.bits_per_token(fmt)]
    if any(cap is None for cap in caps):
        return None
    return kv_cache_bytes(spec, max((cap for cap in caps if cap is not None), default=1), fmt)


def mla_forms(spec: ModelSpec) -> bool:
    """Whether the cache has a latent and an expanded form (multi-head latent attention somewhere)."""
    fmt = KVFormat()
    return any(g.mixer.vectors(fmt) != g.mixer.vectors(KVFormat(mla=MlaCache.expanded)) for g in layout_of(spec).groups)


def windowed(spec: ModelSpec) -> bool:
    """Whether some layer's cache holds at most a window (or a chunk) of tokens."""
    fmt = KVFormat(window=WindowCache.window)
    return any(g.mixer.vectors(fmt) and g.mixer.cap_tokens(fmt) is not None for g in layout_of(spec).groups)


def kv_tokens_held(spec: ModelSpec, tokens: int, kv: KVFormat | DType) -> int:
    """The most tokens any layer's cache holds after T tokens: T where some layer attends to all of them,
    min(T, w) where every layer is windowed (Mistral 7B v0.1 at 1M tokens: 4,096), 0 for a pure SSM."""
    fmt = as_format(kv)
    held = [g.mixer.held_tokens(tokens, fmt) for g in layout_of(spec).groups if g.mixer.vectors(fmt)]
    return max(held, default=0)


def grows(spec: ModelSpec) -> bool:
    """Whether the cache grows with every token on some layer (full attention somewhere)."""
    fmt = KVFormat()
    return any(g.mixer.vectors(fmt) and g.mixer.cap_tokens(fmt) is None for g in layout_of(spec).groups)
