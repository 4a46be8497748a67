"""Models no family knows, measured from transformers and peft themselves: exact, and labelled as measured.

A config.json whose model_type has no family in :mod:`estimator.families` (but one transformers builds)
still gets, for the main query:

- parameters: the model built on the meta device (shapes, no memory), counted as ``parameters()`` does;
- LoRA and DoRA: peft's all-linear adapter on that meta model, trainable parameters counted;
- prompt tuning: n virtual tokens × the input embedding's width, read from the built model;
- the cache: one forward pass of the full-size model over T tokens under torch's ``FakeTensorMode``
  (true shapes and dtypes, no storage), its keys, values and recurrent states summed;
- full fine-tuning: every parameter.

Whatever cannot be had exactly is refused in one line (IA3 and prefix tuning have no known defaults for
an unknown family; LoReFT needs the layer structure; a cache holding tensors this module does not
recognise is not guessed at). Never a guessed number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import peft
import torch
import transformers

from estimator.errors import EstimatorError
from estimator.validate.measure import TORCH_DTYPES, _quiet, build_from_config, layer_cache_bytes

if TYPE_CHECKING:
    from estimator.errors import UnknownFamilyError
    from estimator.units import DType

KNOWN_CACHE_TENSORS = {"keys", "values", "indexer_keys", "conv_states", "recurrent_states"}


@dataclass(frozen=True)
class Row:
    """One way of storing the text: its parameters and bytes, or why it is refused."""

    method: str
    label: str
    params: int | None
    bytes: int | None
    refused: str | None = None


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


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _hf_fields(unknown: UnknownFamilyError) -> dict[str, Any]:
    fields = {k: v for k, v in unknown.config.items() if not k.startswith("_") and k != "architectures"}
    fields["model_type"] = unknown.model_type
    return fields


def _trainable(model: Any, config: Any) -> tuple[int, Any]:
    with _quiet(), torch.device("meta"):
        wrapped = peft.get_peft_model(model, config)
    count = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    return count, wrapped.unload()


def _cache(fields: dict[str, Any], tokens: int, dtype: DType) -> tuple[int, int]:
    """(growing, fixed) bytes of the cache after one forward pass over ``tokens`` tokens, full size, no memory."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with _quiet(), FakeTensorMode(allow_non_fake_inputs=True):
        model = build_from_config(fields, device="cpu", dtype=TORCH_DTYPES[dtype.value])
        with torch.no_grad():
            cache = model(input_ids=torch.zeros((1, tokens), dtype=torch.long), use_cache=True).past_key_values
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise EstimatorError(f"its cache ({type(cache).__name__}) keeps no layers this tool can read")
    for layer in layers:
        held = {k for k, v in vars(layer).items() if isinstance(v, torch.Tensor | dict) and v is not None}
        unknown = sorted(held - KNOWN_CACHE_TENSORS - {"device", "dtype"})
        tensors = [k for k in unknown if isinstance(getattr(layer, k), torch.Tensor)]
        if tensors:
            raise EstimatorError(f"its cache layers hold tensors not measured here ({', '.join(tensors)})")
    parts = [layer_cache_bytes(layer) for layer in layers]
    return sum(g for g, _ in parts), sum(f for _, f in parts)


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
    start = time.perf_counter()
    fields = _hf_fields(unknown)
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
            kv_growing, kv_state = _cache(fields, tokens, kv_dtype)
            label = f"in context (KV cache, {kv_dtype.value}; measured)"
            rows.append(Row("kv", label, None, kv_growing + kv_state))
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
