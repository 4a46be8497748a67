"""QLoRA's peak measured on a real NF4 twin on the CPU: bitsandbytes' 4-bit kernels do not run under fake
tensors, so the tracker of :mod:`estimator.validate.peak` counts real storages of a small twin instead, loaded by
transformers with BitsAndBytesConfig, with and without peft's ``prepare_model_for_kbit_training``."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import peft
import torch

from estimator.validate.loss_paths import forward_loss
from estimator.validate.measure import _quiet, build_model
from estimator.validate.peak import LOSS_PHASE_NOTE, PEAK_RANK, LiveBytes

if TYPE_CHECKING:
    from estimator.specs import ModelSpec


def qlora_twin_checks(twin: ModelSpec, tokens: int = 256) -> list[Any]:
    """QLoRA on a real NF4 twin on the CPU (bitsandbytes' kernels do not run under fake tensors), with and without
    peft's prepare_model_for_kbit_training, checkpointing on: the bytes held between steps and the peak at the
    start of backward, counted by the same tracker, against :func:`~estimator.memory.peak.train_peak`."""
    from estimator.layout import ExpertLayout
    from estimator.memory.activations import Checkpointing, lora_ranks
    from estimator.memory.peak import train_peak
    from estimator.memory.training import TrainSetup, adapter_tensor_sizes
    from estimator.query.vocabulary import Method
    from estimator.stores.targets import resolve_targets
    from estimator.validate.report import compare, explained

    targets = resolve_targets(twin, "all-linear", ExpertLayout.fused)  # as transformers >= 5 builds it
    checks = []
    for kbit in (True, False):
        model = nf4_twin(twin, kbit)
        tracker, held, buffers = LiveBytes(), 0, 0
        params = [p for p in model.parameters() if p.requires_grad]
        step = torch.optim.AdamW(params, fused=True)
        for p in params:
            p.grad = torch.zeros_like(p)
        step.step()
        step.zero_grad(set_to_none=True)
        for tensor in model.parameters():
            tracker.add(tensor.untyped_storage(), "weights")
            state = getattr(tensor, "quant_state", None)
            while state is not None:
                for name in ("absmax", "code", "offset"):
                    value = getattr(state, name, None)
                    if isinstance(value, torch.Tensor):
                        tracker.add(value.untyped_storage(), "weights: quantisation state")
                state = getattr(state, "state2", None)
        for values in step.state.values():
            for value in values.values():
                if isinstance(value, torch.Tensor):
                    tracker.add(value.untyped_storage(), "weights: optimizer state")
        for buffer in model.buffers():
            tracker.add(buffer.untyped_storage(), "weights: buffers")
            buffers += buffer.untyped_storage().nbytes()
        held = tracker.total - buffers
        ids = torch.randint(0, twin.vocab_size, (1, tokens), generator=torch.Generator().manual_seed(0))
        with tracker, _quiet():
            tracker.enter("forward")
            with torch.autocast("cpu", dtype=torch.bfloat16):
                value = forward_loss(model, ids, "fp32", tokens, functools.partial(layers_begin, tracker))
            tracker.enter("backward")
            value.backward()  # type: ignore[no-untyped-call]
        setup = TrainSetup(
            Method.lora, adapter_tensor_sizes(targets, PEAK_RANK), tokens, lora_ranks(targets, PEAK_RANK),
            quantised_base=True, checkpointing=Checkpointing.layers, kbit_prepare=kbit,
        )  # fmt: skip
        estimate = train_peak(twin, setup)
        what = f"QLoRA r={PEAK_RANK} twin, {'kbit-prepare' if kbit else 'no kbit-prepare'}, checkpointing"
        checks.append(compare(f"held between steps, {what} (bytes)", estimate.persistent_bytes, held))
        predicted = estimate.persistent_bytes + estimate.phases["loss"]
        measured = tracker.phase_peaks["backward"] - buffers
        checks.append(explained(f"peak at the start of backward, {what}, {tokens} tokens (bytes)", predicted,
                                measured, predicted - 4, LOSS_PHASE_NOTE["fp32"]))  # fmt: skip
    return checks


def layers_begin(tracker: LiveBytes, _grad: object) -> None:
    tracker.enter("layers")


def nf4_twin(twin: ModelSpec, kbit: bool) -> Any:
    """The twin saved, loaded by transformers in NF4 with double quantisation, prepared for k-bit training (or
    only given checkpointing and input gradients), with peft's all-linear LoRA."""
    import tempfile

    import transformers

    model = build_model(twin, device="cpu", dtype=torch.bfloat16)
    kwargs = {"use_reentrant": False}
    with tempfile.TemporaryDirectory() as folder, _quiet():
        model.save_pretrained(folder)
        quantisation = transformers.BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )  # fmt: skip
        model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, quantization_config=quantisation, device_map="cpu", dtype=torch.bfloat16, attn_implementation="sdpa"
        )
        if kbit:
            model = peft.prepare_model_for_kbit_training(model, gradient_checkpointing_kwargs=kwargs)  # type: ignore[no-untyped-call]
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)  # type: ignore[no-untyped-call]
            model.enable_input_require_grads()  # type: ignore[no-untyped-call]
        model = peft.get_peft_model(model, peft.LoraConfig(r=PEAK_RANK, target_modules="all-linear"))
    return model.train()
