"""What the cross-entropy loss holds at the start of backward, on each loss path (N = B · T positions, V vocab).

At the end of the forward pass autograd keeps the loss's saved tensors; the first backward ops then allocate
their gradients while those are still alive. Measured under FakeTensorMode on the full-size step
(:mod:`estimator.validate.peak`), Llama 3.1 8B, T = 4,096, the three fp32 tensors of 4 · N · V are alive at once
at the start of backward: 3 · 2,101,346,304 bytes; that moment is the step's peak at long context.

- ``fp32``, transformers 5.24's ``ForCausalLMLoss``: ``logits.float()``, labels shifted (not the logits), then
  ``cross_entropy``: its saved fp32 log-softmax (4V per position), ``nll_loss_backward``'s gradient (4V) and
  ``_log_softmax_backward_data``'s (4V): 12 · N · V. The forward's own peak, the logits in their dtype, the fp32
  copy and the log-softmax (10V with bf16 logits), is lower. Under ``torch.autocast`` cross_entropy runs in fp32
  whatever its input, so this is also the path of a bf16 loss under HF Trainer's ``bf16=True``.
- ``fp32-shifted``, transformers 4.43-4.47 (``logits.float()`` and ``logits[..., :-1, :].contiguous()`` on the
  whole sequence): the same three tensors over the N − B shifted positions; the float and shifted copies are
  freed before backward starts (measured), so the peak is 12 · (N − B) · V.
- ``bf16``: cross_entropy on the bf16 logits outside autocast: the same three tensors at 2 bytes, 6 · N · V.
- ``chunked``: a chunked cross-entropy computing the head and an fp32 loss C positions at a time, each chunk
  checkpointed: 12 · C · V for one chunk, plus the final norm's bf16 output the chunks keep (2 · N · d) and, when
  there is more than one chunk, the hidden-state gradient they accumulate (2 · N · d). Liger's fused linear
  cross-entropy and Apple's Cut Cross-Entropy hold less (their logits chunk stays bf16 and its gradient is
  written in place); this path is the one measured here, an upper bound for them.
"""

from __future__ import annotations

from enum import StrEnum

from estimator.errors import EstimatorError

FP32, BF16 = 4, 2
LOSS_CHUNK_TOKENS = 1024  # positions per chunk of the chunked loss (Liger's chunk for Llama 3 at N ≈ 32k)
LOSS_TENSORS = 3  # the saved log-softmax and the two gradients backward's first ops allocate


class Loss(StrEnum):
    """How the cross-entropy is computed (the module docstring)."""

    fp32 = "fp32"
    fp32_shifted = "fp32-shifted"
    bf16 = "bf16"
    chunked = "chunked"

    @property
    def described(self) -> str:
        return {
            "fp32": "fp32 cross-entropy over the whole sequence (transformers 5.24's ForCausalLMLoss)",
            "fp32-shifted": "fp32 cross-entropy on the shifted logits (transformers 4.43-4.47)",
            "bf16": "bf16 cross-entropy on the bf16 logits, outside autocast",
            "chunked": "a chunked cross-entropy, {chunk:,} positions at a time, each chunk checkpointed",
        }[self.value]


def loss_saved_bytes(vocab: int, tokens: int, batch: int, hidden: int, loss: Loss) -> int:
    """Bytes the loss itself keeps for backward after the forward pass: the log-softmax of every position it
    scores (4 · N · V in fp32, 2 · N · V in bf16), or for the chunked loss the final norm's bf16 output the
    checkpointed chunks read again (2 · N · d). Llama 3.1 8B (V 128,256), N = 4,096, fp32: 2,101,346,304."""
    positions = batch * tokens
    if loss is Loss.chunked:
        return BF16 * positions * hidden
    if loss is Loss.fp32_shifted:
        positions -= batch
    return (BF16 if loss is Loss.bf16 else FP32) * positions * vocab


def loss_backward_bytes(
    vocab: int, tokens: int, batch: int, hidden: int, loss: Loss, chunk: int = LOSS_CHUNK_TOKENS
) -> int:
    """Bytes the loss holds at the start of backward (the module docstring), its saved tensors included.

    fp32: 3 (log-softmax, two gradients) · 4 bytes · N · V; Llama 3.1 8B, N = 4,096: 3 · 4 · 4,096 · 128,256 =
    6,304,038,912 bytes. chunked, C = 1,024: 3 · 4 · 1,024 · 128,256 + 2 · 2 · 4,096 · 4,096 = 1,643,118,592."""
    if chunk < 1:
        raise EstimatorError(f"--loss-chunk {chunk} must be at least 1 position; give e.g. 1024")
    if loss is Loss.chunked:
        positions = batch * tokens
        accumulated = BF16 * positions * hidden if positions > chunk else 0  # one chunk: its gradient is the whole
        return LOSS_TENSORS * FP32 * min(chunk, positions) * vocab + BF16 * positions * hidden + accumulated
    return LOSS_TENSORS * loss_saved_bytes(vocab, tokens, batch, hidden, loss)


def loss_forward_bytes(
    vocab: int,
    tokens: int,
    batch: int,
    hidden: int,
    loss: Loss,
    chunk: int = LOSS_CHUNK_TOKENS,
    logits_width: int = BF16,
) -> int:
    """Bytes the loss holds at the forward's own peak, when cross_entropy writes its log-softmax: the logits the head
    returns (``logits_width`` bytes: bf16 under autocast, fp32 from an fp32 head without it), their fp32 copy (none
    when already fp32) and the log-softmax; ``fp32-shifted`` adds, for B > 1, the shifted contiguous copy (at B = 1
    the slice is already contiguous: no copy, measured); ``chunked`` holds one chunk's. Llama 3.1 8B, B = 2,
    T = 1,024, fp32-shifted: 2 · 2,048 · V + 4 · 2,048 · V + 2 · 4 · 2,046 · V = 3,675,303,936 bytes, above the
    backward's 12 · 2,046 · V = 3,148,941,312: at B > 1 this phase decides for transformers 4.43-4.47."""
    positions = batch * tokens
    if loss is Loss.chunked:
        held = min(chunk, positions)
        return held * vocab * (logits_width + (FP32 if logits_width != FP32 else 0) + FP32)
    width = BF16 if loss is Loss.bf16 else FP32
    copy = FP32 * positions * vocab if width == FP32 and logits_width != FP32 else 0
    scored = positions - batch if loss is Loss.fp32_shifted else positions
    shifted = FP32 * scored * vocab if loss is Loss.fp32_shifted and batch > 1 else 0
    return logits_width * positions * vocab + copy + shifted + width * scored * vocab
