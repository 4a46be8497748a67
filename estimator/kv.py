"""KV cache bytes: what in-context learning stores for every token it keeps.

Notation: L layers, K KV heads, d_h head dim, b bits per element, T tokens in the context,
w_l the sliding window of layer l (unbounded for full attention), H query heads.

Per token and layer the cache holds a few vectors: K keys and K values of d_h elements (standard,
grouped-query and multi-query attention), or for multi-head latent attention (DeepSeek) one latent
vector of kv_lora_rank + qk_rope_head_dim elements (what the paper, serving engines and
transformers >= 5 keep) or, expanded, H keys of qk_nope + qk_rope and H values of v_head_dim (what
a naive implementation and transformers 4.x keep).
Quantised caches store b bits per element plus, per group of G elements of a vector, an fp16 scale
and optionally an fp16 zero point: b + (16 + 16) / G bits per element.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from estimator.units import BITS_PER_BYTE, DType

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

KV_TENSORS = 2  # one key and one value vector per KV head per token
SCALE_BITS = 16  # an fp16 scale (and, if used, an fp16 zero point) per quantisation group
INTEGER_DTYPES = (DType.int8, DType.int4, DType.int2)


class WindowCache(StrEnum):
    """How many tokens a full sliding-window layer keeps between steps.

    ``w``: the whole window, a ring buffer of w tokens (Mistral's reference code, vLLM). The default.
    ``w-1``: w - 1 tokens; the next token makes w (transformers' ``DynamicSlidingWindowLayer``).
    """

    window = "w"
    window_minus_one = "w-1"


class MlaCache(StrEnum):
    """What a multi-head latent attention cache holds per token and layer.

    ``latent``: the compressed KV vector and the shared RoPE key, kv_lora_rank + qk_rope_head_dim
    elements (DeepSeek's paper, vLLM, SGLang, transformers >= 5). The default.
    ``expanded``: per-head keys (qk_nope + qk_rope) and values (v_head_dim), H of each, as a naive
    implementation and transformers 4.x keep.
    """

    latent = "latent"
    expanded = "expanded"


@dataclass(frozen=True)
class KVFormat:
    """How the cache stores its elements: dtype, quantisation groups, MLA form, window convention."""

    dtype: DType = DType.bf16
    group_size: int | None = 64  # elements per scale for int8/int4/int2; None = one scale per tensor
    zero_point: bool = True
    mla: MlaCache = MlaCache.latent
    window: WindowCache = WindowCache.window

    @property
    def quantised(self) -> bool:
        return self.dtype in INTEGER_DTYPES and self.group_size is not None

    def vector_bits(self, length: int) -> int:
        """Bits of one cached vector of ``length`` elements: length · b + ⌈length / G⌉ · (16 [+ 16])."""
        bits = length * self.dtype.bits
        if self.quantised and self.group_size is not None:
            groups = -(-length // self.group_size)
            bits += groups * SCALE_BITS * (2 if self.zero_point else 1)
        return bits

    def describe(self) -> str:
        """``bf16``, or ``int4, groups of 64 with fp16 scale and zero point`` for quantised caches."""
        if not self.quantised:
            return self.dtype.value
        extra = "fp16 scale and zero point" if self.zero_point else "fp16 scale"
        return f"{self.dtype.value}, groups of {self.group_size} with {extra}"


def as_format(kv: KVFormat | DType) -> KVFormat:
    return kv if isinstance(kv, KVFormat) else KVFormat(kv)


def kv_vectors(spec: ModelSpec, mla: MlaCache = MlaCache.latent) -> list[tuple[int, int]]:
    """(count, length) of the vectors one layer caches per token.

    Standard: 2K vectors of d_h. MLA latent: one of kv_lora_rank + qk_rope_head_dim.
    MLA expanded: H keys of qk_nope + qk_rope and H values of v_head_dim.
    """
    if spec.is_mla:
        rank, rope = spec.kv_lora_rank or 0, spec.qk_rope_head_dim or 0
        if mla is MlaCache.latent:
            return [(1, rank + rope)]
        heads = spec.num_attention_heads
        return [(heads, (spec.qk_nope_head_dim or 0) + rope), (heads, spec.v_head_dim or 0)]
    return [(KV_TENSORS * spec.num_key_value_heads, spec.head_dim)]


def kv_layer_bits_per_token(spec: ModelSpec, kv: KVFormat | DType) -> int:
    """Bits one layer caches per token (Llama 3 70B, bf16: 2 · 8 · 128 · 16 = 32,768)."""
    fmt = as_format(kv)
    return sum(count * fmt.vector_bits(length) for count, length in kv_vectors(spec, fmt.mla))


def _bytes(bits: int) -> float:
    """Whole bytes where exact; otherwise the exact fraction (a cache of bits rounds up once, in total)."""
    return bits // BITS_PER_BYTE if bits % BITS_PER_BYTE == 0 else bits / BITS_PER_BYTE


def kv_bytes_per_token(spec: ModelSpec, kv: KVFormat | DType) -> float:
    """Bytes the cache grows by per token while no sliding window is full.

    Standard attention: 2 · L · K · d_h · b / 8, where L = num_hidden_layers, K = num_key_value_heads,
    d_h = head_dim, b = bits per element.
    Llama 3 70B in bf16: 2 (K,V) × 80 (L) × 8 (K) × 128 (d_h) × 2 (bytes) = 327,680 bytes.
    DeepSeek-V3, latent, bf16: 61 × (512 + 64) × 2 = 70,272 bytes.
    """
    return _bytes(spec.num_hidden_layers * kv_layer_bits_per_token(spec, kv))


def kv_window_tokens(window: int, policy: WindowCache = WindowCache.window) -> int:
    """The most tokens a full sliding-window layer keeps: w, or w - 1 (see :class:`WindowCache`)."""
    return window if policy is WindowCache.window else window - 1


def kv_cached_tokens(window: int | None, tokens: int, policy: WindowCache = WindowCache.window) -> int:
    """Tokens a layer holds after ``tokens`` tokens: T for full attention, else min(T, w) (or min(T, w - 1))."""
    if window is None:
        return tokens
    return min(tokens, kv_window_tokens(window, policy))


def kv_cache_bits(spec: ModelSpec, tokens: int, kv: KVFormat | DType) -> int:
    """Bits the cache holds for T tokens: Σ_l (bits per token of a layer) · min(T, w_l)."""
    fmt = as_format(kv)
    cached = sum(kv_cached_tokens(window, tokens, fmt.window) for window in spec.layer_windows())
    return kv_layer_bits_per_token(spec, fmt) * cached


def kv_cache_bytes(spec: ModelSpec, tokens: int, kv: KVFormat | DType) -> int:
    """Bytes the cache holds for T tokens: Σ_l 2 · K · d_h · b / 8 · min(T, w_l), rounded up to a whole byte.

    Without sliding windows this is T · :func:`kv_bytes_per_token`
    (Llama 3 70B, bf16, 100,000 tokens: 32,768,000,000 bytes = 32.77 GB).
    """
    return -(-kv_cache_bits(spec, tokens, kv) // BITS_PER_BYTE)


def kv_bytes_per_token_at(spec: ModelSpec, tokens: int, kv: KVFormat | DType) -> float:
    """Bytes per token of text at T tokens: cache bits / 8 / T (constant without windows)."""
    return kv_cache_bits(spec, tokens, kv) / BITS_PER_BYTE / tokens


def kv_max_cache_bytes(spec: ModelSpec, kv: KVFormat | DType) -> int | None:
    """The most the cache can ever hold, or None when some layer has full attention (unbounded)."""
    windows = spec.layer_windows()
    if any(w is None for w in windows):
        return None
    return kv_cache_bytes(spec, max(w for w in windows if w is not None), kv)


def transformers_kv_heads(spec: ModelSpec) -> int:
    """KV heads per token that transformers' own cache holds (the architecture needs K).

    Falcon's new decoder architecture (40B, 180B) broadcasts K and V to all H query heads before
    caching (``FalconAttention._split_heads``), so transformers holds H; serving engines keep K.
    """
    if spec.model_type == "falcon" and spec.new_decoder_architecture:
        return spec.num_attention_heads
    return spec.num_key_value_heads
