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
        w = self.window
        if w is None or n <= w:
            return n * (n + 1) // 2
        return w * (w + 1) // 2 + (n - w) * w


@dataclass(frozen=True)
class Attention(Mixer):
    """Softmax attention with H query heads and K KV heads of d_h (MHA K = H, GQA K < H, MQA K = 1),
    over every earlier token or a sliding window of w.

    Caches 2 · K vectors of d_h per token (Llama 3 70B: 2 · 8 · 128 = 2,048 values per layer).
    """

    heads: int
    kv_heads: int
    head_dim: int
    sliding_window: int | None = None
    kind = "attention"

    def vectors(self, fmt: KVFormat) -> tuple[tuple[int, int], ...]:
        return ((KV_TENSORS * self.kv_heads, self.head_dim),)

    def cap_tokens(self, fmt: KVFormat) -> int | None:
        return None if self.sliding_window is None else window_tokens(self.sliding_window, fmt.window)

    @property
    def window(self) -> int | None:
        return self.sliding_window

    @property
    def attention_width(self) -> int:
        """H · 2 · d_h (QKᵀ and A·V; Llama 3 70B: 64 · 256 = 16,384)."""
        return self.heads * KV_TENSORS * self.head_dim
