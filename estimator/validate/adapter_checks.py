"""Adapters measured: peft's trainable parameters for every store it builds (its other tuners where
``--methods`` names them), the saved LoRA and tuner files of a real twin, LoReFT to pyreft's shapes, and one
per-expert MoE block."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from estimator.errors import MethodNotApplicableError
from estimator.layout import ExpertLayout
from estimator.query.vocabulary import Method
from estimator.stores import STORES
from estimator.stores.kinds import ia3_targets, targets_of
from estimator.stores.peft_rules import peft_prefix_params
from estimator.stores.targets import Targets, lora_bytes, lora_params, resolve_targets
from estimator.transformers_rules import fp32_weights
from estimator.units import BITS_PER_BYTE, DType
from estimator.validate import measure
from estimator.validate.hf import twin_spec
from estimator.validate.report import Check, compare, explained

if TYPE_CHECKING:
    from estimator.query import Query
    from estimator.specs import ModelSpec
    from estimator.stores.peft_configs import PeftConfig

PEFT_DTYPES = {"float32": DType.fp32, "bfloat16": DType.bf16, "float16": DType.fp16}
TWIN_TOKENS = 64


def _label(q: Query, method: Method) -> str:
    """How each peft-built store is named in the table."""
    targets = targets_of(q)
    match method:
        case Method.dora:
            return f"DoRA r={q.rank} {targets.label} parameters (peft)"
        case Method.ia3:
            default = ia3_targets(q)[2]
            return "IA3 parameters (peft" + (", its default targets)" if default else ", targets as the estimate)")
        case _:
            return f"{STORES[method].label(q)} (peft)"


def peft_store_checks(q: Query) -> tuple[list[Check], list[str]]:
    """DoRA, IA3, prefix and prompt tuning: each store's peft configuration on the meta-device model."""
    checks: list[Check] = []
    notes: list[str] = []
    for method in (Method.dora, Method.ia3, Method.prefix, Method.prompt):
        store = STORES[method]
        config = store.peft_config(q)
        if config is None:
            notes.append(f"{method.value}: peft cannot build it on fused expert tensors, so it is not measured.")
            continue
        try:
            expected = store.params(q)
        except MethodNotApplicableError as why:
            notes.append(f"{method.value}: {why}, so it is not measured.")
            continue
        assert expected is not None
        try:
            measured = measure.peft_trainable_params(q.spec, config)
        except ValueError as refusal:  # peft's prompt learning needs num_attention_heads (Mamba's config has none)
            first = str(refusal).strip().splitlines()[0] if str(refusal).strip() else type(refusal).__name__
            notes.append(f"{method.value}: peft refuses to build it on this model ({first}), so it is not measured.")
            continue
        peft_own = peft_prefix_params(q.spec, q.virtual_tokens) if method is Method.prefix else None
        if peft_own is not None:  # peft's own sizing, predicted exactly
            checks.append(explained(_label(q, method), expected, measured, *peft_own))
        else:
            checks.append(compare(_label(q, method), expected, measured))
    tuned, tuner_notes = tuner_checks(q)  # peft's other tuners, where --methods names them
    return checks + tuned, notes + tuner_notes


def loreft_check(q: Query) -> Check:
    reft = q.loreft
    store = STORES[Method.loreft]
    per_intervention = measure.loreft_intervention_params(q.spec.hidden_size, reft.rank)
    expected = store.params(q)
    assert expected is not None
    label = f"LoReFT r={reft.rank}, {reft.interventions(q.spec)} interventions (pyreft's module shapes)"
    return compare(label, expected, per_intervention * reft.interventions(q.spec))


def per_expert_block_check(q: Query) -> Check | None:
    """peft's LoRA on one sparse MLP block of nn.Linear experts, against the per-expert estimate."""
    spec = q.spec
    if spec.n_routed_experts is None:
        return None
    per_expert = resolve_targets(spec, "all-linear", ExpertLayout.per_expert)
    block = [m for m in per_expert.linears if m.expert or ("router" in m.roles and m.name.endswith(".gate"))]
    one_layer = Targets("block", tuple(replace(m, layers=1) for m in block))
    router_linear = any(m.module for m in block if "router" in m.roles)
    maps = tuple((m.short_name, m.d_in, m.d_out) for m in block if m.expert)
    return compare(
        f"LoRA r={q.rank} on one per-expert MoE block (peft on nn.Linear experts)",
        lora_params(one_layer, q.rank),
        measure.per_expert_block_lora_params(spec, q.rank, maps, router_linear),
        "the per-expert estimate multiplies this block by the model's sparse layers",
    )


def saved_adapter_checks(q: Query) -> list[Check]:
    """The dtype peft creates adapters in, and the tensor bytes of the twin's saved adapter file."""
    twin, _ = twin_spec(q.spec, TWIN_TOKENS)
    twin_targets = resolve_targets(twin, q.targets, q.experts)
    created = measure.peft_adapter_dtype(twin)
    created_dtype = PEFT_DTYPES.get(created)
    shown = created_dtype.value if created_dtype else created
    dtype_note = (
        "peft's default (autocast_adapter_dtype=True) upcasts adapter weights of a bf16 model to float32; "
        f"--adapter-dtype {shown} counts what it creates"
    )
    same = created_dtype is q.adapter_dtype
    checks = [
        Check(
            "LoRA weights dtype peft creates on a bf16 model",
            q.adapter_dtype.value,
            shown,
            "ok" if same else "explained",
            "" if same else dtype_note,
        )
    ]
    torch_dtype = measure.TORCH_DTYPES.get(q.adapter_dtype.value)
    if torch_dtype is not None:
        file_bytes, tensor_bytes, params = measure.saved_adapter(twin, twin_targets, q.rank, torch_dtype)
        note = (
            f"adapter_model.safetensors of the twin: {file_bytes:,} bytes = tensors + {file_bytes - tensor_bytes:,} "
            f"bytes of header (8-byte length + JSON index; {params:,} parameters)"
        )
        checks.append(_saved_check(q.spec, twin_targets, q.rank, q.adapter_dtype, tensor_bytes, note))
    return checks


def _saved_check(
    spec: ModelSpec, targets: Targets, rank: int, adapter_dtype: DType, tensor_bytes: int, note: str
) -> Check:
    """The saved adapter's tensor bytes against the estimate, all in ``adapter_dtype``.

    Where the installed transformers keeps a weight in float32 whatever the model's dtype (DeepSeek's
    router from 5.24), peft creates and saves that weight's LoRA in float32: the file then holds exactly
    P_fp32 · (32 − b) / 8 bytes more, P_fp32 the LoRA parameters on those weights; stated, never loosened.
    """
    label = f"saved LoRA tensors of the twin ({adapter_dtype.value}, bytes)"
    expected = lora_bytes(targets, rank, adapter_dtype)
    version = measure.transformers_version()
    names = fp32_weights(spec, version)
    fp32 = targets.only(tuple(m for m in targets.linears if m.name in names))
    if not fp32.linears or adapter_dtype is DType.fp32:
        return compare(label, expected, tensor_bytes, note)
    fp32_params = lora_params(fp32, rank)
    extra = fp32_params * (DType.fp32.bits - adapter_dtype.bits) // BITS_PER_BYTE
    why = (
        f"transformers {version} keeps {spec.model_type}'s {', '.join(names)} weight in float32 "
        f"(_keep_in_fp32_modules_strict) and peft creates its LoRA in that dtype: {fp32_params:,} parameters at "
        f"4 bytes instead of {adapter_dtype.bits // BITS_PER_BYTE} make {extra:,} bytes more; the estimate stores "
        f"every adapter weight in --adapter-dtype"
    )
    return explained(label, expected, tensor_bytes, expected + extra, f"{why}; {note}")


def tuner_checks(q: Query) -> tuple[list[Check], list[str]]:
    """peft's other tuners among ``--methods`` (``peft`` for all): the trainable count peft builds on the
    meta-device model (on the real twin where peft reads values: BOFT, SHiRA, UniLoRA), and the tensor bytes
    ``save_pretrained`` writes for the twin in fp32 (indices at their own width), each exactly."""
    from estimator.errors import EstimatorError
    from estimator.query import Query as TwinQuery
    from estimator.stores.tuners import PeftTuner

    checks: list[Check] = []
    notes: list[str] = []
    tuners = [store for m in q.methods if isinstance(store := STORES[m], PeftTuner)]
    if not tuners:
        return checks, notes
    twin, _ = twin_spec(q.spec, TWIN_TOKENS)
    for store in tuners:
        name = store.method.value
        try:
            expected = store.footprint(q)
        except MethodNotApplicableError as why:
            notes.append(f"{name}: {why}, so it is not measured.")
            continue
        if store.meta and q.spec.n_routed_experts is not None and q.experts is not ExpertLayout.none:
            notes.append(
                f"{name}: the estimate adapts each expert's nn.Linear (--experts {q.experts.value}); transformers "
                f"{measure.transformers_version()} builds fused expert tensors, which peft's {store.title} does not "
                "adapt, so the meta-device count is not compared."
            )
        elif store.meta:
            try:
                measured = measure.peft_trainable_params(q.spec, store.peft_config(q))
            except (ValueError, TypeError, NotImplementedError) as refusal:
                notes.append(f"{name}: peft refuses it on this model ({_first_line(refusal)}), so it is not measured.")
                continue
            checks.append(compare(f"{store.label(q)} trained (peft)", expected.params, measured))
        own = tuple((key, value) for key, value in q.tuner_options if key in store.knobs)
        try:
            tq = TwinQuery(twin, TWIN_TOKENS, q.rank, q.targets, (store.method,), DType.fp32, experts=q.experts,
                           tuner_options=own)  # fmt: skip
            on_twin = store.footprint(tq)
            trainable, tensor_bytes = saved_tuner(twin, store.peft_config(tq))
        except (EstimatorError, ValueError, TypeError, NotImplementedError) as why:
            notes.append(f"{name}: not measured on the twin ({_first_line(why)}).")
            continue
        if not store.meta:
            checks.append(compare(f"{store.title} trained on the twin (peft, real weights)", on_twin.params, trainable))
        checks.append(
            compare(f"saved {store.title} tensors of the twin (fp32, bytes)", on_twin.saved_bytes, tensor_bytes)
        )
    return checks, notes


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def saved_tuner(twin: ModelSpec, config: PeftConfig) -> tuple[int, int]:
    """peft's trainable count on a real fp32 model of the twin, and the tensor bytes of its saved adapter file."""
    import tempfile
    from pathlib import Path

    import peft
    import torch
    from safetensors import safe_open

    model = measure.build_model(twin, device="cpu", dtype=torch.float32)
    with measure._quiet():
        adapted = peft.get_peft_model(model, measure.build_config(config), autocast_adapter_dtype=False)
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    with tempfile.TemporaryDirectory() as folder:
        adapted.save_pretrained(folder, safe_serialization=True)
        with safe_open(str(Path(folder) / "adapter_model.safetensors"), framework="pt") as handle:
            tensors = [handle.get_tensor(key) for key in handle.keys()]  # noqa: SIM118 - safe_open is not a mapping
    return trainable, sum(t.numel() * t.element_size() for t in tensors)
