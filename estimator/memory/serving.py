"""Memory per GPU to serve a model in context: weights, the cache of a batch, the prefill peak, overhead.

    total(B, T) = weights/GPU + B · (cache/GPU(T) + logits row) + prefill activations/GPU + overhead

and it fits when total ≤ fraction · memory (vLLM's ``gpu_memory_utilization``, 0.9 by default). The
cache is exact (the same fold over layer groups as :mod:`estimator.kv`, on each GPU's heads, with
paged blocks rounded up); the weights are exact for the storage format (:mod:`estimator.memory.formats`)
and the split (:mod:`estimator.memory.parallel`); the prefill peak and the overhead are estimates,
stated as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from estimator.architecture import layout_of
from estimator.errors import EstimatorError
from estimator.layout import KVFormat
from estimator.memory.formats import FP32_BYTES, WeightFormat
from estimator.memory.parallel import gpu_groups
from estimator.memory.weights import NO_PADDING, ExpertPadding, weight_bytes_per_gpu
from estimator.units import BITS_PER_BYTE, largest_fitting

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

VLLM_BLOCK_TOKENS = 16  # vLLM's default --block-size on CUDA
VLLM_MEMORY_FRACTION = 0.9  # vLLM's default --gpu-memory-utilization
VLLM_CHUNK_TOKENS = 8192  # vLLM's default max_num_batched_tokens for its API server on a >= 70 GiB GPU


@dataclass(frozen=True)
class ServeSetup:
    """How the model is served: weight format, cache format, t GPUs in tensor parallel, paged blocks of
    ``block_tokens`` (0: no paging), prefill chunks of ``chunk_tokens``, a stated runtime overhead."""

    weights: WeightFormat = WeightFormat.bf16
    kv: KVFormat = field(default_factory=KVFormat)
    tp: int = 1
    block_tokens: int = VLLM_BLOCK_TOKENS
    chunk_tokens: int = VLLM_CHUNK_TOKENS
    overhead_bytes: int = 0
    expert_padding: ExpertPadding = NO_PADDING  # MXFP4 experts as the engine's kernel pads them


def paged(tokens: int, block_tokens: int) -> int:
    """Tokens a paged cache allocates for ``tokens``: whole blocks, ⌈T / block⌉ · block (block 0: T)."""
    return tokens if block_tokens == 0 else -(-tokens // block_tokens) * block_tokens


def cache_bytes_per_gpu(spec: ModelSpec, tokens: int, setup: ServeSetup) -> int:
    """Cache bytes one GPU holds for one sequence of T tokens: Σ_g |g| · (b_g · paged(h_g(T)) + s_g) on the
    GPU's own heads (max(1, K/t) per attention layer; all of an MLA latent), rounded up once.

    Llama 3 70B, bf16, T = 100,000, blocks of 16, t = 1: 327,680 · 100,000 = 32,768,000,000 bytes; t = 8:
    4,096,000,000."""
    fmt = setup.kv
    bits = 0
    for g in gpu_groups(layout_of(spec), setup.tp):
        held = paged(g.mixer.held_tokens(tokens, fmt), setup.block_tokens)
        bits += g.layers * (g.mixer.bits_per_token(fmt) * held + g.mixer.fixed_bits(fmt))
    return -(-bits // BITS_PER_BYTE)


def logits_bytes_per_sequence(spec: ModelSpec) -> int:
    """fp32 logits of the one position each sequence samples per step: V · 4 (Llama 3: 513,024 bytes)."""
    return spec.vocab_size * FP32_BYTES


def prefill_activation_bytes(spec: ModelSpec, setup: ServeSetup) -> int:
    """An estimate of the transient peak of one prefill chunk of C tokens on one GPU, in 16 bits: the
    residual stream and its normed copy (2 · C · d) plus the widest layer's intermediates, the larger of
    the MLP's gate-and-up output and its activation (3 · C · F_max / t) and attention's q, k, v and output
    (C · (2 · q_out + 2 · kv_out) / t). Kernels' workspaces are not counted; this is not a measurement.

    Llama 3 70B, C = 8,192, t = 1: 2 · (2 · 8,192 · 8,192 + 3 · 8,192 · 28,672) = 1,677,721,600 bytes."""
    chunk, tp, width = setup.chunk_tokens, setup.tp, 0
    for g in layout_of(spec).groups:
        for linear in g.linears(False):
            if linear.roles & {"gate", "up"} and "down" not in linear.roles:
                f = linear.d_out // len(linear.roles & {"gate", "up"})
                width = max(width, 3 * f * (g.moe.top_k if linear.expert and g.moe else 1))
        qkv = sum(m.d_out for m in g.linears(False) if m.roles & {"q", "k", "v"} and m.block == "attention")
        width = max(width, 2 * qkv)
    return 2 * (2 * chunk * spec.hidden_size + chunk * width // tp)


@dataclass(frozen=True)
class ServeMemory:
    """Memory per GPU for B sequences of T tokens, by component, against the budget of one device."""

    weights_bytes: int
    cache_bytes: int  # B sequences
    state_bytes: int  # of which fixed-size recurrent state
    logits_bytes: int
    activation_bytes: int
    overhead_bytes: int
    budget_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.cache_bytes + self.logits_bytes + self.activation_bytes + self.overhead_bytes

    @property
    def headroom_bytes(self) -> int:
        """What is left of the budget when it fits (0 when it does not)."""
        return max(0, self.budget_bytes - self.total_bytes)

    @property
    def short_bytes(self) -> int:
        """How far the total exceeds the budget when it does not fit (0 when it does)."""
        return max(0, self.total_bytes - self.budget_bytes)

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.budget_bytes


def budget_bytes(memory_bytes: int, fraction: float) -> int:
    """⌊fraction · memory⌋: what the engine may use of one device (H100 80 GB at 0.9: 77,309,411,328)."""
    if not 0 < fraction <= 1:
        raise EstimatorError(f"memory fraction {fraction} must be in (0, 1]; vLLM's default is 0.9")
    return int(memory_bytes * fraction)


def serve_memory(
    spec: ModelSpec, tokens: int, batch: int, setup: ServeSetup, budget: int, *, weights: int | None = None
) -> ServeMemory:
    """The components per GPU for ``batch`` sequences of ``tokens`` each (``weights`` when precomputed)."""
    state = ServeSetup(setup.weights, setup.kv, setup.tp, 0, setup.chunk_tokens, 0)
    return ServeMemory(
        weights_bytes=weight_bytes_per_gpu(spec, setup.weights, setup.tp) if weights is None else weights,
        cache_bytes=batch * cache_bytes_per_gpu(spec, tokens, setup),
        state_bytes=batch * cache_bytes_per_gpu(spec, 0, state),
        logits_bytes=batch * logits_bytes_per_sequence(spec),
        activation_bytes=prefill_activation_bytes(spec, setup),
        overhead_bytes=setup.overhead_bytes,
        budget_bytes=budget,
    )


def most_sequences(spec: ModelSpec, tokens: int, setup: ServeSetup, budget: int) -> int:
    """The largest B whose total fits: ⌊(budget − weights − activations − overhead) / per-sequence⌋, 0 if none."""
    fixed = serve_memory(spec, tokens, 0, setup, budget)
    per_sequence = cache_bytes_per_gpu(spec, tokens, setup) + logits_bytes_per_sequence(spec)
    return fixed.headroom_bytes // per_sequence


def longest_tokens(spec: ModelSpec, batch: int, setup: ServeSetup, budget: int, limit: int) -> int:
    """The largest T ≤ ``limit`` at which ``batch`` sequences fit (0 if not even one token): the cache only
    grows with T, so a bisection finds it exactly."""
    weights = weight_bytes_per_gpu(spec, setup.weights, setup.tp)
    return largest_fitting(lambda t: serve_memory(spec, t, batch, setup, budget, weights=weights).fits, limit)
