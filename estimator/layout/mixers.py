"""Token mixers as values: what one layer holds of the text it has seen, and what it attends to.

Every mixer answers the same questions, so that each quantity is one fold over the layer groups
with no branch on the kind of layer (see :mod:`estimator.kv`, :mod:`estimator.cost`):

- ``vectors(fmt)``: (count, length) of the vectors cached per held token and layer;
- ``cap_tokens(fmt)``: the most tokens a layer holds (None: every token it has seen);
- ``fixed_bits(fmt)``: state per sequence that does not grow with the text (0 for attention);
- ``attention_width``: H · (d_qk + d_v), the elements a query meets per attended position (FLOPs);
- ``attended_positions(n)``: Σ_{t=1..n} the positions query t attends (causal, capped by a window);
- ``prefix_values(fmt)``: values prefix tuning stores per virtual token: the cache row.

So the cache of T tokens is Σ_groups layers · (bits_per_token · held_tokens(T) + fixed_bits).
"""

from __future__ import annotations

from dataclasses import dataclass

from estimator.layout.formats import KVFormat, window_tokens

KV_TENSORS = 2  # one key and one value vector per KV head per token
MULTIPLY_ADD = 2  # FLOPs per multiply-accumulate


def causal_positions(n: int, cap: int | None = None) -> int:
    """Σ_{t=1..n} min(t, cap): keys n causal queries meet, each at most ``cap`` (None: all before it).
    n = 5, cap 2: 1 + 2 + 2 + 2 + 2 = 9."""
    if cap is None or n <= cap:
        return n * (n + 1) // 2
    return cap * (cap + 1) // 2 + (n - cap) * cap


class Mixer:
    """What every kind of token mixer shares: folds over its ``vectors`` and its ``cap_tokens``."""

    kind = "mixer"

    def vectors(self, fmt: KVFormat) -> tuple[tuple[int, int], ...]:
        raise NotImplementedError

    def cap_tokens(self, fmt: KVFormat) -> int | None:
        """The most tokens a layer holds; None when it holds all it has seen."""
        return None

    def fixed_bits(self, fmt: KVFormat) -> int:
        """Bits of state per sequence that do not grow with the text (none for attention)."""
        return 0

    @property
    def attention_width(self) -> int:
        raise NotImplementedError

    def bits_per_token(self, fmt: KVFormat) -> int:
        """Bits one layer caches per held token: Σ count · bits of a vector of that length."""
        return sum(count * fmt.vector_bits(length) for count, length in self.vectors(fmt))

    def held_tokens(self, tokens: int, fmt: KVFormat) -> int:
        """Tokens a layer holds after T tokens: T, or min(T, cap)."""
        cap = self.cap_tokens(fmt)
        return tokens if cap is None else min(tokens, cap)

    def prefix_values(self, fmt: KVFormat) -> int:
        """Values per virtual token of prefix tuning: one cache row of this layer."""
        return sum(count * length for count, length in self.vectors(fmt))

    @property
    def window(self) -> int | None:
        """Positions one query attends at most (None: all before it)."""
        return None

    def attended_positions(self, n: int) -> int:
        """Σ_{t=1..n} min(t, w): keys the n positions of a sequence attend to, causally."""
        return causal_positions(n, self.window)

    def attention_flops(self, n: int, fmt: KVFormat) -> int:
        """Forward FLOPs of one layer's attention over a causal sequence of n tokens (beyond its weights'
        matmuls): 2 · width · Σ_t positions attended (Llama 3 70B, n = 2: 2 · 16,384 · 3 = 98,304)."""
        return MULTIPLY_ADD * self.attention_width * self.attended_positions(n)


@dataclass(frozen=True)
class Attention(Mixer):
    """Softmax attention with H query heads and K KV heads of d_h (MHA K = H, GQA K < H, MQA K = 1),
    over every earlier token, a sliding window of w, or the tokens of its own chunk of C (Llama 4).

    Caches 2 · K vectors of d_h per token (Llama 3 70B: 2 · 8 · 128 = 2,048 values per layer); a window
    or a chunk layer holds at most w (or C) of them, w − 1 (C − 1) as transformers keeps them. A layer
    that reads another layer's cache (``stores_kv`` False: Gemma 3n's last layers) caches nothing.
    ``v_head_dim`` is the value width where it differs from the keys'.
    """

    heads: int
    kv_heads: int
    head_dim: int
    sliding_window: int | None = None
    chunk: int | None = None
    stores_kv: bool = True
    v_head_dim: int | None = None
    kind = "attention"

    def vectors(self, fmt: KVFormat) -> tuple[tuple[int, int], ...]:
        if not self.stores_kv:
            return ()
        if self.v_head_dim is not None and self.v_head_dim != self.head_dim:
            return ((self.kv_heads, self.head_dim), (self.kv_heads, self.v_head_dim))
        return ((KV_TENSORS * self.kv_heads, self.head_dim),)

    def cap_tokens(self, fmt: KVFormat) -> int | None:
        span = self.sliding_window if self.sliding_window is not None else self.chunk
        return None if span is None else window_tokens(span, fmt.window)

    @property
    def window(self) -> int | None:
        return self.sliding_window

    def attended_positions(self, n: int) -> int:
        """Σ_{t=1..n} positions query t attends: min(t, w) for a window; within a chunk of C,
        ((t − 1) mod C) + 1, so ⌊n / C⌋ · C (C + 1) / 2 + r (r + 1) / 2 with r = n mod C."""
        if self.chunk is None:
            return super().attended_positions(n)
        chunks, rest = divmod(n, self.chunk)
        return chunks * self.chunk * (self.chunk + 1) // 2 + rest * (rest + 1) // 2

    @property
    def attention_width(self) -> int:
        """H · (d_qk + d_v) (QKᵀ and A·V; Llama 3 70B: 64 · 256 = 16,384)."""
        return self.heads * (self.head_dim + (self.v_head_dim or self.head_dim))
