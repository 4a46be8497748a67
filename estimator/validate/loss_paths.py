"""The loss paths a measured step runs (:mod:`estimator.validate.peak`): transformers' own, transformers 4.46's
shifted fp32 copy, a bf16 cross-entropy outside autocast and a chunked, checkpointed cross-entropy."""

from __future__ import annotations

from typing import Any

import torch


def shifted_fp32_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """transformers 4.46-4.47's ForCausalLMLoss, reproduced: ``logits.float()``, then the shifted copy
    ``logits[..., :-1, :].contiguous()`` (another fp32 tensor of the whole sequence) and cross_entropy.
    (4.43-4.45 did the same inside LlamaForCausalLM.forward.)"""
    logits = logits.float()
    shift_logits = logits[..., :-1, :].contiguous()
    shift_labels = labels[..., 1:].contiguous()
    vocab = shift_logits.shape[-1]
    return torch.nn.functional.cross_entropy(shift_logits.view(-1, vocab), shift_labels.view(-1))


def chunked_loss(hidden: torch.Tensor, head: torch.Tensor, labels: torch.Tensor, chunk: int) -> torch.Tensor:
    """A chunked cross-entropy: the head and an fp32 cross-entropy over ``chunk`` tokens at a time, each chunk
    checkpointed, so at most one chunk's logits exist (in forward, and again in its backward)."""
    from torch.utils.checkpoint import checkpoint

    targets = torch.nn.functional.pad(labels, (0, 1), value=-100)[..., 1:]
    flat, flat_targets = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)
    count = flat_targets.numel()  # the last position has no target; cross_entropy ignores it either way

    def piece(h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = torch.nn.functional.linear(h, head).float()
        return torch.nn.functional.cross_entropy(logits, t, ignore_index=-100, reduction="sum")

    total = torch.zeros((), dtype=torch.float32)
    for i in range(0, count, chunk):
        total = total + checkpoint(piece, flat[i : i + chunk], flat_targets[i : i + chunk], use_reentrant=False)
    return total / (count - labels.shape[0])


def forward_loss(model: Any, ids: torch.Tensor, loss: str, chunk: int, mark: Any) -> torch.Tensor:
    """The loss of one forward pass on each loss path; the model's outputs are dropped, as HF Trainer's
    compute_loss drops them, so only what autograd saved stays alive. ``mark`` is called when backward has passed
    the head (the gradient of the head's input is computed): the loss's part of backward ends there."""
    head = model.get_output_embeddings()

    def watch(_module: Any, args: tuple[torch.Tensor, ...]) -> None:
        args[0].register_hook(mark)  # type: ignore[no-untyped-call]

    if loss != "chunked":
        head.register_forward_pre_hook(watch)
    if loss == "fp32":
        return model(input_ids=ids, labels=ids, use_cache=False).loss  # type: ignore[no-any-return]
    if loss == "chunked":
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        hidden = inner.model(input_ids=ids, use_cache=False).last_hidden_state
        hidden.register_hook(mark)
        return chunked_loss(hidden, head.weight, ids, chunk)
    logits = model(input_ids=ids, use_cache=False).logits
    if loss == "fp32-shifted":
        return shifted_fp32_loss(logits, ids)
    targets = torch.nn.functional.pad(ids, (0, 1), value=-100)[..., 1:]
    with torch.autocast("cpu", enabled=False):  # autocast would upcast cross_entropy to fp32
        return torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))
