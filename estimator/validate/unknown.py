"""Models no family knows, measured from transformers and peft themselves: exact, and labelled as measured.

A config.json whose model_type has no family in :mod:`estimator.families` (but one transformers builds)
still gets, for the main query:

- parameters: the model built on the meta device (shapes, no memory), counted as ``parameters()`` does;
- LoRA and DoRA: peft's all-linear adapter on that meta model, trainable parameters counted;
- prompt tuning: n virtual tokens × the input embedding's width, read from the built model;
- the cache: one forward pass of the full-size model over T tokens under torch's ``FakeTensorMode``
  (true shapes and dtypes, no storage), every tensor of the returned cache object, of the caches passed to
  its layers and of the state set on its modules found and classified (:mod:`estimator.validate.cache_walk`:
  integer counters listed as bookkeeping, unknown tensors refused); a model-specific state (RWKV, xLSTM,
  RecurrentGemma) measured at 8 and 16 tokens and counted where it does not grow; where fake tensors cannot
  run the forward pass (routing's ``.item()``), a shrunk copy with real tensors scaled per layer kind
  (:mod:`estimator.validate.shrunk`);
- full fine-tuning: every parameter.

Whatever cannot be had exactly is refused in one line (IA3 and prefix tuning have no known defaults for
an unknown family; LoReFT needs the layer structure; a cache holding tensors this module does not
recognise is not guessed at). Never a guessed number.

A config is bounded before anything is built (:func:`estimator.validate.bounds.check_bounds`), and the
measurement runs in a child process (``python -m estimator.validate.unknown``, a JSON request on stdin, a JSON
answer on stdout; started by :mod:`estimator.validate.child` with a time and a memory limit, the network
switched off); the cache is measured by :mod:`estimator.validate.unknown_cache`; this module imports torch
only inside the functions that measure.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.validate.bounds import check_bounds
from estimator.validate.unknown_cache import _cache, _fake_cache, _first_line

__all__ = ["Measured", "Row", "_cache", "_fake_cache", "measure_unknown", "measured_from"]

if TYPE_CHECKING:
    from estimator.errors import UnknownFamilyError
    from estimator.units import DType


@dataclass(frozen=True)
class Row:
    """One way of storing the text: its parameters and bytes, or why it is refused."""

    method: str
    label: str
    params: int | None
    bytes: int | None
    refused: str | None = None
    note: str | None = None  # how it was measured, where more than the label says


@dataclass(frozen=True)
class Measured:
    """Everything measured for one unknown model and query."""

    name: str
    model_type: str
    tokens: int
    params: int
    rows: tuple[Row, ...]
    kv_growing_bytes: int | None
    kv_state_bytes: int | None
    seconds: float
    versions: dict[str, str] = field(default_factory=dict)

    def row(self, method: str) -> Row:
        return next(r for r in self.rows if r.method == method)


def _hf_fields(unknown: UnknownFamilyError) -> dict[str, Any]:
    fields = {k: v for k, v in unknown.config.items() if not k.startswith("_") and k != "architectures"}
    fields["model_type"] = unknown.model_type
    return fields


def _trainable(model: Any, config: Any) -> tuple[int, Any]:
    import peft
    import torch

    from estimator.validate.measure import _quiet

    with _quiet(), torch.device("meta"):
        wrapped = peft.get_peft_model(model, config)
    count = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    return count, wrapped.unload()


def measure_unknown(
    unknown: UnknownFamilyError,
    name: str,
    tokens: int,
    rank: int,
    kv_dtype: DType,
    adapter_dtype: DType,
    virtual_tokens: int,
) -> Measured:
    """Measure the main query's rows for a model no family knows (see the module docstring)."""
    import peft
    import torch
    import transformers

    from estimator.validate.measure import TORCH_DTYPES, build_from_config

    start = time.perf_counter()
    fields = _hf_fields(unknown)
    check_bounds(fields, unknown.path)
    try:
        model = build_from_config(fields)
    except Exception as error:  # transformers refuses the config: nothing can be measured
        raise EstimatorError(
            f"{unknown.path}: model_type {unknown.model_type!r} has no family here, and transformers "
            f"{transformers.__version__} cannot build it either ({_first_line(error)}); nothing to measure"
        ) from None
    params = sum(p.numel() for p in model.parameters())
    width = adapter_dtype.bits // 8
    rows: list[Row] = []
    kv_growing = kv_state = None
    if kv_dtype.value in TORCH_DTYPES:
        try:
            kv_growing, kv_state, note = _cache(fields, tokens, kv_dtype)
            label = f"in context (KV cache, {kv_dtype.value}; measured)"
            rows.append(Row("kv", label, None, kv_growing + kv_state, note=note or None))
        except Exception as error:
            rows.append(Row("kv", "in context (KV cache)", None, None, f"not measurable: {_first_line(error)}"))
    else:
        why = f"a {kv_dtype.value} cache cannot be measured (transformers builds caches in float dtypes)"
        rows.append(Row("kv", "in context (KV cache)", None, None, why))
    for method, dora in (("lora", False), ("dora", True)):
        label = f"{'DoRA' if dora else 'LoRA'} r={rank}, all-linear ({adapter_dtype.value}; peft, measured)"
        try:
            count, model = _trainable(model, peft.LoraConfig(r=rank, target_modules="all-linear", use_dora=dora))
            rows.append(Row(method, label, count, count * width))
        except Exception as error:
            rows.append(Row(method, label, None, None, f"peft refuses it: {_first_line(error)}"))
    embedding = model.get_input_embeddings()
    prompt = virtual_tokens * int(embedding.weight.shape[1])
    rows.append(
        Row("prompt", f"prompt tuning ({virtual_tokens} virtual tokens; measured width)", prompt, prompt * width)
    )
    no_family = f"no default is known for model_type {unknown.model_type!r}"
    rows.append(Row("ia3", "IA3", None, None, f"{no_family}; IA3's targets differ by family"))
    rows.append(Row("loreft", "LoReFT", None, None, f"{no_family}: its layers' structure is unknown"))
    rows.append(Row("prefix", "prefix tuning", None, None, f"{no_family}: peft sizes it from family-specific fields"))
    rows.append(Row("full", "full fine-tuning (measured)", params, params * width))
    versions = {"transformers": transformers.__version__, "peft": peft.__version__, "torch": torch.__version__}
    return Measured(
        name, unknown.model_type, tokens, params, tuple(rows), kv_growing, kv_state, time.perf_counter() - start,
        versions,
    )  # fmt: skip


def measured_from(record: dict[str, Any]) -> Measured:
    """A :class:`Measured` from its JSON (the child's answer)."""
    rows = tuple(Row(**row) for row in record.pop("rows"))
    return Measured(rows=rows, **record)


def _whole_model_class(model_type: Any) -> Any:
    """The class transformers' causal-LM mapping builds for ``model_type`` where it is the whole multimodal model
    (a ``...ForConditionalGeneration``) and the image-text mapping has none; else None."""
    import transformers
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    )

    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES or not str(name).endswith("ForConditionalGeneration"):
        return None
    return getattr(transformers, str(name), None)


def whole_model_params_measured(config: dict[str, Any]) -> tuple[int, str]:
    """(parameters, the class built) of a whole multimodal checkpoint: the class its ``architectures`` names
    (else ``AutoModelForImageTextToText``'s, else the causal-LM mapping's where that is the whole model, a
    ``...ForConditionalGeneration``: MossTranscribeDiarize) built from the config on the meta device, its
    parameters counted as ``parameters()`` does (a tied head once)."""
    import torch
    import transformers

    from estimator.validate.measure import _quiet

    fields = {
        k: v for k, v in config.items() if not k.startswith("_") and k not in ("architectures", "transformers_version")
    }
    listed = config.get("architectures")
    names: list[Any] = listed if isinstance(listed, list) else []
    built = next((getattr(transformers, n) for n in names if isinstance(n, str) and hasattr(transformers, n)), None)
    try:
        with _quiet(), torch.device("meta"):
            hf_config = transformers.AutoConfig.for_model(**fields)
            if built is None:
                built = _whole_model_class(config.get("model_type"))
            if built is not None:
                model = built(hf_config)
            else:
                model = transformers.AutoModelForImageTextToText.from_config(hf_config)  # type: ignore[no-untyped-call]
    except Exception as error:
        raise EstimatorError(
            f"transformers {transformers.__version__} cannot build the whole {config.get('model_type')} model "
            f"({_first_line(error, 120)}); use --part language"
        ) from None
    return sum(p.numel() for p in model.parameters()), type(model).__name__


def child_main() -> int:
    """The child's side: a JSON request on stdin, ``{"measured": ...}`` or ``{"error": "<one line>"}`` on stdout."""
    import logging

    from estimator.errors import UnknownFamilyError
    from estimator.offline import go_offline
    from estimator.query import ADAPTER_DTYPES
    from estimator.units import KV_DTYPES, parse_dtype

    go_offline()
    logging.disable(logging.CRITICAL)  # torch's fake-tensor and dynamo loggers: the answer is on stdout
    request = json.loads(sys.stdin.read())
    if request.get("kind") == "whole_params":
        try:
            answer_whole: dict[str, Any] = {"whole_params": list(whole_model_params_measured(request["config"]))}
        except EstimatorError as exc:
            answer_whole = {"error": str(exc)}
        sys.stdout.write(json.dumps(answer_whole))
        return 0
    try:
        unknown = UnknownFamilyError("", Path(request["path"]), request["model_type"], request["config"])
        result = measure_unknown(
            unknown, request["name"], request["tokens"], request["rank"],
            parse_dtype(request["kv_dtype"], "KV dtype", KV_DTYPES),
            parse_dtype(request["adapter_dtype"], "adapter dtype", ADAPTER_DTYPES), request["virtual_tokens"],
        )  # fmt: skip
        answer: dict[str, Any] = {"measured": asdict(result)}
    except EstimatorError as exc:
        answer = {"error": str(exc)}
    sys.stdout.write(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
