"""Estimate next to measurement, for one model: the rows behind ``estimate validate``."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Literal

from estimator.adapters import Targets, dora_params, ia3_params, lora_bytes, lora_params, resolve_targets
from estimator.architecture import total_params
from estimator.errors import EstimatorError
from estimator.kv import KVFormat, MlaCache, WindowCache, kv_bytes_per_token, kv_cache_bytes, transformers_kv_heads
from estimator.layout import ExpertLayout
from estimator.methods import Settings, ia3_targets, loreft_params, prefix_params, prompt_params
from estimator.pretraining import pretraining_bytes_per_token
from estimator.specs import ModelSpec
from estimator.units import BITS_PER_BYTE, DType, format_number, format_tokens_short
from estimator.validate import VersionReport, measure, version_report
from estimator.validate.hf import fp32_weights, twin_layer_windows, twin_spec

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
    versions: VersionReport

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
    held = KVFormat(kv_dtype, mla=MlaCache.latent, window=WindowCache.window_minus_one)  # what transformers keeps
    default = KVFormat(kv_dtype)
    factor = transformers_kv_heads(spec) // spec.num_key_value_heads
    checks = []
    for length in lengths:
        real = sum(measured[length][kind_index[window]] for window in windows)
        expected = kv_cache_bytes(spec, length, held)
        label = f"KV cache bytes at T = {length:,} ({kv_dtype.value}"
        notes = []
        if spec.is_mla:
            label += ", MLA latent"
            expanded = kv_cache_bytes(spec, length, KVFormat(kv_dtype, mla=MlaCache.expanded))
            notes.append(
                f"transformers >= 5 caches MLA's compressed latent, as the default estimate; the expanded per-head "
                f"form (--mla-cache expanded, as transformers 4.x) would hold {expanded:,} bytes"
            )
        if any(w is not None and length >= w for w in windows):
            label += ", windows kept as w-1"
            notes.append(
                f"transformers keeps w - 1 tokens in a full window between steps; the default estimate keeps w "
                f"(a ring buffer of the window): {kv_cache_bytes(spec, length, default):,} bytes"
            )
        label += ")"
        if factor != 1:
            status: Status = "explained" if real == factor * expected else "differs"
            notes.insert(
                0,
                f"the architecture needs {spec.num_key_value_heads} KV heads (the estimate); transformers' Falcon "
                f"broadcasts K and V to all {spec.num_attention_heads} query heads before caching: exactly {factor}x",
            )
            checks.append(Check(label, expected, real, status, "; ".join(notes)))
        else:
            checks.append(_compare(label, expected, real, "; ".join(notes)))
    last_full = FULL_LENGTHS[-1]
    real_per_token = sum(measured[last_full][kind_index[w]] for w in windows) // last_full
    if factor == 1:
        label = f"KV cache bytes per token ({kv_dtype.value}{', MLA latent' if spec.is_mla else ''})"
        checks.insert(0, _compare(label, kv_bytes_per_token(spec, held), real_per_token))
    return checks, method


def _adapter_checks(spec: ModelSpec, targets: Targets, rank: int, adapter_dtype: DType) -> tuple[list[Check], str]:
    twin, _ = twin_spec(spec, FULL_LENGTHS[-1])
    twin_targets = resolve_targets(twin, targets.label, targets.experts)
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
        checks.append(_saved_check(spec, twin_targets, rank, adapter_dtype, tensor_bytes, params, file_note))
    return checks, file_note


def _saved_check(
    spec: ModelSpec, targets: Targets, rank: int, adapter_dtype: DType, tensor_bytes: int, params: int, file_note: str
) -> Check:
    """The saved adapter's tensor bytes against the estimate, all in ``adapter_dtype``.

    Where the installed transformers keeps a weight in float32 whatever the model's dtype (DeepSeek's
    router from 5.24), peft creates and saves that weight's LoRA in float32: the file then holds exactly
    P_fp32 · (32 − b) / 8 bytes more, P_fp32 the LoRA parameters on those weights; stated, never loosened.
    """
    label = f"saved LoRA tensors of the twin ({adapter_dtype.value}, bytes)"
    expected = lora_bytes(targets, rank, adapter_dtype)
    note = f"{file_note} (8-byte length + JSON index; {params:,} parameters)"
    version = measure.transformers_version()
    names = fp32_weights(spec, version)
    fp32 = Targets("fp32", tuple(m for m in targets.linears if m.name in names))
    if not fp32.linears or adapter_dtype is DType.fp32:
        return _compare(label, expected, tensor_bytes, note)
    fp32_params = lora_params(fp32, rank)
    extra = fp32_params * (DType.fp32.bits - adapter_dtype.bits) // BITS_PER_BYTE
    why = (
        f"transformers {version} keeps {spec.model_type}'s {', '.join(names)} weight in float32 "
        f"(_keep_in_fp32_modules_strict) and peft creates its LoRA in that dtype: {fp32_params:,} parameters at "
        f"4 bytes instead of {adapter_dtype.bits // BITS_PER_BYTE} make {extra:,} bytes more; the estimate stores "
        f"every adapter weight in --adapter-dtype"
    )
    status: Status = "explained" if tensor_bytes == expected + extra else "differs"
    return Check(label, expected, tensor_bytes, status, f"{why}; {note}")


def _method_checks(spec: ModelSpec, settings: Settings, kv: KVFormat) -> tuple[list[Check], list[str]]:
    """DoRA, IA3, prefix and prompt tuning from peft on the meta-device model; LoReFT from a module
    built to pyreft's shapes; per-expert LoRA from a per-expert MoE block."""
    checks: list[Check] = []
    notes: list[str] = []
    targets = resolve_targets(spec, settings.targets, settings.experts)
    rank = settings.rank
    if all(linear.module for linear in targets.linears):
        measured = measure.peft_trainable_params(spec, measure.dora_config(targets, rank))
        checks.append(
            _compare(f"DoRA r={rank} {targets.label} parameters (peft)", dora_params(targets, rank), measured)
        )
    else:
        notes.append("DoRA: peft cannot put DoRA on fused expert tensors, so it is not measured in this layout.")
    ia3, feedforward, peft_default = ia3_targets(spec, settings)
    config = measure.ia3_config(None if peft_default else ia3, sorted(feedforward))
    ia3_label = "IA3 parameters (peft" + (", its default targets)" if peft_default else ", targets as the estimate)")
    checks.append(_compare(ia3_label, ia3_params(ia3, feedforward), measure.peft_trainable_params(spec, config)))
    n = settings.virtual_tokens
    prefix = prefix_params(spec, n, kv)
    peft_prefix = measure.peft_trainable_params(spec, measure.prefix_config(n))
    why = ""
    if spec.is_mla:
        why = (
            "peft sizes MLA prefixes from config head_dim (the RoPE width) × KV heads, a shape DeepSeek's attention "
            "does not cache; the estimate is the cache of n tokens in the chosen MLA form"
        )
    elif spec.model_type == "falcon" and spec.num_key_value_heads != spec.num_attention_heads:
        why = (
            "Falcon's config has no num_key_value_heads, so peft sizes the prefix for all heads; the estimate is the "
            f"cache of n tokens with the model's {spec.num_key_value_heads} KV head(s)"
        )
    status: Status = "ok" if prefix == peft_prefix else ("explained" if why else "differs")
    checks.append(Check(f"prefix tuning, {n} virtual tokens (peft)", prefix, peft_prefix, status, why))
    checks.append(
        _compare(
            f"prompt tuning, {n} virtual tokens (peft)",
            prompt_params(spec, n),
            measure.peft_trainable_params(spec, measure.prompt_config(n)),
        )
    )
    reft = settings.loreft
    per_intervention = measure.loreft_intervention_params(spec.hidden_size, reft.rank)
    checks.append(
        _compare(
            f"LoReFT r={reft.rank}, {reft.interventions(spec)} interventions (pyreft's module shapes)",
            loreft_params(spec, reft),
            per_intervention * reft.interventions(spec),
        )
    )
    if spec.is_moe:
        names = ("w1", "w3", "w2") if spec.model_type == "mixtral" else ("gate_proj", "up_proj", "down_proj")
        per_expert = resolve_targets(spec, "all-linear", ExpertLayout.per_expert)
        block = [m for m in per_expert.linears if m.expert or ("router" in m.roles and m.name.endswith(".gate"))]
        one_layer = Targets("block", tuple(replace(m, layers=1) for m in block))
        router_linear = any(m.module for m in block if "router" in m.roles)
        checks.append(
            _compare(
                f"LoRA r={rank} on one per-expert MoE block (peft on nn.Linear experts)",
                lora_params(one_layer, rank),
                measure.per_expert_block_lora_params(spec, rank, names, router_linear),
                "the per-expert estimate multiplies this block by the model's sparse layers",
            )
        )
    return checks, notes


def validate(
    spec: ModelSpec,
    rank: int = 32,
    targets: str = "all-linear",
    kv_dtype: DType = DType.bf16,
    adapter_dtype: DType = DType.bf16,
    weights_dtype: DType = DType.bf16,
    pretraining_tokens: int | None = None,
    extra_ranks: tuple[int, ...] = (),
    settings: Settings | None = None,
) -> Validation:
    """Build the real model on the meta device and a shrunken twin on the CPU; compare every quantity.

    Mixtures of experts are measured as peft adapts transformers >= 5 models (the fused layout),
    and a per-expert block checks the per-expert layout.
    """
    start = time.perf_counter()
    base = settings or Settings()
    experts = ExpertLayout.fused if spec.is_moe else ExpertLayout.per_expert
    settings = replace(base, rank=rank, targets=targets, experts=experts)
    chosen = resolve_targets(spec, targets, experts)
    model = measure.build_model(spec)
    params = measure.count_params(model)
    checks = [_compare("parameters (meta device)", total_params(spec), params)]
    for r in (rank, *extra_ranks):
        measured, model = measure.lora_trainable_params(model, chosen, r)
        layout = f", experts {experts.value}" if spec.is_moe else ""
        label = f"LoRA r={r} {chosen.label} parameters (peft{layout})"
        checks.append(_compare(label, lora_params(chosen, r), measured))
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
    method_checks, method_notes = _method_checks(spec, settings, KVFormat(kv_dtype))
    method = [
        "Parameters and LoRA: the full model built by transformers on the meta device (shapes, no memory); "
        "LoRA added by peft.get_peft_model, its trainable parameters counted.",
        *method,
        "KV cache: one forward pass with use_cache=True on the CPU per token count; bytes = numel × element size "
        "of every key and value tensor in the returned cache.",
        "DoRA, IA3, prefix and prompt tuning: peft on the meta-device model; LoReFT: interventions built to "
        "pyreft's LoreftIntervention shapes (pyreft itself pins transformers 4.45 and is not installed).",
        *method_notes,
    ]
    all_checks = checks + kv_checks + method_checks + adapter_checks
    return Validation(spec, tuple(all_checks), tuple(method), time.perf_counter() - start, version_report())
