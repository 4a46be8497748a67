"""Time on an accelerator: a roofline per phase of serving, from the FLOPs and the bytes each phase moves.

A phase (prefilling n tokens, decoding g tokens one at a time, a fine-tuning run) takes at least

    seconds = max(FLOPs / peak FLOP/s, bytes / memory bandwidth)

on one accelerator (or t in ideal tensor parallel, t times its peaks) at its peak, with no overlap loss or
utilisation below peak: a lower bound that real kernels approach within a factor of about two. Bytes, for
a batch of B sequences served together (FLOPs are B times one sequence's):

    prefill n tokens after c cached  = weights read once (every expert)      + B · KV(c + n) (cache read, rows written)
    decode g tokens after c          = g · (N_f · b_w + adapter) / 8          + B · Σ_{i=1..g} KV(c + i)
    fine-tuning                      = compute-bound: its FLOPs / peak

so batching shares the weights' reads among B queries but not the cache's: each query's time is the batch's
over B, and where reading the cache dominates (a long context) batching saves little.

where N_f are the parameters a token multiplies by (:func:`estimator.cost.forward_params`: MoE decode
reads only the routed experts), b_w bits per weight, and KV(n) the cache of n tokens
(:func:`estimator.kv.kv_cache_bytes`, windows and fixed states included). Decoding over a long context is
memory-bound: Llama 3 70B in bf16 after 100,000 tokens reads 139.0 GB of weights and 32.8 GB of cache per
token, 51.3 ms on an H100 SXM (3.35 TB/s), while its 139 GFLOPs take 0.14 ms at 989 TFLOP/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from estimator.architecture import layout_of, param_breakdown, total_params
from estimator.cost import MULTIPLY_ADD, forward_params, sequence_flops
from estimator.layout.mixers import causal_positions
from estimator.units import BITS_PER_BYTE

if TYPE_CHECKING:
    from estimator.cost import Breakeven
    from estimator.layout.formats import KVFormat
    from estimator.specs import ModelSpec
    from estimator.units import DType


class Roofline(Protocol):
    """What the time of a phase needs of an accelerator (:class:`estimator.accelerators.Accelerator`)."""

    @property
    def bf16_dense_flops_per_s(self) -> int: ...

    @property
    def memory_bandwidth_bytes_per_s(self) -> int: ...


@dataclass(frozen=True)
class Phase:
    """The work of one phase: FLOPs computed and bytes moved to or from memory."""

    flops: int
    bytes: int

    def __add__(self, other: Phase) -> Phase:
        return Phase(self.flops + other.flops, self.bytes + other.bytes)

    def seconds(self, device: Roofline) -> float:
        """max(FLOPs / peak, bytes / bandwidth): the roofline lower bound on the phase's time."""
        return max(self.compute_seconds(device), self.memory_seconds(device))

    def compute_seconds(self, device: Roofline) -> float:
        return self.flops / device.bf16_dense_flops_per_s

    def memory_seconds(self, device: Roofline) -> float:
        return self.bytes / device.memory_bandwidth_bytes_per_s

    def bound(self, device: Roofline) -> str:
        """``memory`` or ``compute``: which side of the roofline the phase sits on."""
        return "memory" if self.memory_seconds(device) >= self.compute_seconds(device) else "compute"


def weights_read_bytes(spec: ModelSpec, weights: DType, *, every_expert: bool) -> int:
    """Weight bytes one forward pass reads: every matmul's parameters (the input embedding only as rows,
    so not counted; a tied head counted), all experts for a prefill, only the routed ones for one token.

    Llama 3 70B, bf16: 69,503,033,344 · 2 = 139,006,066,688 bytes either way (dense)."""
    tied_head = spec.vocab_size * spec.hidden_size if spec.tie_word_embeddings else 0
    params = total_params(spec) - param_breakdown(spec)["embedding"] + tied_head if every_expert else None
    return -(-(forward_params(spec) if params is None else params) * weights.bits // BITS_PER_BYTE)


def cache_bytes_summed(spec: ModelSpec, first: int, last: int, kv: KVFormat) -> int:
    """Σ_{n=first..last} KV(n): the cache bytes read by decoding tokens first..last, each over its cache.

    Per group, Σ_n min(n, cap) = positions(last, cap) − positions(first − 1, cap); rounded up once."""
    count = last - first + 1
    bits = 0
    for g in layout_of(spec).groups:
        cap = g.mixer.cap_tokens(kv)
        held = causal_positions(last, cap) - causal_positions(first - 1, cap)
        bits += g.layers * (g.mixer.bits_per_token(kv) * held + g.mixer.fixed_bits(kv) * count)
    return -(-bits // BITS_PER_BYTE)


@dataclass(frozen=True)
class Serving:
    """How a model is served: its cache format, weight dtype, and an unmerged adapter of P parameters
    (those a token passes through) in ``adapter_bits`` each, if any."""

    spec: ModelSpec
    kv: KVFormat
    weights: DType
    adapter_params: int = 0
    adapter_bits: int = 16
    batch: int = 1  # sequences served together: the weights read once per step for all of them

    @property
    def adapter_bytes(self) -> int:
        return -(-self.adapter_params * self.adapter_bits // BITS_PER_BYTE)

    def prefill(self, cached: int, tokens: int) -> Phase:
        """Prefilling ``tokens`` after ``cached`` already in the cache: every weight read once, the cache
        of cached + tokens read or written; FLOPs of the new tokens' forward pass and adapter."""
        from estimator.kv import kv_cache_bytes

        if tokens == 0:
            return Phase(0, 0)
        spec, kv = self.spec, self.kv
        flops = sequence_flops(spec, cached + tokens, kv) - sequence_flops(spec, cached, kv)
        flops += MULTIPLY_ADD * self.adapter_params * tokens
        weights = weights_read_bytes(spec, self.weights, every_expert=True) + self.adapter_bytes
        return Phase(self.batch * flops, weights + self.batch * kv_cache_bytes(spec, cached + tokens, kv))

    def decode(self, context: int, tokens: int) -> Phase:
        """Decoding ``tokens`` one at a time after ``context``, for each of the batch: each step reads the
        routed weights and the adapter once, and every sequence's cache so far."""
        if tokens == 0:
            return Phase(0, 0)
        spec, kv = self.spec, self.kv
        flops = sequence_flops(spec, context + tokens, kv) - sequence_flops(spec, context, kv)
        flops += MULTIPLY_ADD * self.adapter_params * tokens
        per_token = weights_read_bytes(spec, self.weights, every_expert=False) + self.adapter_bytes
        cache = cache_bytes_summed(spec, context + 1, context + tokens, kv)
        return Phase(self.batch * flops, tokens * per_token + self.batch * cache)


def breakeven_queries_by_time(once_extra_s: float, per_query_saving_s: float) -> int | None:
    """⌈once / saving⌉ queries before fine-tuning has paid for itself in time; None if it never does."""
    if per_query_saving_s <= 0:
        return None
    return max(0, math.ceil(once_extra_s / per_query_saving_s))


@dataclass(frozen=True)
class BreakevenTime:
    """Seconds each way takes on a deployment (roofline per phase), per query at its batch, and the break-even
    in time; ``*_decode_s_per_token`` is one decoding step of the whole batch."""

    device: Roofline
    in_context_query_seconds: float
    in_context_prefix_cached_once_seconds: float
    in_context_prefix_cached_query_seconds: float
    finetune_once_seconds: float
    fine_tuned_query_seconds: float
    in_context_decode_seconds_per_token: float  # one generated token after the context and question
    fine_tuned_decode_seconds_per_token: float
    in_context_decode_bound: str
    batch: int = 1

    def cumulative_seconds(self, queries: int) -> dict[str, float]:
        """Total seconds after ``queries`` queries, each way (per-query time × queries, plus what is paid once)."""
        return {
            "in_context": queries * self.in_context_query_seconds,
            "in_context_prefix_cached": self.in_context_prefix_cached_once_seconds
            + queries * self.in_context_prefix_cached_query_seconds,
            "fine_tuned": self.finetune_once_seconds + queries * self.fine_tuned_query_seconds,
        }

    @property
    def queries(self) -> int | None:
        return breakeven_queries_by_time(
            self.finetune_once_seconds, self.in_context_query_seconds - self.fine_tuned_query_seconds
        )

    @property
    def queries_prefix_cached(self) -> int | None:
        return breakeven_queries_by_time(
            self.finetune_once_seconds - self.in_context_prefix_cached_once_seconds,
            self.in_context_prefix_cached_query_seconds - self.fine_tuned_query_seconds,
        )


def breakeven_time(result: Breakeven, device: Roofline, batch: int = 1) -> BreakevenTime:
    """The break-even of ``result`` (:func:`estimator.cost.breakeven`) in seconds on ``device``: ``batch``
    queries served together, each a prefill and a decode phase, the batch's time shared among them (a
    prefix-cached context computed once for all); fine-tuning compute-bound at peak."""
    est = result.est
    t, q, g = est.tokens, result.query_tokens, result.generated_tokens
    plain = Serving(est.spec, est.kv, est.weights_dtype, batch=batch)
    tuned = Serving(est.spec, est.kv, est.weights_dtype, result.active_adapter_params, est.adapter_dtype.bits, batch)
    icl_decode = plain.decode(t + q, g).seconds(device)
    return BreakevenTime(
        device=device,
        in_context_query_seconds=(plain.prefill(0, t + q).seconds(device) + icl_decode) / batch,
        in_context_prefix_cached_once_seconds=Serving(est.spec, est.kv, est.weights_dtype)
        .prefill(0, t)
        .seconds(device),
        in_context_prefix_cached_query_seconds=(plain.prefill(t, q).seconds(device) + icl_decode) / batch,
        finetune_once_seconds=result.finetune_once_flops / device.bf16_dense_flops_per_s,
        fine_tuned_query_seconds=(tuned.prefill(0, q).seconds(device) + tuned.decode(q, g).seconds(device)) / batch,
        in_context_decode_seconds_per_token=plain.decode(t + q, 1).seconds(device),
        fine_tuned_decode_seconds_per_token=tuned.decode(q, 1).seconds(device),
        in_context_decode_bound=plain.decode(t + q, 1).bound(device),
        batch=batch,
    )
