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
  heads, so every GPU holds all of it.
- recurrent layers (Mamba, gated DeltaNet) split by head: 1/t of the convolution channels, the state and
  their maps per GPU (Mamba-2's B/C groups assumed to split too; vLLM copies them when fewer than t).
A size that does not divide is refused with the sizes that do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from estimator.errors import EstimatorError
from estimator.layout import LinearMap, ParamTensor
from estimator.layout.groups import LayerGroup, Layout
from estimator.layout.latent import LatentAttention
from estimator.layout.mixers import Attention, Mixer
from estimator.layout.recurrent import NoMixer, Parallel, RecurrentState

VOCAB_PADDING = 64  # vLLM's DEFAULT_VOCAB_PADDING_SIZE
ROW_PARALLEL = frozenset({"o", "down"})
REPLICATED_ROLES = frozenset({"router"})


@dataclass(frozen=True)
class Shard:
    """One GPU's part of a linear map: a d_out × d_in matrix and ``bias`` bias elements, per instance."""

    d_in: int
    d_out: int
    bias: int


def divisors_hint(n: int) -> str:
    return ", ".join(str(t) for t in range(1, min(n, 64) + 1) if n % t == 0)


def split(size: int, tp: int, what: str) -> int:
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


def check_mixer(mixer: Mixer, tp: int) -> None:
    """Refuse what is not modelled or does not split: recurrent layers above t = 1, heads over t."""
    if tp == 1:
        return
    if isinstance(mixer, Attention):
        split(mixer.heads, tp, "the attention heads")
        kv_heads_per_gpu(mixer.kv_heads, tp)
    elif isinstance(mixer, LatentAttention):
        split(mixer.heads, tp, "the attention heads")
    elif isinstance(mixer, RecurrentState):
        split(mixer.conv_channels, tp, f"the {mixer.label} convolution channels")
        split(mixer.state_elements, tp, f"the {mixer.label} state")
    elif isinstance(mixer, Parallel):
        for part in mixer.parts:
            check_mixer(part, tp)


def shard_map(linear: LinearMap, mixer: Mixer, tp: int) -> Shard:
    """One GPU's shard of ``linear`` (per instance) in a layer whose token mixer is ``mixer``."""
    whole = Shard(linear.d_in, linear.d_out, linear.d_out if linear.bias else 0)
    if tp == 1 or linear.roles <= REPLICATED_ROLES or "_a_proj" in linear.name:
        return whole
    if linear.roles <= ROW_PARALLEL:
        return replace(whole, d_in=split(linear.d_in, tp, f"{linear.name}'s input"))
    if isinstance(mixer, Attention) and linear.roles & {"k", "v"}:
        kv_out = mixer.kv_heads * (mixer.head_dim * ("k" in linear.roles) + v_dim(mixer) * ("v" in linear.roles))
        kept = kv_heads_per_gpu(mixer.kv_heads, tp) * kv_out // mixer.kv_heads
        q_out = split(linear.d_out - kv_out, tp, f"{linear.name}'s query part")
        d_out = q_out + kept
        return Shard(linear.d_in, d_out, d_out if linear.bias else 0)
    if not isinstance(mixer, Attention | LatentAttention | NoMixer) and linear.d_out % tp and linear.d_in % tp == 0:
        return replace(whole, d_in=linear.d_in // tp)  # Mamba's x_proj: row-parallel over the inner width
    d_out = split(linear.d_out, tp, f"{linear.name}'s output")
    return Shard(linear.d_in, d_out, d_out if linear.bias else 0)


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


def gpu_mixer(mixer: Mixer, tp: int) -> Mixer:
    """The mixer as one GPU sees it: attention with max(1, K/t) KV heads (and H/t heads), a recurrent layer
    with 1/t of its channels and state; an MLA latent whole."""
    if tp == 1:
        return mixer
    if isinstance(mixer, Attention):
        return replace(mixer, heads=mixer.heads // tp, kv_heads=kv_heads_per_gpu(mixer.kv_heads, tp))
    if isinstance(mixer, RecurrentState):
        return replace(mixer, conv_channels=mixer.conv_channels // tp, state_elements=mixer.state_elements // tp)
    if isinstance(mixer, Parallel):
        return replace(mixer, parts=tuple(gpu_mixer(part, tp) for part in mixer.parts))
    return mixer


def gpu_groups(layout: Layout, tp: int) -> tuple[LayerGroup, ...]:
    """Each layer group with its mixer as one GPU holds it (for the cache); checks every mixer splits."""
    for group in layout.groups:
        check_mixer(group.mixer, tp)
    return tuple(replace(group, mixer=gpu_mixer(group.mixer, tp)) for group in layout.groups)
