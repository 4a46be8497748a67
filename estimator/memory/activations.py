"""The bytes a fine-tuning step saves for backward: per layer kind, per token, with and without checkpointing.

What transformers' code saves (bf16 model, SDPA attention, peft LoRA with fp32 adapters and no dropout),
as counted with ``torch.autograd.graph.saved_tensors_hooks`` on real forward passes, storages counted once,
parameters left out (:mod:`estimator.validate.training` measures it; N = B · T tokens):

- each RMSNorm of width w: x in fp32 (4w), its rsqrt (4), and the normed bf16 x (2w) when its weight trains;
  Qwen3's q_norm and k_norm the same per head, for H and K heads;
- attention through SDPA: q (2 · H · d_h), k and v at the K KV heads (2 · K · d_h each; SDPA's
  ``enable_gqa``, no repeat), its output (2 · H · d_v) and the fp32 log-sum-exp (4 · H);
- full fine-tuning: every linear map's bf16 input, once per distinct input (q, k and v share the normed
  x: 2d; o reads SDPA's output, already saved; down reads F: 2F); the gated MLP's SiLU input and output
  and up's output (6F); the token ids (8N), the final norm, the head's input (2d) and the loss;
- LoRA: a frozen map saves nothing (its input gradient needs only its weight); each adapted map saves its
  fp32 copy of the input and A's output, 4 · (d_in + r); under ``torch.autocast(bf16)`` (HF Trainer's
  ``bf16=True``) those are bf16, 2 · (d_in + r), and each layer also keeps autocast's bf16 copies of A and
  B, 2 · r · (d_in + d_out) per map; the first layer's input norm saves nothing (the embedding's output
  needs no gradient); QLoRA's 4-bit base likewise saves no input;
- mixture of experts (transformers' grouped_mm): the router saves 2d + 4E + 8k per token (and 4 + 4k more
  where the top-k weights are renormalised, ``norm_topk_prob``), the experts k · (4d + 8F′ + 26) per token
  and 4E per layer;
- the loss: logits.float()'s log-softmax (4V per token), the int64 targets (8 · (T + 1) at batch 1, else 8N)
  and a scalar (4); RoPE's cos and sin (4 · T · d_h), once.

With checkpointing (transformers' default, non-reentrant) each layer keeps only its bf16 input (2d per token)
and backward recomputes one layer at a time, holding that layer's bytes (plus cos and sin) once more.
The bf16 logits (2 · N · V) the model returns are counted apart. Layer kinds measured to the byte: dense
attention + gated MLP with RMSNorm (Llama, Mistral without windows, Qwen2, Qwen3) for LoRA and full
fine-tuning, and grouped experts (Qwen3-MoE) for full fine-tuning; every other kind is built from the same
terms and reported as an estimate. Recurrent layers are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from estimator.architecture import layout_of
from estimator.families import conventions_of

if TYPE_CHECKING:
    from estimator.layout.groups import LayerGroup
    from estimator.specs import ModelSpec

BF16, FP32, INT64 = 2, 4, 8


def measured(spec: ModelSpec) -> bool:
    """Whether ``spec``'s model type is one whose saved bytes were validated to the byte (its family declares it:
    Llama, Mistral, Qwen2, Qwen3 and Qwen3-MoE)."""
    return conventions_of(spec.model_type).measured_activations


class Checkpointing(StrEnum):
    none = "none"
    layers = "layers"


@dataclass(frozen=True)
class ActivationBytes:
    """Saved for backward after the forward pass, one layer's recompute in backward, the bf16 logits."""

    saved_bytes: int
    recompute_bytes: int
    logits_bytes: int
    exact: bool  # every layer kind is one measured to the byte

    @property
    def total_bytes(self) -> int:
        return self.saved_bytes + self.recompute_bytes + self.logits_bytes


def norm_bytes(width: int, trains: bool) -> int:
    """One RMSNorm per token: fp32 x (4w), rsqrt (4), the normed bf16 x if its weight trains (2w).
    d = 8,192: 57,348 bytes training, 32,772 frozen."""
    return (6 if trains else 4) * width + FP32


def layer_bytes_per_token(
    group: LayerGroup, spec: ModelSpec, ranks: dict[str, int] | None, autocast: bool = False
) -> tuple[int, int, bool]:
    """(bytes per token, bytes per layer, exact) one layer of ``group`` saves; ``ranks``: the adapted maps'
    names and ranks (LoRA), or None (full fine-tuning); ``autocast``: under ``torch.autocast(bf16)``. The mixer
    answers for its own kernel (:meth:`~estimator.layout.Mixer.saved_bytes_per_token`; a kind whose activations
    are not modelled refuses in one line), its per-head norms and whether o_proj's input is already saved."""
    mixer, d, lora = group.mixer, spec.hidden_size, ranks is not None
    core = mixer.saved_bytes_per_token()  # SDPA's q, k, v, output and log-sum-exp; refused where not modelled
    exact = measured(spec) and (lora is False or group.moe is None) and mixer.saved_bytes_measured()
    token, layer = 0, 0
    adapter_width = BF16 if autocast else FP32  # the copy of its input each adapter saves
    for tensor in group.tensors:
        if tensor.group != "norm":
            exact = False
            continue
        heads = mixer.per_head_norms(tensor.name, tensor.numel)  # Qwen3's q_norm and k_norm, per head
        exact &= tensor.numel == d or heads > 0
        token += (heads or 1) * norm_bytes(tensor.numel, not lora)
    token += core
    linears = group.linears(False)
    gated = any("gate" in m.roles and not m.expert for m in linears)
    width = 0  # the dense MLP's width F (gate/up outputs)
    for m in linears:
        if m.expert:
            continue
        if m.roles & {"gate", "up"}:
            width = m.d_out // len(m.roles & {"gate", "up"})
        if lora:
            rank = ranks.get(m.name) if ranks else None
            if rank is not None:
                token += adapter_width * (m.d_in + rank)
                layer += BF16 * rank * (m.d_in + m.d_out) * autocast  # autocast's bf16 copies of A and B
        elif "router" in m.roles:
            continue  # its input is counted with the experts below
        elif "down" in m.roles or ("o" in m.roles and not mixer.output_saved_by_kernel):
            token += BF16 * m.d_in
        elif m.d_in != d and "o" not in m.roles:  # a map reading an inner width (MLA's q_b, kv_b): its own input
            token += BF16 * m.d_in
            exact = False
    if not lora:  # q/k/v and gate/up each read the normed x once per block
        readers = {m.block for m in linears if m.d_in == d and not m.expert and m.roles - {"o", "down", "router"}}
        token += BF16 * d * len(readers)
    token += 3 * BF16 * width if gated else BF16 * width
    exact &= gated or width == 0
    if group.moe is not None:
        moe = group.moe
        f, k, e = moe.width, moe.top_k, moe.experts
        token += (0 if lora else BF16 * d) + FP32 * e + INT64 * k  # router: input, softmax, top-k indices
        token += (FP32 + FP32 * k) * moe.renormalised  # dividing the top-k weights by their sum
        token += k * (4 * d + 8 * f + 26)
        layer += FP32 * e
        if ranks is not None:
            token += k * sum(adapter_width * (m.d_in + ranks[m.name]) for m in linears if m.expert and m.name in ranks)
            if any(m.expert and not m.module and m.name in ranks for m in linears):  # peft's ParamWrapper
                layer += BF16 * 3 * e * d * f  # merges each adapted 3-D expert tensor, and saves the merged copy
    return token, layer, exact


def layer_kinds(
    spec: ModelSpec, ranks: dict[str, int] | None, autocast: bool = False
) -> list[tuple[int, str, int, int]]:
    """(layers, kind, bytes per token, bytes per layer) each kind of layer saves without checkpointing, as
    in :func:`layer_bytes_per_token` (Llama 3 70B, full: 80 layers of attention + MLP, 397,576 per token)."""
    out = []
    for g in layout_of(spec).groups:
        token, layer, _ = layer_bytes_per_token(g, spec, ranks, autocast)
        kind = f"{g.mixer.kind} + {'experts' if g.moe is not None else 'MLP'}"
        out.append((g.layers, kind, token, layer))
    return out


def lora_ranks(targets: object, rank: int) -> dict[str, int]:
    """Adapted map names (as inside a layer) and their ranks, from resolved targets."""
    linears = getattr(targets, "linears", ())
    return {m.name: rank * targets.factor(i) for i, m in enumerate(linears)}  # type: ignore[attr-defined]


def activation_bytes(
    spec: ModelSpec,
    tokens: int,
    batch: int,
    ranks: dict[str, int] | None,
    checkpointing: Checkpointing = Checkpointing.none,
    autocast: bool = False,
) -> ActivationBytes:
    """Saved-for-backward bytes of one micro-batch of ``batch`` sequences of ``tokens`` (module docstring).

    Llama 3 70B, full fine-tuning, one sequence of 4,096 tokens, no checkpointing: 80 layers of
    4,096 · 617,736 bytes, plus the ids, final norm, head input, loss and RoPE; see the tests for the sum."""
    n, d, vocab = batch * tokens, spec.hidden_size, spec.vocab_size
    lora = ranks is not None
    groups = layout_of(spec).groups
    per_layer = [(g, *layer_bytes_per_token(g, spec, ranks, autocast)) for g in groups]
    exact = all(e for *_, e in per_layer)
    head_dim = next((g.mixer.rope_head_dim for g in groups if g.mixer.rope_head_dim), 0)
    outside = FP32 * n * vocab + INT64 * (tokens + 1 if batch == 1 else n) + FP32  # the loss
    outside += n * norm_bytes(d, not lora) + (0 if lora else n * (INT64 + BF16 * d))  # final norm; ids, head input
    rope = 2 * BF16 * tokens * head_dim
    if checkpointing is Checkpointing.layers:
        saved = outside + rope + sum(g.layers * BF16 * n * d for g, *_ in per_layer)
        recompute = max(n * token + layer for _, token, layer, _ in per_layer) + rope
    else:
        saved = outside + rope + sum(g.layers * (n * token + layer) for g, token, layer, _ in per_layer)
        if ranks is not None:  # the first layer reads the embedding's output, which needs no gradient: its input norm
            saved -= n * norm_bytes(d, False)  # saves nothing, nor do autocast's copies of A for maps reading it
            reading = [m for m in groups[0].linears(False) if m.roles <= {"q", "k", "v"} and m.d_in == d]
            saved -= autocast * sum(BF16 * ranks[m.name] * m.d_in for m in reading if m.name in ranks)
        recompute = 0
    return ActivationBytes(saved, recompute, BF16 * n * vocab, exact)
