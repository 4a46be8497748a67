"""The peak of live tensors in one full-size fine-tuning step, measured on the CPU with no memory.

The real model (transformers, from the spec's config), with peft's LoRA, is built on the meta device and
its parameters swapped for fake CPU tensors (``FakeTensorMode``: true shapes and dtypes, no storage). A
dispatcher-level tracker (a ``TorchDispatchMode`` beneath nothing but the fake mode) sees every tensor each
aten op returns, counts its storage once (``untyped_storage().nbytes()``, no allocator rounding) and drops
it when Python frees the storage. It runs forward with labels, backward and one optimizer step, and records
the peak of live bytes in each phase and what was alive at the highest one.

One adjustment, stated in the result: transformers cannot tell, from fake position ids, that an unpadded
sequence is not packed (``find_packed_sequence_indices`` reads values), so under fake tensors it would build
a T × T boolean causal mask that it skips on a real device; the measurement lets it skip, as on a device.
torch's own ``torch.distributed._tools.mem_tracker.MemTracker`` does the same work but rounds every storage
up to the CUDA allocator's 512 bytes; this tracker counts bytes exactly, so formulas can be compared to the byte.
"""

from __future__ import annotations

import functools
import weakref
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from unittest import mock

import peft
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from estimator.errors import EstimatorError
from estimator.validate.loss_paths import forward_loss
from estimator.validate.measure import _quiet, build_model

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

PHASES = ("weights", "forward", "backward", "layers", "optimizer")  # backward: the loss and head; layers: the rest


class LiveBytes(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Live bytes of every storage an op returns, by label (phase: op: dtype); the peak, and the labels then."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.phase = "weights"
        self.live: dict[int, tuple[int, str]] = {}
        self.by_label: dict[str, int] = {}
        self.refs: dict[int, Any] = {}
        self.total = 0
        self.peak = 0
        self.at_peak: dict[str, int] = {}
        self.peak_phase = "weights"
        self.phase_peaks: dict[str, int] = {}
        self.phase_alive: dict[str, dict[str, int]] = {}  # label -> bytes at each phase's peak

    def add(self, storage: Any, label: str) -> None:
        key = id(storage)
        if key in self.live:
            return
        size = int(storage.nbytes())
        self.live[key] = (size, label)
        self.by_label[label] = self.by_label.get(label, 0) + size
        self.total += size
        self.refs[key] = weakref.ref(storage, functools.partial(self.dropped, key))
        if self.total > self.phase_peaks.get(self.phase, 0):
            self.phase_peaks[self.phase] = self.total
            self.phase_alive[self.phase] = {k: v for k, v in self.by_label.items() if v}
        if self.total > self.peak:
            self.peak, self.peak_phase = self.total, self.phase
            self.at_peak = {k: v for k, v in self.by_label.items() if v}

    def enter(self, phase: str) -> None:
        """Start a phase; its peak is at least what is alive as it starts."""
        self.phase = phase
        if self.total > self.phase_peaks.get(phase, -1):
            self.phase_peaks[phase] = self.total
            self.phase_alive[phase] = {k: v for k, v in self.by_label.items() if v}

    def dropped(self, key: int, _ref: object) -> None:
        size, label = self.live.pop(key)
        self.by_label[label] -= size
        self.total -= size
        self.refs.pop(key, None)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                self.add(
                    tensor.untyped_storage(), f"{self.phase}: {func.__name__.split('.')[0]} ({dtype_name(tensor)})"
                )
        return out


def dtype_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


@dataclass(frozen=True)
class MeasuredPeak:
    """One measured step: the peak of live bytes, its phase, each phase's own peak, what was alive at the peak."""

    peak_bytes: int
    peak_phase: str
    phase_peak_bytes: dict[str, int]
    alive_at_peak: dict[str, int]  # label -> bytes
    weights_bytes: int  # every parameter, buffer and optimizer state before the step
    buffers_bytes: int  # of which buffers (RoPE's inverse frequencies), which no estimate counts
    phase_alive: dict[str, dict[str, int]]  # phase -> label -> bytes alive at that phase's peak

    def alive(self, phase: str, op: str = "") -> int:
        """Bytes alive at the peak that ``phase`` created (with ``op`` in their label, if given)."""
        return sum(v for k, v in self.alive_at_peak.items() if k.startswith(phase) and op in k)


def fake_lora_model(spec: ModelSpec, rank: int | None, checkpointing: bool, dropout: float = 0.0) -> Any:
    """The full-size model in bf16 with SDPA, peft's all-linear LoRA of ``rank`` (None: full fine-tuning), built
    on the meta device; its parameters and buffers become fake CPU tensors in the caller's FakeTensorMode."""
    with _quiet():
        model = build_model(spec, device="meta", dtype=torch.bfloat16, attention="sdpa")
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if rank is not None:
            config = peft.LoraConfig(r=rank, target_modules="all-linear", lora_dropout=dropout)
            with torch.device("meta"):
                model = peft.get_peft_model(model, config)
        else:
            model.requires_grad_(True)
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None:
                fake = torch.empty(p.shape, dtype=p.dtype, device="cpu")
                module._parameters[name] = torch.nn.Parameter(fake, requires_grad=p.requires_grad)
        for name, b in list(module._buffers.items()):
            if b is not None:
                module._buffers[name] = torch.empty(b.shape, dtype=b.dtype, device="cpu")
    return model.train()


def measure_peak(
    spec: ModelSpec,
    tokens: int,
    *,
    rank: int | None = 32,
    batch: int = 1,
    checkpointing: bool = True,
    loss: str = "fp32",
    chunk: int = 1024,
    dropout: float = 0.0,
    autocast: bool = True,
    optimizer: str = "adamw",
) -> MeasuredPeak:
    """One forward with labels, backward and AdamW step of the full-size model under FakeTensorMode.

    ``loss``: ``fp32`` (transformers' own, model(labels=...)), ``fp32-shifted`` (transformers 4.46's, above),
    ``bf16`` (cross_entropy on the bf16 logits) or ``chunked`` (above, ``chunk`` tokens at a time)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    if loss not in ("fp32", "fp32-shifted", "bf16", "chunked"):
        raise EstimatorError(f"unknown loss {loss!r}; use fp32, fp32-shifted, bf16 or chunked")
    tracker = LiveBytes()
    with ExitStack() as stack:
        stack.enter_context(_quiet())
        stack.enter_context(mock.patch("transformers.masking_utils.find_packed_sequence_indices", return_value=None))
        stack.enter_context(FakeTensorMode(allow_non_fake_inputs=True))
        model = fake_lora_model(spec, rank, checkpointing, dropout)
        params = [p for p in model.parameters() if p.requires_grad]
        for tensor in model.parameters():
            kind = "trainable" if tensor.requires_grad else "frozen"
            tracker.add(tensor.untyped_storage(), f"weights: {kind} ({dtype_name(tensor)})")
        for tensor in model.buffers():
            tracker.add(tensor.untyped_storage(), f"weights: buffers ({dtype_name(tensor)})")
        buffers = sum(b.untyped_storage().nbytes() for b in model.buffers())
        step: Any = torch.optim.AdamW(params, fused=True) if optimizer == "adamw" else torch.optim.SGD(params)
        for p in params:  # a first step with zero gradients creates the states, as any step after the first finds them
            p.grad = torch.zeros_like(p)
        step.step()
        step.zero_grad(set_to_none=True)
        for state in step.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    tracker.add(value.untyped_storage(), f"weights: optimizer state ({dtype_name(value)})")
        weights = tracker.total
        ids = torch.zeros((batch, tokens), dtype=torch.long)
        context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else nullcontext()
        with tracker:
            tracker.enter("forward")
            with context:
                value = forward_loss(model, ids, loss, chunk, lambda _grad: tracker.enter("layers"))
            tracker.enter("backward")
            value.backward()  # type: ignore[no-untyped-call]
            del value
            tracker.enter("optimizer")
            step.step()
    return MeasuredPeak(tracker.peak, tracker.peak_phase, dict(tracker.phase_peaks), tracker.at_peak, weights, buffers,
                       tracker.phase_alive)  # fmt: skip


PEAK_TOKENS = 1024
PEAK_RANK = 8
PEAK_CHUNK = 256  # four chunks of the chunked loss


def peak_twin(spec: ModelSpec) -> ModelSpec:
    """The model at full width (hidden, heads, MLP, experts, vocabulary) with one layer of each kind: the loss phase
    does not depend on depth, and a layer's transients are a layer's."""
    from dataclasses import replace

    from estimator.validate.hf import twin_layers

    layers = twin_layers(spec)
    update: dict[str, Any] = {"num_hidden_layers": len(layers)}
    if spec.layer_types is not None:
        update["layer_types"] = tuple(spec.layer_types[i] for i in layers)
    if spec.mlp_layer_types is not None:
        update["mlp_layer_types"] = tuple(spec.mlp_layer_types[i] for i in layers)
    return replace(spec, **update)


def peak_checks(spec: ModelSpec) -> tuple[list[Any], list[str]]:
    """The measured peak of a step (full widths, one layer of each kind, under FakeTensorMode) against
    :func:`~estimator.memory.peak.train_peak`: the loss phase compared to the byte; the layers' backward and the
    optimizer step, estimates, with their differences stated in the notes."""
    from estimator.layout import ExpertLayout
    from estimator.memory.activations import Checkpointing, lora_ranks
    from estimator.memory.loss import Loss
    from estimator.memory.peak import fused_expert_targets, train_peak
    from estimator.memory.training import TrainSetup, adapter_tensor_sizes
    from estimator.query.vocabulary import Method
    from estimator.stores.targets import resolve_targets
    from estimator.validate.report import explained

    model = peak_twin(spec)
    targets = resolve_targets(model, "all-linear", ExpertLayout.fused)  # as transformers >= 5 builds it
    checks, notes = [], []
    for loss, checkpointing in ((Loss.fp32, True), (Loss.fp32, False), (Loss.chunked, True)):
        kept = Checkpointing.layers if checkpointing else Checkpointing.none
        setup = TrainSetup(
            Method.lora, adapter_tensor_sizes(targets, PEAK_RANK), PEAK_TOKENS, lora_ranks(targets, PEAK_RANK),
            checkpointing=kept, loss=loss, loss_chunk=PEAK_CHUNK,
        )  # fmt: skip
        estimate = train_peak(model, setup)
        measured = measure_peak(model, PEAK_TOKENS, rank=PEAK_RANK, checkpointing=checkpointing, loss=loss.value,
                                chunk=PEAK_CHUNK)  # fmt: skip
        label = (
            f"LoRA r={PEAK_RANK}, {PEAK_TOKENS:,} tokens, {'checkpointing' if checkpointing else 'no checkpointing'}"
        )
        notes.append(f"Alive at the start of backward, {loss.value} loss, {label}: {alive_words(measured)}.")
        loss_phase = measured.phase_peak_bytes["backward"] - measured.buffers_bytes
        predicted = estimate.persistent_bytes + estimate.phases["loss"]
        stated = -4 if loss is Loss.fp32 else 8 * (PEAK_TOKENS + 1)
        if not estimate.memory.activations_exact and not checkpointing:  # saved bytes an estimate for these layers
            notes.append(f"Peak at the start of backward, {loss.value} loss, {label}: estimate {predicted:,} bytes, "
                         f"measured {loss_phase:,} ({(loss_phase - predicted) / predicted:+.2%}); what these layers "
                         "save is an estimate, not compared to the byte.")  # fmt: skip
            continue
        checks.append(explained(f"peak at the start of backward, {loss.value} loss, {label} (bytes)", predicted,
                                loss_phase, predicted + stated, LOSS_PHASE_NOTE[loss.value]))  # fmt: skip
        for phase, name in (("forward", "the loss's forward"), ("layers", "the layers' backward"),
                            ("optimizer", "the optimizer step")):  # fmt: skip
            got = measured.phase_peak_bytes.get(phase, 0) - measured.buffers_bytes
            guess = estimate.persistent_bytes + estimate.phases[phase]
            notes.append(f"Peak of {name}, {loss.value} loss, {label}: estimate {guess:,} bytes, measured {got:,} "
                         f"({(got - guess) / guess:+.2%}); an estimate, not compared to the byte.")  # fmt: skip
    if fused_expert_targets(model, lora_ranks(targets, PEAK_RANK)):
        notes.append("lora_dropout: peft's ParamWrapper (LoRA on fused expert tensors) refuses it; not measured.")
    else:
        checks.append(dropout_check(model, targets))
    return checks, notes


def alive_words(measured: MeasuredPeak, phase: str = "backward", most: int = 6) -> str:
    """The largest groups of storages alive at a phase's peak, by the op and dtype that made them."""
    alive = sorted(measured.phase_alive.get(phase, {}).items(), key=lambda kv: -kv[1])
    return "; ".join(f"{label} {size:,} bytes" for label, size in alive[:most])


def dropout_check(model: ModelSpec, targets: Any) -> Any:
    """peft's lora_dropout 0.05, no checkpointing: what it adds at the start of backward, measured on the CPU, whose
    dropout keeps fp32 noise where CUDA's native_dropout keeps a bool mask: 4 × the estimate's masks."""
    from estimator.memory.activations import lora_ranks
    from estimator.memory.peak import dropout_mask_bytes
    from estimator.validate.report import explained

    runs = [measure_peak(model, PEAK_TOKENS, rank=PEAK_RANK, checkpointing=False, dropout=p) for p in (0.0, 0.05)]
    added = runs[1].phase_peak_bytes["backward"] - runs[0].phase_peak_bytes["backward"]
    masks = dropout_mask_bytes(model, lora_ranks(targets, PEAK_RANK), PEAK_TOKENS, checkpointed=False)
    why = (
        "measured on the CPU, whose dropout keeps fp32 noise (4 bytes per element) where CUDA's native_dropout keeps "
        "a bool mask (1 byte): 4 × the estimate, to the byte"
    )
    quantity = f"lora_dropout 0.05, no checkpointing, {PEAK_TOKENS:,} tokens: bytes it adds (CUDA's masks)"
    return explained(quantity, masks, added, 4 * masks, why)


LOSS_PHASE_NOTE = {
    "fp32": "4 bytes of scalars and int64 targets apart: the estimate counts the padded labels' storage, 8 · (T + 1), "
    "and one fp32 scalar; at the peak the tracker sees 8 · T bytes of int64 and two scalars (the loss, its gradient)",
    "chunked": "the measured chunked loss keeps its own padded labels too, 8 · (T + 1) bytes; the rest to the byte",
}
