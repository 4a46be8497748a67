"""What one GPU holds under tensor parallelism of t GPUs: each weight's shard, and each layer's cache.

The split is Megatron's, as vLLM implements it:
- column-parallel maps (q, gate, up, MLA's q_b/kv_b, each expert's gate and up) split their outputs
  by t; row-parallel maps (o, down) split their inputs by t and keep the whole bias on every GPU;
- k and v split by KV head: each GPU holds max(1, K/t) heads, so when K < t each head is copied
  t/K times (Llama 3 70B, K = 8, t = 8: one head, 1/8 of k and v, per GPU);
- routers, MLA's down-projections (q_a, kv_a) and norms are replicated;
- the embedding and the output head split the vocabulary, padded to a multiple of 64 rows
  (vLLM's VocabParallelEmbedding), then divided by t;
- the cache: attention layers hold max(1, K/t) heads per GPU; a latent (MLA) cache is shared by all
  heads, so every GPU holds all of it, as does DeepSeek V4's compressed cache (one K = V head).
- recurrent layers (Mamba, gated DeltaNet) split by head: 1/t of the convolution channels, the state and
  their maps per GPU (Mamba-2's B/C groups assumed to split too; vLLM copies them when fewer than t).
A size that does not divide is refused with the sizes that do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import assert_never, cast

from estimator.layout import LinearMap, ParamTensor
from estimator.layout.compressed import CompressedAttention
from estimator.layout.groups import LayerGroup, Layout
from estimator.layout.kinds import AnyMixer
from estimator.layout.latent import LatentAttention
from estimator.layout.mixers import Attention, Mixer, divisors_hint, kv_heads_per_gpu, split
from estimator.layout.recurrent import NoMixer, Parallel, RecurrentState

__all__ = ["Shard", "divisors_hint", "gpu_groups", "kv_heads_per_gpu", "shard_map", "split", "tensor_elements"]

VOCAB_PADDING = 64  # vLLM's DEFAULT_VOCAB_PADDING_SIZE
ROW_PARALLEL = frozenset({"o", "down"})
REPLICATED_ROLES = frozenset({"router"})


@dataclass(frozen=True)
class Shard:
    """One GPU's part of a linear map: a d_out × d_in matrix and ``bias`` bias elements, per instance."""

    d_in: int
    d_out: int
    bias: int


def shard_map(linear: LinearMap, mixer: Mixer, tp: int) -> Shard:
    """One GPU's shard of ``linear`` (per instance) in a layer whose token mixer is ``mixer``."""
    whole = Shard(linear.d_in, linear.d_out, linear.d_out if linear.bias else 0)
    if tp == 1 or linear.roles <= REPLICATED_ROLES or "_a_proj" in linear.name:
        return whole
    if linear.roles <= ROW_PARALLEL:
        return replace(whole, d_in=split(linear.d_in, tp, f"{linear.name}'s input"))
    mixer.shard(tp)  # refuses, in one line, heads that do not split and a kind with no split modelled
    kind = cast("AnyMixer", mixer)  # every Mixer built is one of the declared kinds (tests/test_mixer_kinds.py)
    match kind:
        case Attention() if linear.roles & {"k", "v"}:
            kv_out = kind.kv_heads * (kind.head_dim * ("k" in linear.roles) + v_dim(kind) * ("v" in linear.roles))
            kept = kv_heads_per_gpu(kind.kv_heads, tp) * kv_out // kind.kv_heads
            q_out = split(linear.d_out - kv_out, tp, f"{linear.name}'s query part")
            return Shard(linear.d_in, q_out + kept, q_out + kept if linear.bias else 0)
        case CompressedAttention() if linear.roles & {"k", "v"}:
            return whole  # DeepSeek V4's one shared KV head and its compressors: replicated, as MQA's K = 1
        case RecurrentState() | Parallel() if linear.d_out % tp and linear.d_in % tp == 0:
            return replace(whole, d_in=linear.d_in // tp)  # Mamba's x_proj: row-parallel over the inner width
        case Attention() | LatentAttention() | CompressedAttention() | RecurrentState() | Parallel() | NoMixer():
            d_out = split(linear.d_out, tp, f"{linear.name}'s output")
            return Shard(linear.d_in, d_out, d_out if linear.bias else 0)
        case _:
            assert_never(kind)


def v_dim(mixer: Attention) -> int:
    return mixer.v_head_dim or mixer.head_dim


def tensor_elements(tensor: ParamTensor, vocab: int, tp: int) -> int:
    """Elements of one copy of ``tensor`` on one GPU: norms whole; embedding and head rows padded to a
    multiple of 64 and split (V = 128,256, d = 8,192, t = 8: 16,032 · 8,192); attention and recurrent
    tensors (sinks, convolutions) split by t."""
    if tensor.group == "norm" or (tp == 1 and tensor.group not in ("embedding", "lm_head")):
        return tensor.numel
    if tensor.group in ("embedding", "lm_head") and vocab and tensor.numel % vocab == 0:
        width = tensor.numel // vocab
        padded = -(-vocab // VOCAB_PADDING) * VOCAB_PADDING
        return split(padded, tp, "the padded vocabulary") * width
    return split(tensor.numel, tp, tensor.name)


def gpu_groups(layout: Layout, tp: int) -> tuple[LayerGroup, ...]:
    """Each layer group with its mixer as one GPU holds it (for the cache): each kind splits itself
    (:meth:`estimator.layout.Mixer.shard`), refusing in one line what does not split or is not modelled."""
    return tuple(replace(group, mixer=group.mixer.shard(tp)) for group in layout.groups)
