"""KV cache bytes: what in-context learning stores for every token it keeps.

Notation: L layers, K KV heads, d_h head dim, b bits per element, T tokens in the context,
w_l the sliding window of layer l (unbounded for full attention).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from estimator.units import bits_to_bytes

if TYPE_CHECKING:
    from estimator.specs import ModelSpec
    from estimator.units import DType

KV_TENSORS = 2  # one key and one value vector per KV head per token


class WindowCache(StrEnum):
    """How many tokens a full sliding-window layer keeps between steps.

    ``w``: the whole window, a ring buffer of w tokens (Mistral's reference code, vLLM). The default.
    ``w-1``: w - 1 tokens; the next token makes w (transformers' ``DynamicSlidingWindowLayer``).
    """

    window = "w"
    window_minus_one = "w-1"


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


def kv_cached_tokens(window: int | None, tokens: int, policy: WindowCache = WindowCache.window) -> int:
    """Tokens a layer holds after ``tokens`` tokens: T for full attention, else min(T, w) (or min(T, w - 1))."""
    if window is None:
        return tokens
    return min(tokens, window if policy is WindowCache.window else window - 1)


def kv_cache_bytes(spec: ModelSpec, tokens: int, kv_dtype: DType, policy: WindowCache = WindowCache.window) -> int:
    """Bytes the cache holds for T tokens: Σ_l 2 · K · d_h · b / 8 · min(T, w_l).

    Without sliding windows this is T · :func:`kv_bytes_per_token`
    (Llama 3 70B, bf16, 100,000 tokens: 32,768,000,000 bytes = 32.77 GB).
    """
    layer_bits = kv_layer_bits_per_token(spec, kv_dtype)
    cached = sum(kv_cached_tokens(window, tokens, policy) for window in spec.layer_windows())
    return bits_to_bytes(layer_bits * cached)


def kv_bytes_per_token_at(
    spec: ModelSpec, tokens: int, kv_dtype: DType, policy: WindowCache = WindowCache.window
) -> float:
    """Bytes per token of text at T tokens: :func:`kv_cache_bytes` / T (constant without windows)."""
    return kv_cache_bytes(spec, tokens, kv_dtype, policy) / tokens


def kv_max_cache_bytes(spec: ModelSpec, kv_dtype: DType, policy: WindowCache = WindowCache.window) -> int | None:
    """The most the cache can ever hold, or None when some layer has full attention (unbounded)."""
    windows = spec.layer_windows()
    if any(w is None for w in windows):
        return None
    held = sum(kv_cached_tokens(w, w, policy) for w in windows if w is not None)
    return bits_to_bytes(kv_layer_bits_per_token(spec, kv_dtype) * held)


def transformers_kv_heads(spec: ModelSpec) -> int:
    """KV heads per token that transformers' own cache holds (the architecture needs K).

    Falcon's new decoder architecture (40B, 180B) broadcasts K and V to all H query heads before
    caching (``FalconAttention._split_heads``), so transformers holds H; serving engines keep K.
    """
    if spec.model_type == "falcon" and spec.new_decoder_architecture:
        return spec.num_attention_heads
    return spec.num_key_value_heads
