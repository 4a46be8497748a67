"""The bytes each cache-shrinking method holds for T tokens of text: one fold over the layout's groups.

bits(T) = Σ_g |g| · (b'_g · h'_g(T) + s_g) + F        (see :mod:`estimator.frontier.methods`)
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from estimator.architecture import layout_of
from estimator.units import BITS_PER_BYTE

if TYPE_CHECKING:
    from estimator.frontier.methods import KVMethod
    from estimator.query import Query


def method_cache_bits(q: Query, method: KVMethod, tokens: int) -> Fraction:
    """Σ_g |g| · (b'_g · h'_g(T) + s_g) + F: bits the method holds for T tokens (exact)."""
    fmt = q.kv
    grows = sum(
        (
            g.layers * method.layer_bits(g.mixer, fmt) * method.kept_tokens(g.mixer, tokens, fmt)
            for g in layout_of(q.spec).groups
        ),
        Fraction(0),
    )
    return grows + method_fixed_bits(q, method)


def method_fixed_bits(q: Query, method: KVMethod) -> int:
    """Σ_g |g| · s_g + F: the states the model keeps anyway plus the method's own fixed bits."""
    states = sum(g.layers * g.mixer.fixed_bits(q.kv) for g in layout_of(q.spec).groups)
    return states + method.fixed_bits(q)


def method_cache_bytes(q: Query, method: KVMethod, tokens: int) -> int:
    """⌈bits(T) / 8⌉. Llama 3.1 8B, CommVQ 1 bit, 131,072 tokens: 131,072 · 8,192 = 1,073,741,824 bytes."""
    bits = method_cache_bits(q, method, tokens)
    return -(-bits.numerator // (bits.denominator * BITS_PER_BYTE))


def method_fixed_bytes(q: Query, method: KVMethod) -> int:
    """⌈(Σ_g |g| · s_g + F) / 8⌉: the part that does not grow (NVFP4 on Llama 3.1 8B: 64 FP32 scales, 256 bytes)."""
    return -(-method_fixed_bits(q, method) // BITS_PER_BYTE)


def method_bytes_per_token(q: Query, method: KVMethod) -> Fraction:
    """Bytes the method's cache grows by per token while no window is full and before any eviction:
    Σ_g |g| · b'_g / 8 (Llama 3.1 8B, NVFP4: 36,864). What a serving pool divides its memory by."""
    per_layer = (g.layers * method.layer_bits(g.mixer, q.kv) for g in layout_of(q.spec).groups)
    return sum(per_layer, Fraction(0)) / BITS_PER_BYTE
