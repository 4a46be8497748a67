"""KV cache bytes: what in-context learning stores for every token it keeps.

Notation: L layers, K KV heads, d_h head dim, b bits per element, T tokens in the context,
w_l the sliding window of layer l (unbounded for full attention).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from estimator.units import bits_to_bytes

if TYPE_CHECKING:
    from estimator.specs import ModelSpec
    from estimator.units import DType

KV_TENSORS = 2  # one key and one value vector per KV head per token


def kv_layer_bits_per_token(spec: ModelSpec, kv_dtype: DType) -> int:
    """Bits one layer caches per token: 2 (K and V) · K · d_h · b.

    Llama 3 70B in bf16: 2 · 8 · 128 · 16 = 32,768 bits = 4,096 bytes per layer.
    """
    return KV_TENSORS * spec.num_key_value_heads * spec.head_dim * kv_dtype.bits


def kv_bytes_per_token(spec: ModelSpec, kv_dtype: DType) -> int:
    """Bytes the whole cache grows by per token while no sliding window is full: 2 · L · K · d_h · b / 8.

    where: L = num_hidden_layers, K = num_key_value_heads, d_h = head_dim, b = bits per element.
    Llama 3 70B in bf16: 2 (K,V) × 80 (L) × 8 (K) × 128 (d_h) × 2 (bytes) = 327,680 bytes.
    """
    return bits_to_bytes(spec.num_hidden_layers * kv_layer_bits_per_token(spec, kv_dtype))


def kv_cached_tokens(window: int | None, tokens: int) -> int:
    """Tokens a layer holds after ``tokens`` tokens: min(T, w), or T for full attention.

    A sliding-window layer is taken to keep w tokens (a ring buffer of the window, as Mistral's
    reference implementation and vLLM allocate).
    """
    return tokens if window is None else min(tokens, window)


def kv_cache_bytes(spec: ModelSpec, tokens: int, kv_dtype: DType) -> int:
    """Bytes the cache holds for T tokens: Σ_l 2 · K · d_h · b / 8 · min(T, w_l).

    Without sliding windows this is T · :func:`kv_bytes_per_token`
    (Llama 3 70B, bf16, 100,000 tokens: 32,768,000,000 bytes = 32.77 GB).
    """
    layer_bits = kv_layer_bits_per_token(spec, kv_dtype)
    cached = sum(kv_cached_tokens(window, tokens) for window in spec.layer_windows())
    return bits_to_bytes(layer_bits * cached)


def kv_bytes_per_token_at(spec: ModelSpec, tokens: int, kv_dtype: DType) -> float:
    """Bytes per token of text at T tokens: :func:`kv_cache_bytes` / T (constant without windows)."""
    return kv_cache_bytes(spec, tokens, kv_dtype) / tokens


def kv_max_cache_bytes(spec: ModelSpec, kv_dtype: DType) -> int | None:
    """The most the cache can ever hold, or None when some layer has full attention (unbounded)."""
    windows = spec.layer_windows()
    if any(w is None for w in windows):
        return None
    return bits_to_bytes(kv_layer_bits_per_token(spec, kv_dtype) * sum(w for w in windows if w is not None))
