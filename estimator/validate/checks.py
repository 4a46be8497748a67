"""Estimate next to measurement, for one query: the rows behind ``estimate validate``."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from estimator.architecture import layout_of, total_params
from estimator.errors import EstimatorError
from estimator.kv import (
    KVFormat,
    MlaCache,
    WindowCache,
    kv_bytes_per_token,
    kv_cache_bytes,
    kv_state_bytes,
    mla_forms,
)
from estimator.layout import ConvCache, ExpertLayout
from estimator.pretraining import pretraining_bytes_per_token
from estimator.stores.targets import lora_params, resolve_targets
from estimator.transformers_rules import transformers_kv_heads, transformers_state_dtype
from estimator.units import format_tokens_short
from estimator.validate import measure, version_report
from estimator.validate.adapter_checks import (
    loreft_check,
    peft_store_checks,
    per_expert_block_check,
    saved_adapter_checks,
)
from estimator.validate.hf import check_twin_memory
from estimator.validate.report import Check, Validation, compare, explained

if TYPE_CHECKING:
    from estimator.query import Query
    from estimator.specs import ModelSpec
    from estimator.units import DType

FULL_LENGTHS = (1, 7, 64, 1_000, 100_000)
MAMBA1_MEASURED = 64  # the longest Mamba-1 pass measured (its state is fixed; attention layers grow linearly)
RECURRENT_MEASURED = 1_000  # the longest pass of a model with recurrent layers (gated DeltaNet: ~3 s per 1,000)
MAX_MEASURED = 1_000_000  # windows and chunks up to this are measured beyond their end (shapes only: no memory)

__all__ = ["Check", "Validation", "kv_checks", "validate"]


def measured_query(q: Query) -> Query:
    """The query as transformers 5 builds the model: mixtures of experts in the fused layout."""
    return q.with_(experts=ExpertLayout.fused) if q.spec.n_routed_experts is not None else q


def measured_lengths(spec: ModelSpec) -> list[int]:
    """Token counts to measure at: a few, a thousand, a hundred thousand, and on both sides of every
    window's or chunk's end."""
    lengths = set(FULL_LENGTHS)
    if any(g.mixer.fixed_bits(KVFormat()) for g in layout_of(spec).groups):  # recurrent layers: their torch
        lengths = {t for t in lengths if t <= RECURRENT_MEASURED}  # scans loop over chunks or tokens in Python
    if spec.mamba_version == 1:  # transformers' Mamba-1 scan loops over every token: hours at 100,000
        lengths = {t for t in lengths if t <= MAMBA1_MEASURED}
    for group in layout_of(spec).groups:
        span = getattr(group.mixer, "sliding_window", None) or getattr(group.mixer, "chunk", None)
        if span is not None and span + 8 <= MAX_MEASURED:
            lengths |= {span - 1, span + 8}
    return sorted(lengths)


def kv_checks(spec: ModelSpec, kv_dtype: DType) -> tuple[list[Check], list[str]]:
    """The cache of the real model after a forward pass over T tokens, T from 1 to 100,000 and around
    every window, against the estimate in transformers' own conventions (stated where they differ)."""
    if kv_dtype.value not in measure.TORCH_DTYPES:
        raise EstimatorError(
            f"transformers' cache cannot hold {kv_dtype.value}, so it cannot be measured; "
            f"validate with --kv-dtype {', '.join(measure.TORCH_DTYPES)}"
        )
    lengths = measured_lengths(spec)
    measured, how = measured_cache(spec, lengths, kv_dtype)
    if measured is None:
        return [], [how]
    held = transformers_format(spec, kv_dtype)
    default = KVFormat(kv_dtype)
    latent = mla_forms(spec)
    factor = transformers_kv_heads(spec) // spec.num_key_value_heads if spec.num_key_value_heads else 1
    checks = []
    for length in lengths:
        growing, fixed = measured[length]
        expected = kv_cache_bytes(spec, length, held)
        label = f"KV cache bytes at T = {length:,} ({kv_dtype.value}"
        notes = []
        if latent:
            label += ", MLA latent"
            expanded = kv_cache_bytes(spec, length, replace(held, mla=MlaCache.expanded))
            notes.append(
                f"transformers >= 5 caches MLA's compressed latent, as the default estimate; the expanded per-head "
                f"form (--mla-cache expanded, as transformers 4.x) would hold {expanded:,} bytes"
            )
        if any(w is not None and length >= w for w in _spans(spec)):
            label += ", windows kept as w-1"
            ring = kv_cache_bytes(spec, length, replace(held, window=default.window))
            notes.append(
                f"transformers keeps w - 1 tokens in a full window between steps; the default estimate keeps w "
                f"(a ring buffer of the window): {ring:,} bytes"
            )
        label += ")"
        real = growing + fixed
        if factor != 1:
            notes.insert(
                0,
                f"the architecture needs {spec.num_key_value_heads} KV heads (the estimate); transformers' Falcon "
                f"broadcasts K and V to all {spec.num_attention_heads} query heads before caching: exactly {factor}x",
            )
            checks.append(explained(label, expected, real, factor * expected, "; ".join(notes)))
        else:
            checks.append(compare(label, expected, real, "; ".join(notes)))
    last = FULL_LENGTHS[2]
    linear = all(g.mixer.grows_linearly for g in layout_of(spec).groups)  # else the totals above are the check
    if factor == 1 and linear:
        label = f"KV cache bytes per token ({kv_dtype.value}{', MLA latent' if latent else ''})"
        checks.insert(0, compare(label, kv_bytes_per_token(spec, held), measured[last][0] // last))
    state = kv_state_bytes(spec, held)
    if linear and (state or measured[last][1]):
        checks.insert(1, state_check(spec, kv_dtype, held, measured[last][1]))
    method = [
        how
        or "KV cache and recurrent state: the full model built by transformers under torch's FakeTensorMode (true "
        "shapes and dtypes, no memory) and run forward with use_cache=True over each token count; bytes = numel × "
        "element size of every key, value, convolution and recurrent state tensor in the returned cache."
    ]
    return checks, method


def measured_cache(
    spec: ModelSpec, lengths: list[int], kv_dtype: DType
) -> tuple[dict[int, tuple[int, int]] | None, str]:
    """(growing, fixed) cache bytes at each length, measured at full size under fake tensors (and no note); where
    fake tensors cannot run the forward pass (routing that reads data: DBRX's ``nonzero``, JetMoE's ``.tolist()``),
    measured on a shrunk copy with real tensors and scaled up (:mod:`estimator.validate.shrunk`), the note saying
    so; None and why, in one line, where that copy cannot be measured either (DBRX's 2 layers: 6.6B parameters)."""
    from torch._subclasses.fake_tensor import DataDependentOutputException, DynamicOutputShapeException

    from estimator.validate.hf import transformers_config
    from estimator.validate.shrunk import shrunk_cache

    try:
        return measure.cache_bytes(spec, lengths, kv_dtype), ""
    except (DataDependentOutputException, DynamicOutputShapeException) as fake_error:
        reason = f"its routing reads data: {type(fake_error).__name__} under fake tensors"
    out: dict[int, tuple[int, int]] = {}
    note = ""
    try:
        for length in lengths:
            growing, fixed, note = shrunk_cache(transformers_config(spec), length, measure.TORCH_DTYPES[kv_dtype.value])
            out[length] = (growing, fixed)
    except EstimatorError as why:
        return None, f"KV cache: not measured: {why} ({reason})"
    return out, f"KV cache: {note}."


def _spans(spec: ModelSpec) -> list[int | None]:
    return [getattr(g.mixer, "sliding_window", None) or getattr(g.mixer, "chunk", None) for g in layout_of(spec).groups]


def transformers_format(spec: ModelSpec, kv_dtype: DType) -> KVFormat:
    """The cache format transformers keeps: w − 1 in a full window, the MLA latent, K convolution columns,
    and its recurrent-state dtype for the family."""
    return KVFormat(
        kv_dtype,
        mla=MlaCache.latent,
        window=WindowCache.window_minus_one,
        conv=ConvCache.kernel,
        state_dtype=transformers_state_dtype(spec),
    )


def state_check(spec: ModelSpec, kv_dtype: DType, held: KVFormat, measured: int) -> Check:
    """The fixed state (convolution and recurrent states) against the estimate in transformers' form."""
    engines = kv_state_bytes(spec, KVFormat(kv_dtype))
    note = (
        f"transformers keeps K convolution columns and its recurrent state in {held.state_dtype or kv_dtype}; "
        f"the default estimate keeps K - 1 columns and the state in the cache's dtype (vLLM, SGLang, llama.cpp): "
        f"{engines:,} bytes"
    )
    return compare(f"fixed state bytes per sequence ({kv_dtype.value})", kv_state_bytes(spec, held), measured, note)


def validate(query: Query, extra_ranks: tuple[int, ...] = ()) -> Validation:
    """Build the real model on the meta device and a shrunken twin on the CPU; compare every quantity.

    Mixtures of experts are measured as peft adapts transformers >= 5 models (the fused layout),
    and a per-expert block checks the per-expert layout.
    """
    start = time.perf_counter()
    q = measured_query(query)
    spec = q.spec
    check_twin_memory(q)
    chosen = resolve_targets(spec, q.targets, q.experts)
    model = measure.build_model(spec)
    params = measure.count_params(model)
    checks = [compare("parameters (meta device)", total_params(spec), params)]
    for r in (q.rank, *extra_ranks):
        measured, model = measure.lora_trainable_params(model, spec, chosen, r)
        layout = f", experts {q.experts.value}" if spec.n_routed_experts is not None else ""
        checks.append(compare(f"LoRA r={r} {chosen.label} parameters (peft{layout})", lora_params(chosen, r), measured))
    del model
    tokens = q.pretraining_tokens_or_published
    if tokens is not None:
        weights = q.weights_dtype
        checks.append(
            compare(
                f"pretraining bytes per token ({weights.value}, {format_tokens_short(tokens)} tokens)",
                pretraining_bytes_per_token(spec, weights, tokens),
                params * weights.bits / 8 / tokens,
            )
        )
    cache_checks, method = kv_checks(spec, q.kv.dtype)
    if max(measured_lengths(spec)) < max(FULL_LENGTHS):
        longest = max(measured_lengths(spec))
        method = [*method, f"Recurrent layers: the cache is measured up to {longest:,} tokens (transformers' "
                  "torch scans loop in Python, minutes to hours at 100,000); their state does not depend on T, "
                  "and the attention layers' keys and values grow by the same bytes per token."]  # fmt: skip
    store_checks, store_notes = peft_store_checks(q)
    store_checks.append(loreft_check(q))
    if (block := per_expert_block_check(q)) is not None:
        store_checks.append(block)
    method = [
        "Parameters and LoRA: the full model built by transformers on the meta device (shapes, no memory); "
        "LoRA added by peft.get_peft_model, its trainable parameters counted.",
        *method,
        "DoRA, IA3, prefix and prompt tuning: peft on the meta-device model; LoReFT: interventions built to "
        "pyreft's LoreftIntervention shapes (pyreft itself pins transformers 4.45 and is not installed).",
        *store_notes,
    ]
    all_checks = checks + cache_checks + store_checks + saved_adapter_checks(q)
    return Validation(spec, tuple(all_checks), tuple(method), time.perf_counter() - start, version_report())
