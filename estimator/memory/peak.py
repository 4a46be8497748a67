"""The peak of a fine-tuning step: what is alive at its highest moment, phase by phase, and the inverse answers.

Between steps a GPU holds the persistent part: the weights (frozen and trained), fp32 master weights and the
optimizer's states (unless paged or offloaded). Gradients exist from backward to the optimizer step (HF Trainer
zeroes them with ``set_to_none``; one micro-batch per step). On top of that, each phase holds its own:

- ``forward``, the loss's forward: everything saved, autocast's bf16 copies of the fp32 adapters (its cast cache
  lives until the autocast region ends), the final norm's output and the loss's forward tensors; it decides only for
  transformers 4.43-4.47's shifted copy at B > 1;
- ``loss``, the start of backward: everything the forward saved, the loss's three tensors
  (:mod:`estimator.memory.loss`); with Llama-size vocabularies this is the peak at long context (measured);
- ``layers``, backward through the layers: what is still saved, the layer recomputed under checkpointing,
  the gradients in flight inside it (the residual gradient twice, 2 · b · N · d, and the gated MLP's three
  gradients of N · F, 3 · 2 · N · F, an estimate), and for QLoRA bitsandbytes' dequantised copy of the largest
  NF4 matrix (``dequantize_4bit`` writes d_in · d_out bf16 before each matmul, forward and backward); by then
  the gradients of the trained weights: at the top of backward the head's, at the bottom all of them;
- ``optimizer``: the gradients and the step's own transients (none for the fused AdamW HF Trainer uses with
  torch >= 2.8, for bitsandbytes' 8-bit kernels, or SGD).

QLoRA with peft's ``prepare_model_for_kbit_training`` (the usual recipe) casts every parameter that is not a
``Params4bit`` (embeddings, head, norms, bare expert tensors) to fp32. Then the embedding returns fp32, each
RMSNorm returns fp32 (an fp32 weight times its input), bitsandbytes' ``Linear4bit`` returns its input's dtype,
and the residual stream is fp32: each checkpointed layer input is 4d bytes per token, not 2d, and RoPE's cos and
sin stay fp32 (2 · 4 · T · d_h, not 2 · 2). Under autocast the fp32 head runs in bf16 and saves autocast's bf16
copy of its weight (2 · V · d). Measured on a real NF4 twin on the CPU (bitsandbytes' kernels do not run under
fake tensors): the persistent bytes and the loss phase to within 4 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from estimator.architecture import layout_of
from estimator.errors import EstimatorError
from estimator.memory.activations import Checkpointing, activation_bytes
from estimator.memory.formats import FP32_BYTES, WeightFormat, matrix_bytes
from estimator.memory.loss import loss_backward_bytes, loss_forward_bytes
from estimator.memory.training import Offload, train_memory
from estimator.memory.weights import linear_format
from estimator.units import largest_fitting

if TYPE_CHECKING:
    from estimator.memory.training import TrainMemory, TrainSetup
    from estimator.specs import ModelSpec

BF16 = 2
RESIDUAL_GRADIENTS = 2  # the gradient reaching a layer's output and the one it passes down, alive together
MLP_GRADIENTS = 3  # gate's, up's and the activation's gradients of N · F, alive together in the MLP's backward


@dataclass(frozen=True)
class TrainPeak:
    """Bytes per GPU at the peak of a step: the persistent part and the phase that decides, with its parts."""

    memory: TrainMemory
    persistent_bytes: int  # weights, master weights and optimizer states on the GPU
    phases: dict[str, int]  # phase -> bytes above the persistent part
    parts: dict[str, dict[str, int]]  # phase -> its parts (they sum to the phase's bytes)

    @property
    def phase(self) -> str:
        """The phase whose bytes are highest: the one that decides whether the step fits."""
        return max(self.phases, key=lambda p: self.phases[p])

    @property
    def peak_bytes(self) -> int:
        return self.persistent_bytes + self.phases[self.phase]


def dequant_buffer_bytes(spec: ModelSpec, fused_experts: bool) -> int:
    """bitsandbytes' bf16 copy of the largest NF4 matrix, d_in · d_out · 2, alive during its matmul.
    Llama 3.1 8B's gate/up/down (4,096 × 14,336): 117,440,512 bytes."""
    sizes = [
        matrix_bytes(m.d_in, m.d_out, WeightFormat.bf16)
        for g in layout_of(spec).groups
        for m in g.linears(fused_experts)
        if m.weight_params and linear_format(m, WeightFormat.nf4) is WeightFormat.nf4
    ]
    return max(sizes, default=0)


def dropout_mask_bytes(spec: ModelSpec, ranks: dict[str, int], tokens: int, checkpointed: bool, width: int = 1) -> int:
    """peft's ``lora_dropout`` on each adapted map's input: torch keeps, for backward, one mask element per input
    element (CUDA's ``native_dropout``: a bool, ``width`` 1; the CPU kernel keeps fp32 noise, 4), only where the input
    needs a gradient, so not for the first layer's maps reading the embedding's normed output; under checkpointing
    only the recomputed layer holds them. Llama 3.1 8B all-linear, N = 4,096, checkpointed: 4,096 · (6 · 4,096 +
    14,336) = 159,383,552 bytes."""
    groups = layout_of(spec).groups
    per_layer = [sum(m.d_in for m in g.linears(False) if m.name in ranks) for g in groups]
    if checkpointed:
        return width * tokens * max(per_layer, default=0)
    first = sum(m.d_in for m in groups[0].linears(False) if m.name in ranks and m.roles <= {"q", "k", "v"})
    return width * tokens * (sum(g.layers * p for g, p in zip(groups, per_layer, strict=True)) - first)


def fused_expert_targets(spec: ModelSpec, ranks: dict[str, int]) -> bool:
    """Whether an adapted map is a bare 3-D expert tensor (peft's ParamWrapper, ``target_parameters``)."""
    return any(m.expert and not m.module and m.name in ranks for g in layout_of(spec).groups for m in g.linears(True))


def head_dim(spec: ModelSpec) -> int:
    """The width RoPE's cos and sin are built for: the first rotary layer's (:attr:`Mixer.rope_head_dim`; 0: none)."""
    return next((g.mixer.rope_head_dim for g in layout_of(spec).groups if g.mixer.rope_head_dim), 0)


def mlp_width(spec: ModelSpec) -> int:
    """The widest dense MLP's (or an expert's times its top-k) F, whose gradients the layer backward holds."""
    width = 0
    for g in layout_of(spec).groups:
        for m in g.linears(False):
            if m.roles & {"gate", "up"} and "down" not in m.roles:
                f = m.d_out // len(m.roles & {"gate", "up"})
                width = max(width, f * (g.moe.top_k if m.expert and g.moe else 1))
    return width


def train_peak(spec: ModelSpec, setup: TrainSetup) -> TrainPeak:
    """The peak of one step (the module docstring): persistent + the highest phase.

    Llama 3.1 8B, LoRA r = 32 all-linear, bf16 base, T = 4,096, checkpointing, fp32 loss: persistent
    17,067,157,248 (weights 16,060,522,496 + adapters 335,544,320 + AdamW 671,090,432) and the loss phase
    1,142,997,004 saved + 6,304,038,912 loss = 24,514,193,164 bytes; measured under FakeTensorMode: 24,514,193,672
    (the 512 bytes of RoPE's buffers apart)."""
    memory = train_memory(spec, setup)
    n, d, vocab = setup.micro_batch * setup.tokens, spec.hidden_size, spec.vocab_size
    ranks = (setup.ranks or {}) if setup.adapted else None
    acts = activation_bytes(spec, setup.tokens, setup.micro_batch, ranks, setup.checkpointing, setup.autocast)
    kbit = setup.quantised_base and setup.kbit_prepare
    saved = acts.saved_bytes - FP32_BYTES * n * vocab  # the loss's own saved tensors are the loss phase's
    layers = sum(g.layers for g in layout_of(spec).groups)
    extra_saved = 0
    if kbit:
        if setup.checkpointing is Checkpointing.layers:  # the fp32 embeddings and residual: each layer input 4d
            extra_saved += layers * BF16 * n * d
        extra_saved += 2 * BF16 * setup.tokens * head_dim(spec)  # RoPE's cos and sin stay fp32 (fp32 hidden states)
        if setup.autocast:  # autocast's bf16 copy of the fp32 head, saved for the head's input gradient
            extra_saved += BF16 * vocab * d
    checkpointed = setup.checkpointing is Checkpointing.layers
    if setup.lora_dropout and ranks and fused_expert_targets(spec, ranks):
        raise EstimatorError(
            "peft's LoRA on fused expert tensors (ParamWrapper) refuses lora_dropout != 0; drop --lora-dropout, "
            "or leave the experts out (--experts none)"
        )
    dropout = dropout_mask_bytes(spec, ranks, n, checkpointed) if setup.lora_dropout and ranks else 0
    loss = loss_backward_bytes(vocab, setup.tokens, setup.micro_batch, d, setup.loss, setup.loss_chunk)
    residual = (FP32_BYTES if kbit else BF16) * n * d
    transients = RESIDUAL_GRADIENTS * residual + MLP_GRADIENTS * BF16 * n * mlp_width(spec)
    dequant = dequant_buffer_bytes(spec, setup.fused_experts) if setup.quantised_base else 0
    grads = memory.gradient_bytes
    persistent = memory.frozen_weights_bytes + memory.trainable_weights_bytes + memory.master_weights_bytes
    persistent += memory.optimizer_bytes
    logits_width = FP32_BYTES if kbit and not setup.autocast else BF16  # an fp32 head returns fp32 logits
    forward = loss_forward_bytes(vocab, setup.tokens, setup.micro_batch, d, setup.loss, setup.loss_chunk, logits_width)
    cast_cache = BF16 * sum(setup.trainable_sizes) if setup.autocast and setup.adapted else 0
    parts = {
        "forward": {
            "saved for backward": saved + extra_saved + dropout * (not checkpointed),
            "autocast's bf16 copies of the adapters": cast_cache,
            "final norm's output": BF16 * n * d,
            f"loss forward ({setup.loss.value})": forward,
        },
        "loss": {
            "saved for backward": saved + extra_saved + dropout * (not checkpointed),
            f"loss ({setup.loss.value})": loss,
        },
        "layers": {
            "saved for backward": saved + extra_saved + dropout,
            "recomputed layer": acts.recompute_bytes,
            "gradients in flight": transients,
            "dequantisation buffer": dequant,
            "gradients": grads if setup.adapted else 0,
        },
        "optimizer": {"gradients": grads},
    }
    if not setup.adapted:  # at the bottom of backward: every gradient, little saved
        top = saved + extra_saved
        bottom = grads + BF16 * n * d
        parts["layers"]["saved for backward"] = max(top, bottom) - (grads if bottom > top else 0)
        parts["layers"]["gradients"] = grads if bottom > top else 0
    phases = {name: sum(p.values()) for name, p in parts.items()}
    return TrainPeak(memory, persistent, phases, parts)


def fits(spec: ModelSpec, setup: TrainSetup, budget: int) -> bool:
    return train_peak(spec, setup).peak_bytes <= budget


def longest_tokens(spec: ModelSpec, setup: TrainSetup, budget: int, limit: int) -> int:
    """The largest T ≤ ``limit`` whose step fits ``budget`` at the setup's micro-batch (0 if not even one token):
    every phase grows with T, so a bisection finds it exactly."""
    return largest_fitting(lambda t: fits(spec, replace(setup, tokens=t), budget), limit)


def largest_micro_batch(spec: ModelSpec, setup: TrainSetup, budget: int, limit: int = 4096) -> int:
    """The largest micro-batch B ≤ ``limit`` of the setup's T tokens that fits ``budget`` (0 if not one)."""
    return largest_fitting(lambda b: fits(spec, replace(setup, micro_batch=b), budget), limit)


OFFLOAD_WORDS = {
    Offload.none: "",
    Offload.optimizer: "optimizer states and fp32 master weights on the CPU (DeepSpeed ZeRO-Offload), not on the GPU",
    Offload.params: "parameters, gradients and optimizer states on the CPU (FSDP's CPUOffload); the GPU holds two "
    "layers' weights at a time (in use and prefetched)",
}
