"""Compressed attention as a mixer (DeepSeek V4's CSA and HCA layers): a sliding window of keys, plus one compressed
entry per m tokens seen, the m-token tail not yet compressed, and (CSA) the last window's overlap state.

Notation: T tokens seen, m the compression rate, w' the tokens the window holds (w − 1 in transformers), d the shared
key-value head width, d_i the indexer's head width (0: no indexer, HCA), s = 2 where windows overlap (CSA: the
projections carry two series, Ca and Cb), else 1; b the cache's bits per element, b_a the activations' (the model's
float dtype), 32 for the overlap gate (float32: the position bias it is added to is float32).

One layer holds, after T tokens, as transformers 5.24's ``DeepseekV4HCACache`` / ``DeepseekV4CSACache`` keep it:

    window:      min(T, w') · d · b                   (keys; values are the same tensor: K = V)
    entries:     ⌊T / m⌋ · (d + d_i) · b              (``compressed_kv`` of the compressor and of the indexer)
    tail:        (T mod m) · 2 · s · (d + d_i) · b_a  (``buffer_kv`` and ``buffer_gate``)
    overlap:     m · (d + d_i) · (b_a + 32) once T ≥ m, CSA only   (``overlap_kv``, ``overlap_gate``)

Not linear in T (floor and mod), so the layer answers :meth:`CompressedAttention.layer_bits` exactly; its per-token
figure (:meth:`bits_per_token`) is the asymptotic growth, one entry per m tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from estimator.layout.formats import KVFormat, window_tokens
from estimator.layout.mixers import MULTIPLY_ADD, Mixer, causal_positions, split
from estimator.layout.recurrent import activation_dtype
from estimator.units import DType, format_number

GATE_BITS = DType.fp32.bits  # the overlap gate: the gate plus a float32 position bias, kept in float32
KV_AND_GATE = 2  # the tail buffers the compressor's projection and its gate alike


def entries_seen(n: int, rate: int) -> int:
    """Σ_{t=1..n} ⌊t / m⌋: the compressed entries n causal queries see, q = ⌊n / m⌋, r = n mod m:
    m · q (q − 1) / 2 + q (r + 1). n = 5, m = 4: 0 + 0 + 0 + 1 + 1 = 2."""
    whole, rest = divmod(n, rate)
    return rate * whole * (whole - 1) // 2 + whole * (rest + 1)


@dataclass(frozen=True)
class CompressedAttention(Mixer):
    """Shared-KV (one head, K = V) attention over a sliding window of w plus compressed entries of every m tokens:
    DeepSeek V4's heavily compressed (HCA: m = 128, no overlap, no indexer) and compressed sparse attention (CSA:
    m = 4, overlapping windows, a lightning indexer of ``index_heads`` × ``index_head_dim`` picking ``index_topk``
    entries per query).

    DeepSeek-V4-Flash in bf16, d = 512: a CSA layer grows by (512 + 128) · 2 / 4 = 320 bytes per token, an HCA layer
    by 512 · 2 / 128 = 8 bytes per token, beside a window of 127 keys (65,024 bytes) each.
    """

    heads: int
    head_dim: int
    sliding_window: int
    compress_rate: int
    overlap: bool = False
    index_heads: int = 0
    index_head_dim: int = 0
    index_topk: int = 0
    kind = "compressed attention"
    grows_linearly: ClassVar[bool] = False

    def vectors(self, fmt: KVFormat) -> tuple[tuple[int, int], ...]:
        """The vectors of one compressed entry: the key-value entry of d and the indexer's key of d_i."""
        return ((1, self.head_dim), *(((1, self.index_head_dim),) if self.index_head_dim else ()))

    def entry_bits(self, fmt: KVFormat) -> int:
        """(d + d_i) · b: one compressed entry of the compressor and of the indexer (V4-Flash CSA, bf16: 10,240)."""
        return sum(count * fmt.vector_bits(length) for count, length in self.vectors(fmt))

    def bits_per_token(self, fmt: KVFormat) -> int:
        """The growth per token of text, one entry per m tokens: ⌊(d + d_i) · b / m⌋ (exact where m divides it, as
        for every published V4 shape: CSA 10,240 / 4 = 2,560 bits, HCA 8,192 / 128 = 64)."""
        return self.entry_bits(fmt) // self.compress_rate

    def window_bits(self, tokens: int, fmt: KVFormat) -> int:
        """min(T, w') · d · b: the sliding-window keys (the values are the same tensor)."""
        return min(tokens, window_tokens(self.sliding_window, fmt.window)) * fmt.vector_bits(self.head_dim)

    def tail_bits(self, tokens: int, fmt: KVFormat) -> int:
        """(T mod m) · 2 · s · (d + d_i) · b_a: the projections and gates of the tokens not yet compressed."""
        series = 2 if self.overlap else 1
        width = series * (self.head_dim + self.index_head_dim)
        return (tokens % self.compress_rate) * KV_AND_GATE * width * activation_dtype(fmt).bits

    def overlap_bits(self, tokens: int, fmt: KVFormat) -> int:
        """m · (d + d_i) · (b_a + 32) once a window has closed (CSA): the last window's Ca series and its gate."""
        if not self.overlap or tokens < self.compress_rate:
            return 0
        return self.compress_rate * (self.head_dim + self.index_head_dim) * (activation_dtype(fmt).bits + GATE_BITS)

    def layer_bits(self, tokens: int, fmt: KVFormat) -> int:
        """window + ⌊T / m⌋ entries + tail + overlap (see the module's formulas).
        The tiny CSA layer of d 8, d_i 16, m 4, w 16, bf16, T = 37: 15 · 128 + 9 · 384 + 1 · 2 · 2 · 24 · 16
        + 4 · 24 · 48 = 1,920 + 3,456 + 1,536 + 4,608 = 11,520 bits (1,440 bytes)."""
        entries = (tokens // self.compress_rate) * self.entry_bits(fmt)
        return self.window_bits(tokens, fmt) + entries + self.tail_bits(tokens, fmt) + self.overlap_bits(tokens, fmt)

    def fixed_bits(self, fmt: KVFormat) -> int:
        """The most the parts that do not grow hold: a full window, a tail of m − 1 tokens and the overlap, so that
        a linear fold (bits_per_token · T + fixed) bounds :meth:`layer_bits` from above."""
        return (
            self.window_bits(self.sliding_window, fmt)
            + self.tail_bits(self.compress_rate - 1, fmt)
            + self.overlap_bits(self.compress_rate, fmt)
        )

    @property
    def window(self) -> int | None:
        return self.sliding_window

    @property
    def attention_width(self) -> int:
        """H · 2d: every head's scores and values over the shared K = V entries (V4-Flash: 64 · 1,024 = 65,536)."""
        return self.heads * 2 * self.head_dim

    def attended_positions(self, n: int) -> int:
        """Σ_t (min(t, w) + the compressed entries query t sees, ⌊t / m⌋, at most top-k where an indexer picks)."""
        entries = entries_seen(n, self.compress_rate)
        if self.index_topk and n >= self.index_topk * self.compress_rate:  # from t = k · m on, k entries each
            full = self.index_topk * self.compress_rate - 1
            entries = entries_seen(full, self.compress_rate) + self.index_topk * (n - full)
        return causal_positions(n, self.sliding_window) + entries

    def attention_flops(self, n: int, fmt: KVFormat) -> int:
        """2 · width · positions, plus the indexer's 2 · H_i · d_i per compressed entry each query scores."""
        scored = entries_seen(n, self.compress_rate) if self.index_head_dim else 0
        indexer = MULTIPLY_ADD * self.index_heads * self.index_head_dim * scored
        return MULTIPLY_ADD * self.attention_width * self.attended_positions(n) + indexer

    def shard(self, tp: int) -> Self:
        """H/t query heads (and H_i/t indexer heads) per GPU; the one shared KV head, its entries and the indexer's
        keys serve every head, so each GPU holds all of them (V4-Flash, t = 8: 64 → 8 heads, the whole cache)."""
        if tp > 1:
            split(self.heads, tp, "the attention heads")
            if self.index_heads:
                split(self.index_heads, tp, "the indexer heads")
        return self

    def describe(self, fmt: KVFormat) -> str:
        """V4-Flash CSA in bf16: "compressed attention: one entry of 1 × 512 + 1 × 128 elements per 4 tokens
        (320 bytes per token asymptotically), a window of 128 keys, the tail of up to 3 tokens and the overlap"."""
        vectors = " + ".join(f"{count} × {length}" for count, length in self.vectors(fmt))
        per_token = format_number(self.bits_per_token(fmt) / 8)
        overlap = " and the overlap state" if self.overlap else ""
        indexer = f", an indexer keeping top {self.index_topk:,}" if self.index_topk else ""
        return (
            f"{self.kind}: one entry of {vectors} elements per {self.compress_rate:,} tokens ({per_token} bytes per "
            f"token asymptotically), a window of {self.sliding_window:,} keys (K = V), the tail of up to "
            f"{self.compress_rate - 1:,} tokens{overlap}{indexer}"
        )
