"""FLOPs: in-context learning pays for its context on every query; fine-tuning pays once.

Notation: N_f forward matmul parameters per token (active parameters without the input embedding
table; a tied output head counted, since its matmul runs), L layers, H query heads, d_qk and d_v
the query-key and value head dims, w_l the sliding window of layer l, T context tokens, q query
tokens and g generated tokens per query, P adapter parameters, E epochs, A augmentation factor.

    attention at position t, layer l   = 2 · min(t, w_l) · H · (d_qk + d_v)     (QKᵀ, then A·V)
    sequence(n)  = 2 · N_f · n + Σ_l Σ_{t=1..n} 2 · min(t, w_l) · H · (d_qk + d_v)
                 = 2 · N_f · n + L · H · (d_qk + d_v) · n (n + 1)   without windows
                   (≈ 2 · L · n² · d_attn with d_attn = H · d_h: the causal attention term)
    ICL per query            = sequence(T + q + g)                       (context, query and answer)
    ICL, prefix cached       = sequence(T) once, then sequence(T + q + g) − sequence(T) per query
    fine-tuned per query     = sequence(q + g) + 2 · P · (q + g)         (an unmerged LoRA's matmuls)
    LoRA training            = (4 · N_f + 6 · P) · T · A · E             (forward, input gradients, adapter
                                                                          gradients; full fine-tuning 6 · N_f)
                               + 3 · attention of the T · A tokens cut into sequences of S tokens, per epoch
                               (backward through attention costs twice its forward)
    MLA                      : from the latent cache (the default) attention runs absorbed, width
                               H · (2 · kv_lora_rank + qk_rope); training, with no cache, per head
    augmentation (A > 1)     = sequence(T) + (A − 1) · (sequence(2T) − sequence(T))
                               (A − 1 rewrites of T tokens, each generated with the document in context)
    break-even queries       = ⌈(fine-tuning once − ICL once) / (ICL per query − fine-tuned per query)⌉

Pure integer arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, assert_never

from estimator.architecture import active_params, layout_of, param_breakdown
from estimator.compare import Estimate
from estimator.constants import EXPOSURES_FOR_CAPACITY as EXPOSURES_FOR_CAPACITY  # re-exported for cli/breakeven
from estimator.errors import EstimatorError
from estimator.layout.formats import KVFormat, MlaCache
from estimator.query.vocabulary import Method
from estimator.specs import ModelSpec
from estimator.stores.targets import lora_params

MULTIPLY_ADD = 2  # FLOPs per weight per token: one multiply, one add
FORWARD_BACKWARD_FULL = 6  # forward 2, input gradients 2, weight gradients 2
FORWARD_BACKWARD_FROZEN = 4  # frozen weights: forward 2 and input gradients 2, no weight gradients
ATTENTION_FORWARD_BACKWARD = 3  # attention has no weights: forward 1x, gradients for Q, K and V 2x
SERVING = KVFormat()  # the default cache: MLA latent, so its attention runs absorbed
TRAINING = KVFormat(mla=MlaCache.expanded)  # no cache while training: MLA per head


BreakevenMethod = Literal[Method.lora, Method.full]  # what fine-tuning trains here: a LoRA, or every weight


def breakeven_method(value: object) -> BreakevenMethod:
    """``--finetune``'s method: ``lora`` (4N + 6P per token) or ``full`` (6N), as the word or the
    :class:`Method` (a member equals its word); any other refused in one line."""
    match value:
        case Method.lora:
            return Method.lora
        case Method.full:
            return Method.full
    raise EstimatorError(f"--finetune {str(value)!r} is not one of: lora, full (a LoRA or every weight trains)")


def trains_adapter(finetune: BreakevenMethod) -> bool:
    """A LoRA trains (its P parameters held and run per token), not every weight (full fine-tuning)."""
    match finetune:
        case Method.lora:
            return True
        case Method.full:
            return False
        case _:
            assert_never(finetune)


def forward_params(spec: ModelSpec) -> int:
    """N_f: parameters a token's forward pass multiplies by: active parameters less the input
    embedding table, plus the output head's V · d when it is tied to the embedding.

    Llama 3 70B: 70,553,706,496 − 128,256 · 8,192 = 69,503,033,344.
    """
    tied_head = spec.vocab_size * spec.hidden_size if spec.tie_word_embeddings else 0
    return active_params(spec) - param_breakdown(spec)["embedding"] + tied_head


def active_adapter_params(est: Estimate) -> int:
    """P: LoRA parameters one token passes through, P_all − P_routed · (E − k) / E (P_all when dense).

    A routed expert's adapter runs only for the tokens sent to it, as the expert itself does.
    """
    spec = est.spec
    if spec.n_routed_experts is None or spec.num_experts_per_tok is None:
        return est.lora_params
    routed = est.targets.only(tuple(linear for linear in est.targets.linears if linear.expert))
    idle = spec.n_routed_experts - spec.num_experts_per_tok
    return est.lora_params - lora_params(routed, est.rank) * idle // spec.n_routed_experts


def attention_width(spec: ModelSpec) -> int:
    """H · (d_qk + d_v): elements a query meets per cached position and layer (QKᵀ and A·V), the widest
    of the model's mixers.

    Standard attention: H · 2 · d_h (Llama 3 70B: 64 · 256 = 16,384). MLA, computed per head:
    H · (qk_nope + qk_rope + v_head_dim).
    """
    return max(group.mixer.attention_width for group in layout_of(spec).groups)


def attention_flops(spec: ModelSpec, n: int, fmt: KVFormat = SERVING) -> int:
    """Σ_g |g| · 2 · width_g · Σ_{t=1..n} min(t, w_g) (no windows: L · H · (d_qk + d_v) · n (n + 1)).

    Llama 3 70B, 100,000 tokens: 80 · 16,384 · 100,000 · 100,001 = 13,107,331,072,000,000.
    MLA from its latent cache runs absorbed, H · (2 · kv_lora_rank + qk_rope) per position (DeepSeek-V3:
    139,264, 3.4x the expanded 40,960); see :meth:`estimator.layout.latent.LatentAttention.flops_width`.
    """
    return sum(group.layers * group.mixer.attention_flops(n, fmt) for group in layout_of(spec).groups)


def sequence_flops(spec: ModelSpec, n: int, fmt: KVFormat = SERVING) -> int:
    """Forward FLOPs of a sequence of n tokens: 2 · N_f · n + :func:`attention_flops`."""
    return MULTIPLY_ADD * forward_params(spec) * n + attention_flops(spec, n, fmt)


def training_flops_per_token(spec: ModelSpec, finetune: BreakevenMethod, adapter_params: int) -> int:
    """LoRA: 4 · N_f + 6 · P (frozen weights pass gradients on but keep none); full: 6 · N_f."""
    n_f = forward_params(spec)
    match finetune:
        case Method.full:
            return FORWARD_BACKWARD_FULL * n_f
        case Method.lora:
            return FORWARD_BACKWARD_FROZEN * n_f + FORWARD_BACKWARD_FULL * adapter_params
        case _:
            assert_never(finetune)


def training_attention_flops(spec: ModelSpec, tokens: int, sequence_tokens: int) -> int:
    """3 · attention FLOPs of ``tokens`` training tokens cut into sequences of S: ⌊n/S⌋ full, one shorter.
    Training keeps no cache: MLA runs expanded, per head."""
    full, rest = divmod(tokens, sequence_tokens)
    forward = full * attention_flops(spec, sequence_tokens, TRAINING) + attention_flops(spec, rest, TRAINING)
    return ATTENTION_FORWARD_BACKWARD * forward


def augmentation_flops(spec: ModelSpec, tokens: int, augmentation: int) -> int:
    """Generating A − 1 rewrites of T tokens with the document in context (its prefill once):
    sequence(T) + (A − 1) · (sequence(2T) − sequence(T)); zero when A = 1."""
    if augmentation <= 1:
        return 0
    once = sequence_flops(spec, tokens)
    return once + (augmentation - 1) * (sequence_flops(spec, 2 * tokens) - once)


def capacity_epochs(augmentation: int) -> int:
    """⌈1,000 / A⌉: epochs at which each fact is seen the ~1,000 times behind 2 bits per parameter."""
    return -(-EXPOSURES_FOR_CAPACITY // augmentation)


def breakeven_queries(once_extra_flops: int, per_query_saving_flops: int) -> int | None:
    """⌈once / saving⌉ queries before fine-tuning has paid for itself; None if it never does."""
    if per_query_saving_flops <= 0:
        return None
    return max(0, -(-once_extra_flops // per_query_saving_flops))


@dataclass(frozen=True)
class Breakeven:
    """FLOPs of learning ``est.tokens`` tokens in context against fine-tuning them in, and the crossover."""

    est: Estimate
    finetune: BreakevenMethod
    epochs: int
    augmentation: int
    train_sequence_tokens: int
    query_tokens: int
    generated_tokens: int
    adapter_params: int  # stored
    active_adapter_params: int  # computed per token
    training_flops: int
    augmentation_flops: int
    in_context_query_flops: int
    in_context_prefix_cached_once_flops: int
    in_context_prefix_cached_query_flops: int
    fine_tuned_query_flops: int

    @property
    def finetune_once_flops(self) -> int:
        return self.training_flops + self.augmentation_flops

    @property
    def queries(self) -> int | None:
        """Queries after which fine-tuning is cheaper than putting the text in every prompt."""
        return breakeven_queries(self.finetune_once_flops, self.in_context_query_flops - self.fine_tuned_query_flops)

    @property
    def queries_prefix_cached(self) -> int | None:
        """The same against a context whose KV cache is computed once and kept (prefix caching)."""
        return breakeven_queries(
            self.finetune_once_flops - self.in_context_prefix_cached_once_flops,
            self.in_context_prefix_cached_query_flops - self.fine_tuned_query_flops,
        )

    def cumulative_flops(self, queries: int) -> dict[str, int]:
        """Total FLOPs after ``queries`` queries, each way."""
        return {
            "in_context": queries * self.in_context_query_flops,
            "in_context_prefix_cached": self.in_context_prefix_cached_once_flops
            + queries * self.in_context_prefix_cached_query_flops,
            "fine_tuned": self.finetune_once_flops + queries * self.fine_tuned_query_flops,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.est.spec.name,
            "tokens": self.est.tokens,
            "finetune": self.finetune.value,
            "rank": self.est.rank if trains_adapter(self.finetune) else None,
            "epochs": self.epochs,
            "augmentation_factor": self.augmentation,
            "train_sequence_tokens": self.train_sequence_tokens,
            "query_tokens": self.query_tokens,
            "generated_tokens": self.generated_tokens,
            "forward_params": forward_params(self.est.spec),
            "adapter_params": self.adapter_params,
            "active_adapter_params": self.active_adapter_params,
            "training_flops": self.training_flops,
            "augmentation_flops": self.augmentation_flops,
            "finetune_once_flops": self.finetune_once_flops,
            "in_context_query_flops": self.in_context_query_flops,
            "in_context_prefix_cached_once_flops": self.in_context_prefix_cached_once_flops,
            "in_context_prefix_cached_query_flops": self.in_context_prefix_cached_query_flops,
            "fine_tuned_query_flops": self.fine_tuned_query_flops,
            "breakeven_queries": self.queries,
            "breakeven_queries_prefix_cached": self.queries_prefix_cached,
            "kv_cache_bytes_held": self.est.kv_cache_bytes,
            "adapter_bytes_held": self.est.lora_bytes if trains_adapter(self.finetune) else 0,
        }


def breakeven(
    est: Estimate,
    epochs: int = 1,
    augmentation: int = 1,
    query_tokens: int = 100,
    generated_tokens: int = 100,
    finetune: BreakevenMethod = Method.lora,
    train_sequence_tokens: int = 4_096,
) -> Breakeven:
    """The FLOPs of each way for ``est`` (model, T, rank, targets) and the break-even query counts."""
    if min(epochs, augmentation, train_sequence_tokens) < 1 or min(query_tokens, generated_tokens) < 0:
        raise EstimatorError(
            "epochs, augmentation and training sequence tokens must be at least 1; "
            "query and generated tokens at least 0"
        )
    finetune = breakeven_method(finetune)  # a caller's Method.dora, refused in one line
    spec, tokens = est.spec, est.tokens
    adapter = est.lora_params if trains_adapter(finetune) else 0
    active = active_adapter_params(est) if trains_adapter(finetune) else 0
    per_query = query_tokens + generated_tokens
    with_context = sequence_flops(spec, tokens + per_query, est.kv)
    context = sequence_flops(spec, tokens, est.kv)
    trained = tokens * augmentation
    per_epoch = training_flops_per_token(spec, finetune, active) * trained
    per_epoch += training_attention_flops(spec, trained, train_sequence_tokens)
    return Breakeven(
        est=est,
        finetune=finetune,
        epochs=epochs,
        augmentation=augmentation,
        train_sequence_tokens=train_sequence_tokens,
        query_tokens=query_tokens,
        generated_tokens=generated_tokens,
        adapter_params=adapter,
        active_adapter_params=active,
        training_flops=per_epoch * epochs,
        augmentation_flops=augmentation_flops(spec, tokens, augmentation),
        in_context_query_flops=with_context,
        in_context_prefix_cached_once_flops=context,
        in_context_prefix_cached_query_flops=with_context - context,
        fine_tuned_query_flops=sequence_flops(spec, per_query, est.kv) + MULTIPLY_ADD * active * per_query,
    )
