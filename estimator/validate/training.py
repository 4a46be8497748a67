"""Measure on the CPU what fine-tuning memory the formulas of :mod:`estimator.memory` predict, on a twin.

- Activations: every tensor autograd saves for backward during a real forward pass with labels, counted
  with ``torch.autograd.graph.saved_tensors_hooks``, each storage once, parameters and buffers left out.
- Gradients and optimizer states: the bytes of ``p.grad`` and of ``optimizer.state`` after one real step
  (torch's AdamW; bitsandbytes' AdamW8bit).
- Quantised weights: every tensor a 4-bit (NF4, double quantisation) and an 8-bit model hold after
  transformers loads the twin with bitsandbytes, as QLoRA does.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import peft
import torch

from estimator.errors import EstimatorError
from estimator.layout import ExpertLayout
from estimator.memory.activations import Checkpointing, activation_bytes, lora_ranks
from estimator.memory.formats import WeightFormat
from estimator.memory.training import (
    Optimizer,
    adapter_tensor_sizes,
    full_tensor_sizes,
    optimizer_state_bytes,
)
from estimator.memory.weights import weight_bytes_per_gpu
from estimator.stores.kinds import peft_target_modules
from estimator.stores.targets import resolve_targets
from estimator.validate.measure import _quiet, build_model
from estimator.validate.report import Check, Validation, compare, explained

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

TWIN_TOKENS = 48
TWIN_RANK = 8


@dataclass(frozen=True)
class Run:
    """One measured forward pass: full fine-tuning or LoRA, batch, checkpointing, autocast."""

    lora: bool
    batch: int
    checkpointing: Checkpointing = Checkpointing.none
    autocast: bool = False

    @property
    def label(self) -> str:
        words = [f"LoRA r={TWIN_RANK}" if self.lora else "full", f"batch {self.batch}"]
        if self.checkpointing is Checkpointing.layers:
            words.append("checkpointing")
        if self.autocast:
            words.append("autocast bf16")
        return ", ".join(words)


def trainable_model(twin: ModelSpec, lora: bool, checkpointing: Checkpointing) -> Any:
    """The twin in bf16 on the CPU with SDPA, in training mode; with peft's LoRA (all-linear, its defaults)."""
    torch.manual_seed(0)
    model = build_model(twin, device="cpu", dtype=torch.bfloat16, attention="sdpa")
    if checkpointing is Checkpointing.layers:
        with _quiet():
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora:
        modules = peft_target_modules(twin_targets(twin), twin)
        with _quiet():
            model = peft.get_peft_model(model, peft.LoraConfig(r=TWIN_RANK, target_modules=modules))
    else:
        model.requires_grad_(True)
    return model.train()


def saved_for_backward(model: Any, batch: int, tokens: int, autocast: bool) -> tuple[int, Any]:
    """Bytes of the distinct storages autograd saves in one forward pass with labels (parameters and
    buffers excluded), and the loss."""
    owned = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    sizes: dict[int, int] = {}
    kept: list[torch.Tensor] = []  # alive until counted, so no address is reused

    def pack(tensor: torch.Tensor) -> int:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in owned:
            sizes[storage.data_ptr()] = storage.nbytes()
        kept.append(tensor)
        return len(kept) - 1

    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, model.config.vocab_size, (batch, tokens), generator=generator)
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else nullcontext()
    with _quiet(), torch.autograd.graph.saved_tensors_hooks(pack, kept.__getitem__), context:
        loss = model(input_ids=ids, labels=ids).loss
    return sum(sizes.values()), loss


def twin_targets(twin: ModelSpec) -> Any:
    """What peft's all-linear adapts on the twin as transformers >= 5 builds it (experts fused)."""
    return resolve_targets(twin, "all-linear", ExpertLayout.fused)


def activation_checks(twin: ModelSpec) -> tuple[list[Check], list[str]]:
    """Saved-for-backward bytes of the twin against :func:`activation_bytes`, for each run the formulas
    claim to the byte; the runs they give only as estimates are named in the notes, not compared."""
    ranks = lora_ranks(twin_targets(twin), TWIN_RANK)
    runs = (
        Run(False, 1),
        Run(False, 2),
        Run(True, 1),
        Run(True, 2, autocast=True),
        Run(False, 1, Checkpointing.layers),
        Run(True, 1, Checkpointing.layers),
    )
    checks: list[Check] = []
    notes: list[str] = []
    for run in runs:
        predicted = activation_bytes(twin, TWIN_TOKENS, run.batch, ranks if run.lora else None, run.checkpointing,
                                     run.autocast)  # fmt: skip
        if not predicted.exact:
            notes.append(f"Activations, {run.label}: an estimate for these layer kinds, not compared.")
            continue
        model = trainable_model(twin, run.lora, run.checkpointing)
        measured, _ = saved_for_backward(model, run.batch, TWIN_TOKENS, run.autocast)
        quantity = f"saved for backward, {run.label} (bytes)"
        if run.checkpointing is Checkpointing.none:
            checks.append(compare(quantity, predicted.saved_bytes, measured))
        else:
            rope = 4 * TWIN_TOKENS * twin.attention_head_dim
            checks.append(explained(quantity, predicted.saved_bytes, measured, predicted.saved_bytes - rope,
                                    f"RoPE's cos and sin ({rope:,} bytes) live in the checkpoint's closure, unseen by "
                                    "the hooks; counted in the estimate"))  # fmt: skip
    return checks, notes


def step_checks(twin: ModelSpec) -> list[Check]:
    """Gradients and optimizer states after one real step, against the formulas."""
    checks = []
    targets = twin_targets(twin)
    for lora, optimizer in ((True, Optimizer.adamw), (False, Optimizer.adamw), (True, Optimizer.adamw_8bit)):
        model = trainable_model(twin, lora, Checkpointing.none)
        params = [p for p in model.parameters() if p.requires_grad]
        _, loss = saved_for_backward(model, 1, TWIN_TOKENS, autocast=False)
        loss.backward()
        if optimizer is Optimizer.adamw_8bit:
            import bitsandbytes

            step: Any = bitsandbytes.optim.AdamW8bit(params)  # type: ignore[attr-defined,no-untyped-call]
        else:
            step = torch.optim.AdamW(params)
        step.step()
        sizes = adapter_tensor_sizes(targets, TWIN_RANK) if lora else full_tensor_sizes(twin, fused_experts=True)
        width = params[0].element_size()  # fp32 adapters; the bf16 model's own weights when full
        what = f"LoRA r={TWIN_RANK}" if lora else "full, bf16"
        grads = sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None)
        states = sum(v.numel() * v.element_size() for s in step.state.values() for v in s.values()
                     if isinstance(v, torch.Tensor))  # fmt: skip
        if optimizer is Optimizer.adamw:
            checks.append(compare(f"gradients, {what} (bytes)", sum(sizes) * width, grads))
        checks.append(compare(f"{optimizer.value} states, {what} (bytes)",
                              optimizer_state_bytes(sizes, optimizer, width), states))  # fmt: skip
    return checks


def quantised_checks(twin: ModelSpec) -> list[Check]:
    """Every tensor of the twin loaded by transformers in 4 bits (QLoRA's NF4 with double quantisation) and in
    8 bits, against :func:`weight_bytes_per_gpu`."""
    import transformers
    from huggingface_hub.utils import disable_progress_bars  # type: ignore[attr-defined]

    disable_progress_bars()  # saving and loading a twin takes milliseconds; no bars
    checks = []
    model = build_model(twin, device="cpu", dtype=torch.bfloat16)
    with tempfile.TemporaryDirectory() as folder, _quiet():
        model.save_pretrained(folder)
        for fmt, config in (
            (WeightFormat.nf4, {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}),
            (WeightFormat.int8, {"load_in_8bit": True}),
        ):
            quantisation = transformers.BitsAndBytesConfig(  # type: ignore[no-untyped-call]
                **config, bnb_4bit_compute_dtype=torch.bfloat16
            )
            loaded = transformers.AutoModelForCausalLM.from_pretrained(
                folder, quantization_config=quantisation, device_map="cpu", dtype=torch.bfloat16
            )
            checks.append(compare(f"weights in {fmt.value}, as bitsandbytes holds them (bytes)",
                                  weight_bytes_per_gpu(twin, fmt, fused_experts=True), held_bytes(loaded)))  # fmt: skip
    return checks


def held_bytes(model: Any) -> int:
    """Bytes of every distinct storage a quantised model's parameters hold, with each weight's quantisation
    state (absmax, codes, nested state, int8 scales); buffers (RoPE's inverse frequencies) are not weights."""
    storages: dict[int, int] = {}

    def add(tensor: Any) -> None:
        if isinstance(tensor, torch.Tensor) and tensor.numel():
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()

    for tensor in model.parameters():
        add(tensor)
        state = getattr(tensor, "quant_state", None)
        while state is not None:
            for name in ("absmax", "code", "offset"):
                add(getattr(state, name, None))
            state = getattr(state, "state2", None)
        add(getattr(tensor, "SCB", None))
    return sum(storages.values())


METHOD = (
    "Twin: the model shrunk as for `estimate validate` (one layer of each kind, small widths, heads and head_dim "
    f"kept), in bf16 on the CPU with SDPA attention; sequences of {TWIN_TOKENS} tokens; LoRA r={TWIN_RANK} all-linear "
    "with peft's defaults (fp32 adapters, no dropout); mixtures of experts fused, as transformers >= 5 builds them.",
    "Activations: torch.autograd.graph.saved_tensors_hooks around model(input_ids, labels=input_ids), each saved "
    "storage once, parameters and buffers left out; checkpointing is transformers' non-reentrant default.",
    "Gradients and optimizer states: p.grad and optimizer.state after one real backward and step (torch.optim.AdamW; "
    "bitsandbytes.optim.AdamW8bit on the CPU).",
    "Quantised weights: the twin saved and loaded by transformers with BitsAndBytesConfig (NF4 with double "
    "quantisation; int8), every parameter storage and quantisation state counted.",
    "Peak of a step: the model at full width and vocabulary with one layer of each kind, peft's LoRA r=8, built on "
    "the meta device and run under FakeTensorMode (no memory) for 1,024 tokens: forward with labels, backward and a "
    "fused AdamW step after one that created its states; a dispatcher-level tracker counts every storage an op "
    "returns, to the byte, until Python frees it (estimator.validate.peak); RoPE's buffers left out. QLoRA: "
    "bitsandbytes' kernels do not run under fake tensors, so the same tracker counts a real NF4 twin on the CPU, "
    "with and without peft's prepare_model_for_kbit_training.",
)


def step_peak_checks(spec: ModelSpec, twin: ModelSpec) -> tuple[list[Check], list[str]]:
    """The peak of a step (:mod:`estimator.validate.peak`, :mod:`estimator.validate.qlora_peak`): compared for the
    families whose saved bytes are measured to the byte; for the others each comparison becomes a note."""
    from estimator.memory.activations import measured
    from estimator.validate.peak import peak_checks
    from estimator.validate.qlora_peak import qlora_twin_checks

    try:
        peaks, notes = peak_checks(spec)
        peaks += qlora_twin_checks(twin)
    except EstimatorError as exc:  # a layer kind whose activations are not modelled
        return [], [f"Peak of a step: {exc}."]
    except Exception as exc:  # transformers or peft cannot build or run this model's step
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return [], [f"Peak of a step: not measured ({type(exc).__name__}: {first})."]
    if measured(spec):
        return peaks, notes
    kept = [f"Peak, not compared ({spec.model_type}'s saved bytes are an estimate): {c.quantity}: estimate "
            f"{c.estimate:,}, measured {c.measured:,}." for c in peaks]  # fmt: skip
    return [], [*notes, *kept]


def memory_validation(spec: ModelSpec) -> Validation:
    """Every check of fine-tuning memory on ``spec``'s twin, as a :class:`Validation` for the report."""
    from estimator.validate import MEASURING_PACKAGES, version_report
    from estimator.validate.hf import twin_spec

    start = time.perf_counter()
    twin, _ = twin_spec(spec, TWIN_TOKENS)
    try:
        checks, notes = activation_checks(twin)
    except EstimatorError as exc:  # a layer kind whose activations are not modelled
        checks, notes = [], [f"Activations: {exc}."]
    checks += [*step_checks(twin), *quantised_checks(twin)]
    peaks, peak_notes = step_peak_checks(spec, twin)
    checks += peaks
    notes += peak_notes
    versions = version_report((*MEASURING_PACKAGES, "bitsandbytes"))
    return Validation(spec, tuple(checks), (*METHOD, *notes), time.perf_counter() - start, versions)
