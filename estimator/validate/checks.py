"""Estimate next to measurement, for one model: the rows behind ``estimate validate``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from estimator.adapters import Targets, lora_bytes, lora_params, resolve_targets
from estimator.architecture import total_params
from estimator.errors import EstimatorError
from estimator.kv import WindowCache, kv_bytes_per_token, kv_cache_bytes, transformers_kv_heads
from estimator.pretraining import pretraining_bytes_per_token
from estimator.specs import ModelSpec
from estimator.units import DType, format_number, format_tokens_short
from estimator.validate import measure
from estimator.validate.hf import twin_layer_windows, twin_spec

Status = Literal["ok", "differs", "explained"]
FULL_LENGTHS = (1, 7, 64)
WINDOW_LIMIT = 8192  # windows up to this are measured beyond their end on the CPU
PEFT_DTYPES = {"float32": DType.fp32, "bfloat16": DType.bf16, "float16": DType.fp16}


@dataclass(frozen=True)
class Check:
    """One quantity: our estimate, what torch measured, and whether they agree exactly."""

    quantity: str
    estimate: int | float | str
    measured: int | float | str
    status: Status
    note: str = ""

    @property
    def difference(self) -> str:
        if isinstance(self.estimate, str) or isinstance(self.measured, str):
            return "" if self.estimate == self.measured else "differs"
        return format_number(self.measured - self.estimate)


@dataclass(frozen=True)
class Validation:
    spec: ModelSpec
    checks: tuple[Check, ...]
    method: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(check.status != "differs" for check in self.checks)


def _compare(quantity: str, estimate: int | float, measured: int | float, note: str = "") -> Check:
    return Check(quantity, estimate, measured, "ok" if estimate == measured else "differs", note)


def _kv_checks(spec: ModelSpec, kv_dtype: DType) -> tuple[list[Check], list[str]]:
    if kv_dtype.value not in measure.TORCH_DTYPES:
        raise EstimatorError(
            f"transformers' cache cannot hold {kv_dtype.value}, so it cannot be measured; "
            f"validate with --kv-dtype {', '.join(measure.TORCH_DTYPES)}"
        )
    windows = spec.layer_windows()
    lengths = list(FULL_LENGTHS)
    for window in sorted({w for w in windows if w is not None}):
        if window <= WINDOW_LIMIT:
            lengths += [window - 1, window + 8]
    twin, method = twin_spec(spec, max(lengths))
    twin_windows = twin_layer_windows(spec)
    kind_index = {window: twin_windows.index(window) for window in twin_windows}
    measured = measure.kv_cache_layer_bytes(twin, lengths, kv_dtype)
    factor = transformers_kv_heads(spec) // spec.num_key_value_heads
    checks = []
    for length in lengths:
        real = sum(measured[length][kind_index[window]] for window in windows)
        expected = kv_cache_bytes(spec, length, kv_dtype, WindowCache.window_minus_one)
        label = f"KV cache bytes at T = {length:,} ({kv_dtype.value})"
        note = ""
        if any(w is not None and length >= w for w in windows):
            default = kv_cache_bytes(spec, length, kv_dtype)
            label += ", windows kept as w-1"
            note = (
                f"transformers keeps w - 1 tokens in a full window between steps; the default estimate keeps w "
                f"(a ring buffer of the window): {default:,} bytes"
            )
        if factor != 1:
            status: Status = "explained" if real == factor * expected else "differs"
            note = (
                f"the architecture needs {spec.num_key_value_heads} KV heads (the estimate); transformers' Falcon "
                f"broadcasts K and V to all {spec.num_attention_heads} query heads before caching: exactly "
                f"{factor}x. {note}"
            ).strip()
            checks.append(Check(label, expected, real, status, note))
        else:
            checks.append(_compare(label, expected, real, note))
    per_token = kv_bytes_per_token(spec, kv_dtype)
    last_full = FULL_LENGTHS[-1]
    real_per_token = sum(measured[last_full][kind_index[w]] for w in windows) // last_full
    if factor == 1:
        checks.insert(0, _compare(f"KV cache bytes per token ({kv_dtype.value})", per_token, real_per_token))
    return checks, method


def _adapter_checks(spec: ModelSpec, targets: Targets, rank: int, adapter_dtype: DType) -> tuple[list[Check], str]:
    twin, _ = twin_spec(spec, FULL_LENGTHS[-1])
    twin_targets = resolve_targets(twin, targets.label)
    created = measure.peft_adapter_dtype(twin)
    created_dtype = PEFT_DTYPES.get(created)
    dtype_note = (
        "peft's default (autocast_adapter_dtype=True) upcasts adapter weights of a bf16 model to float32; "
        f"--adapter-dtype {created_dtype.value if created_dtype else created} counts what it creates"
    )
    checks = [
        Check(
            "LoRA weights dtype peft creates on a bf16 model",
            adapter_dtype.value,
            created_dtype.value if created_dtype else created,
            "ok" if created_dtype is adapter_dtype else "explained",
            "" if created_dtype is adapter_dtype else dtype_note,
        )
    ]
    torch_dtype = measure.TORCH_DTYPES.get(adapter_dtype.value)
    file_note = ""
    if torch_dtype is not None:
        file_bytes, tensor_bytes, params = measure.saved_adapter(twin, twin_targets, rank, torch_dtype)
        header = file_bytes - tensor_bytes
        file_note = (
            f"adapter_model.safetensors of the twin: {file_bytes:,} bytes = tensors + {header:,} bytes of header"
        )
        checks.append(
            _compare(
                f"saved LoRA tensors of the twin ({adapter_dtype.value}, bytes)",
                lora_bytes(twin_targets, rank, adapter_dtype),
                tensor_bytes,
                f"{file_note} (8-byte length + JSON index; {params:,} parameters)",
            )
        )
    return checks, file_note


def validate(
    spec: ModelSpec,
    rank: int = 32,
    targets: str = "all-linear",
    kv_dtype: DType = DType.bf16,
    adapter_dtype: DType = DType.bf16,
    weights_dtype: DType = DType.bf16,
    pretraining_tokens: int | None = None,
    extra_ranks: tuple[int, ...] = (),
) -> Validation:
    """Build the real model on the meta device and a shrunken twin on the CPU; compare every quantity."""
    start = time.perf_counter()
    chosen = resolve_targets(spec, targets)
    model = measure.build_model(spec)
    params = measure.count_params(model)
    checks = [_compare("parameters (meta device)", total_params(spec), params)]
    for r in (rank, *extra_ranks):
        measured, model = measure.lora_trainable_params(model, chosen, r)
        checks.append(_compare(f"LoRA r={r} {chosen.label} parameters (peft)", lora_params(chosen, r), measured))
    del model
    tokens = pretraining_tokens if pretraining_tokens is not None else spec.pretraining_tokens
    if tokens is not None:
        checks.append(
            _compare(
                f"pretraining bytes per token ({weights_dtype.value}, {format_tokens_short(tokens)} tokens)",
                pretraining_bytes_per_token(spec, weights_dtype, tokens),
                params * weights_dtype.bits / 8 / tokens,
            )
        )
    kv_checks, method = _kv_checks(spec, kv_dtype)
    adapter_checks, _ = _adapter_checks(spec, chosen, rank, adapter_dtype)
    method = [
        "Parameters and LoRA: the full model built by transformers on the meta device (shapes, no memory); "
        "LoRA added by peft.get_peft_model, its trainable parameters counted.",
        *method,
        "KV cache: one forward pass with use_cache=True on the CPU per token count; bytes = numel × element size "
        "of every key and value tensor in the returned cache.",
    ]
    return Validation(spec, tuple(checks + kv_checks + adapter_checks), tuple(method), time.perf_counter() - start)
