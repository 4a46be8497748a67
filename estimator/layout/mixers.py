"""Token mixers as values: what one layer holds of the text it has seen, and what it attends to.

Every mixer answers the same questions, so that each quantity is one fold over the layer groups
with no branch on the kind of layer (see :mod:`estimator.kv`, :mod:`estimator.cost`):

- ``vectors(fmt)``: (count, length) of the vectors cached per held token and layer;
- ``cap_tokens(fmt)``: the most tokens a layer holds (None: every token it has seen);
- ``fixed_bits(fmt)``: state per sequence that does not grow with the text (0 for attention);
- ``attention_width``: H · (d_qk + d_v), the elements a query meets per attended position (FLOPs);
- ``attended_positions(n)``: Σ_{t=1..n} the positions query t attends (causal, capped by a window);
- ``prefix_values(fmt)``: values prefix tuning stores per virtual token: the cache row;
- ``shard(tp)``, ``describe(fmt)``: its tensor-parallel split, and what it holds in words;
- ``saved_bytes_per_token()``, ``saved_bytes_measured()``: what its kernel saves for backward in training, and
  whether that figure was measured to the byte (refused in one line by a kind whose activations are not modelled);
- ``per_head_norms(name, width)``, ``rope_head_dim``, ``output_saved_by_kernel``: the small facts the activation
  count reads of a layer (Qwen3's per-head q_norm and k_norm, RoPE's tables, o_proj's input already saved);
- ``cached_attention``: the softmax attention whose keys and values it caches (what :mod:`estimator.frontier`
  quantises and converts), or None.

So the cache of T tokens is Σ_groups layers · (bits_per_token · held_tokens(T) + fixed_bits).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Self

from estimator.errors import EstimatorError
from estimator.layout.formats import KVFormat, window_tokens
from estimator.units import format_number

KV_TENSORS = 2  # one key and one value vector per KV head per token
MULTIPLY_ADD = 2  # FLOPs per multiply-accumulate
BF16_BYTES, FP32_BYTES = 2, 4  # a bf16 activation, an fp32 statistic (SDPA's log-sum-exp)


def divisors_hint(n: int) -> str:
    """The tensor-parallel sizes up to 64 that divide ``n`` (12: 1, 2, 3, 4, 6, 12)."""
    return ", ".join(str(t) for t in range(1, min(n, 64) + 1) if n % t == 0)


def split(size: int, tp: int, what: str) -> int:
    """``size`` / t, refused in one line with the sizes that divide it when it does not split evenly."""
    if size % tp:
        raise EstimatorError(
            f"{what} ({size:,}) cannot be split evenly over {tp} GPUs; use a tensor-parallel size that divides it "
            f"({divisors_hint(size)})"
        )
    return size // tp


def kv_heads_per_gpu(kv_heads: int, tp: int) -> int:
    """max(1, K / t): KV heads one GPU holds; K must divide t or t divide K (vLLM's rule).
    K = 8: t = 4 → 2, t = 16 → 1 (each head on two GPUs)."""
    if kv_heads >= tp:
        return split(kv_heads, tp, "the KV heads")
    if tp % kv_heads:
        raise EstimatorError(
            f"{tp} GPUs cannot share {kv_heads} KV heads evenly; use a tensor-parallel size that divides "
            f"{kv_heads} or is a multiple of it"
        )
    return 1


def activations_not_modelled(kind: str) -> EstimatorError:
    """The one-line refusal of a kind whose saved-for-backward bytes are not modelled."""
    return EstimatorError(
        f"activation memory of {kind} layers is not modelled (transformers' reference kernels for them "
        "differ from the fused ones used in training); estimate a model without them"
    )


def causal_positions(n: int, cap: int | None = None) -> int:
    """Σ_{t=1..n} min(t, cap): keys n causal queries meet, each at most ``cap`` (None: all before it).
    n = 5, cap 2: 1 + 2 + 2 + 2 + 2 = 9."""
    if cap is None or n <= cap:
        return n * (n + 1) // 2
    return cap * (cap + 1) // 2 + (n - cap) * cap


class Mixer:
    """What every kind of token mixer shares: folds over its ``vectors`` and its ``cap_tokens``."""

    kind = "mixer"
    grows_linearly: ClassVar[bool] = True  # layer_bits(T) = bits_per_token · held_tokens(T) + fixed_bits

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

    def layer_bits(self, tokens: int, fmt: KVFormat) -> int:
        """Bits one layer holds after T tokens: b · h(T) + s (Llama 3 70B, bf16, T = 2: 2 · 32,768 = 65,536).
        A kind whose cache is not linear in T (:attr:`grows_linearly` False) answers it exactly itself."""
        return self.bits_per_token(fmt) * self.held_tokens(tokens, fmt) + self.fixed_bits(fmt)

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

    def shard(self, tp: int) -> Self:
        """This layer as one of t tensor-parallel GPUs holds it (every kind says how it splits; one GPU
        holds any kind whole)."""
        if tp == 1:
            return self
        raise EstimatorError(
            f"no tensor-parallel split of {self.kind} layers is modelled; use --tp 1 "
            f"(or write {type(self).__name__}.shard)"
        )

    def describe(self, fmt: KVFormat) -> str:
        """What one layer of this kind holds, per held token or per sequence, in words."""
        vectors = " + ".join(f"{count} × {length}" for count, length in self.vectors(fmt))
        per_token = format_number(self.bits_per_token(fmt) / 8)
        return f"{self.kind}: {vectors} elements = {per_token} bytes per held token"

    def saved_bytes_per_token(self) -> int:
        """Bytes the mixer's kernel saves for backward per token of a training step (bf16 model, transformers'
        code; the norms and linear maps around it are counted by :mod:`estimator.memory.activations`).
        Refused in one line by every kind that does not say (a new kind included)."""
        raise activations_not_modelled(self.kind)

    def saved_bytes_measured(self) -> bool:
        """Whether :meth:`saved_bytes_per_token` was measured to the byte against torch's saved tensors
        (refused, as it, by a kind whose activations are not modelled)."""
        raise activations_not_modelled(self.kind)

    def per_head_norms(self, name: str, width: int) -> int:
        """Heads a norm of ``width`` named ``name`` runs over per token when it is one of this kind's per-head
        norms (Qwen3's q_norm over H heads, k_norm over K); 0 when it is not (a norm over the hidden width)."""
        return 0

    @property
    def rope_head_dim(self) -> int:
        """The width RoPE's cos and sin tables are built for in training (0: no rotary attention)."""
        return 0

    @property
    def output_saved_by_kernel(self) -> bool:
        """Whether the mixer's kernel saves its own output for backward, so the output projection (o_proj)
        reading it saves nothing more (SDPA does; by default o_proj's bf16 input is counted)."""
        return False

    @property
    def cached_attention(self) -> Attention | None:
        """The softmax attention this layer caches keys and values for: itself, a part of a parallel layer,
        or None (no such attention, or one reading another layer's cache)."""
        return None


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

    def shard(self, tp: int) -> Self:
        """H/t query heads and max(1, K/t) KV heads per GPU, as vLLM splits them.
        Llama 3 70B, t = 8: 64 → 8 query heads, 8 → 1 KV head: 1/8 of the cache per GPU."""
        if tp == 1:
            return self
        heads = split(self.heads, tp, "the attention heads")
        return replace(self, heads=heads, kv_heads=kv_heads_per_gpu(self.kv_heads, tp))

    def describe(self, fmt: KVFormat) -> str:
        """Llama 3 70B in bf16: "attention: 16 × 128 elements = 4,096 bytes per held token"; a window or a
        chunk is named; a layer reading another layer's cache holds nothing of its own."""
        if not self.stores_kv:
            return "attention over an earlier layer's cache (shared KV): nothing held of its own"
        span = ""
        if self.sliding_window is not None:
            span = f", at most a window of {self.sliding_window:,}"
        elif self.chunk is not None:
            span = f", at most its chunk of {self.chunk:,}"
        return super().describe(fmt) + span

    def saved_bytes_per_token(self) -> int:
        """SDPA per token: q (H · d_h), k and v at the K KV heads (``enable_gqa``, no repeat), its output
        (H · d_v), all bf16, and the fp32 log-sum-exp (H):
        2 · (H · d_h + K · d_h + K · d_v + H · d_v) + 4 · H.
        Llama 3 70B (H 64, K 8, d_h 128): 2 · 64 · 128 · 2 + 2 · 2 · 8 · 128 + 4 · 64 = 37,120 bytes."""
        dv = self.v_head_dim or self.head_dim
        h, k = self.heads, self.kv_heads
        return BF16_BYTES * (h * self.head_dim + k * self.head_dim + k * dv + h * dv) + FP32_BYTES * h

    def saved_bytes_measured(self) -> bool:
        """Measured to the byte for attention over every earlier token; a window or a chunk runs other kernels
        (an estimate). Llama 3 70B: True; Gemma 2's local layers (window 4,096): False."""
        return self.sliding_window is None and self.chunk is None

    def per_head_norms(self, name: str, width: int) -> int:
        """Qwen3's q_norm and k_norm, of width d_h, run per head: over K heads for ``*k_norm``, else H.
        Qwen3-8B (H 32, K 8, d_h 128): q_norm 32, k_norm 8; a norm of the hidden width: 0."""
        if width != self.head_dim:
            return 0
        return self.kv_heads if name.endswith("k_norm") else self.heads

    @property
    def rope_head_dim(self) -> int:
        """d_h: RoPE's cos and sin are 2 · T · d_h values (Llama 3 70B: 128)."""
        return self.head_dim

    @property
    def output_saved_by_kernel(self) -> bool:
        """SDPA saves its output, which o_proj reads: o_proj saves nothing more."""
        return True

    @property
    def cached_attention(self) -> Attention | None:
        """Itself, unless it reads another layer's cache (Gemma 3n's last layers)."""
        return self if self.stores_kv else None
