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

A config is bounded before anything is built (:func:`check_bounds`), and the measurement runs in a child
process (``python -m estimator.validate.unknown``, a JSON request on stdin, a JSON answer on stdout; started
by :mod:`estimator.cli.measured` with a time and a memory limit, the network switched off); this module
imports torch only inside the functions that measure.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError

if TYPE_CHECKING:
    from estimator.errors import UnknownFamilyError
    from estimator.units import DType

MAX_LAYERS = 512  # built one module per layer: the deepest real models have under 200
MAX_WIDTH = 2**20  # hidden, intermediate, head and window sizes: the widest real maps are ~10^5
MAX_VOCAB = 2**22  # the largest real vocabularies are ~2.6 · 10^5
MAX_EXPERTS = 1024  # DeepSeek-V3: 256, Kimi K2: 384
MAX_EXPERT_MODULES = 50_000  # layers × experts, each expert a module (Kimi K2: 61 × 384 = 23,424)
MAX_PARAMS = 10**13  # a standard decoder's count from the config, as a sanity bound (the largest: ~10^12)
LAYER_KEY = re.compile(r"(^|_)(layers?|blocks?|layer)$")
WIDTH_KEY = re.compile(r"(size|dim|width|heads?|embd|d_model|rank|_inner)$")


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


def _numbers(config: dict[str, Any], depth: int = 0) -> list[tuple[str, int]]:
    """Every whole-number field of a config and its nested configs (``text_config``), by key."""
    found: list[tuple[str, int]] = []
    for key, value in config.items():
        if isinstance(value, int) and not isinstance(value, bool):
            found.append((key.lower(), value))
        elif isinstance(value, dict) and depth < 3:
            found += _numbers(value, depth + 1)
    return found


def check_bounds(config: dict[str, Any], path: Path | str) -> None:
    """Refuse, in one line and before any module is built, a config whose layers, widths, vocabulary, experts
    or parameters (``2 V d + L (4 d² + 3 d F E)``, a standard decoder's count used only as a bound) are beyond
    any real model's."""
    numbers = _numbers(config)

    def largest(test: Any) -> int:
        return max((v for k, v in numbers if test(k)), default=0)

    layers = largest(lambda k: LAYER_KEY.search(k) and "max_window" not in k)
    experts = largest(lambda k: "expert" in k and k.endswith(("experts", "expert")))
    vocab = largest(lambda k: k.endswith("vocab_size"))  # not ngram_vocab_size_base (qwen4_exp: 2 · 10^7 n-grams)
    width = largest(lambda k: WIDTH_KEY.search(k) and "vocab" not in k and "max_position" not in k)
    fix = "this is not a real model's config.json; fix it or pass a family the estimator knows"
    checks = (("layers", layers, MAX_LAYERS), ("experts", experts, MAX_EXPERTS), ("a vocabulary of", vocab, MAX_VOCAB),
              ("a width of", width, MAX_WIDTH), ("expert modules (layers × experts):", layers * experts,
              MAX_EXPERT_MODULES))  # fmt: skip
    for what, value, limit in checks:
        if value > limit:
            raise EstimatorError(f"{path}: {what} {value:,} is over the {limit:,} measured here; {fix}")
    hidden = largest(lambda k: k in ("hidden_size", "d_model", "n_embd", "dim", "hidden_dim"))
    inner = largest(lambda k: "intermediate" in k or k in ("ffn_dim", "n_inner", "d_ff")) or 4 * hidden
    params = 2 * vocab * hidden + layers * (4 * hidden**2 + 3 * hidden * inner * max(1, experts))
    if params > MAX_PARAMS:
        raise EstimatorError(f"{path}: about {params:.2e} parameters, over the {MAX_PARAMS:.0e} measured here; {fix}")


def _first_line(error: BaseException, limit: int = 200) -> str:
    """The error's first line, at most ``limit`` characters (transformers lists every model type it knows)."""
    from estimator.checkpoint.files import printable

    text = str(error).strip().splitlines()
    return printable(text[0], limit) if text else type(error).__name__


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


STATE_KEYS = ("cache", "past_key_values", "cache_params", "state")  # where a model output returns its state
SMALL_TOKENS = (8, 16)  # lengths a model-specific state is measured at, to show it does not grow


def _forward_state(model: Any, tokens: int) -> tuple[list[Any], list[tuple[str, Any]]]:
    """One forward pass over ``tokens`` tokens: the states it returned or passed to its layers (a cache a
    model builds and does not return, as RecurrentGemma's attention cache in transformers 5.24, among them),
    and the tensors it set on the model's modules."""
    import torch

    from estimator.validate.cache_walk import module_state, module_tensors

    passed: dict[int, Any] = {}

    def catch(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        for key in STATE_KEYS:
            if kwargs.get(key) is not None and isinstance(getattr(kwargs[key], "layers", None), list):
                passed.setdefault(id(kwargs[key]), kwargs[key])

    hooks = [module.register_forward_pre_hook(catch, with_kwargs=True) for module in model.modules()]
    before = module_tensors(model)
    try:
        with torch.no_grad():
            out = model(input_ids=torch.zeros((1, tokens), dtype=torch.long), use_cache=True)
    finally:
        for hook in hooks:
            hook.remove()
    returned = [out[key] for key in STATE_KEYS if key in out and out[key] is not None]
    states = {id(state): state for state in [*returned, *passed.values()]}
    return list(states.values()), module_state(model, before)


def _found(states: list[Any], on_modules: list[tuple[str, Any]]) -> tuple[Any, bool]:
    """The classified state of one forward pass and whether it is all transformers caches with layers (else a
    model-specific state, RWKV's, xLSTM's or RecurrentGemma's, whose float tensors are all recurrent state)."""
    from estimator.validate.cache_walk import check_module_state, classify, walk

    check_module_state(on_modules)
    layered = bool(states) and all(isinstance(getattr(state, "layers", None), list) for state in states)
    tensors = [pair for i, state in enumerate(states) for pair in walk(state, f"cache{i}" if i else "")]
    if layered and not on_modules:
        found = classify(tensors)
    else:  # a model-specific state: attention caches beside it by name, the rest recurrent state
        found = classify([*[p for p in tensors if not _in_layers(p[0])], *on_modules], fixed_root=True)
        layers = classify([p for p in tensors if _in_layers(p[0])])
        found.growing.update(layers.growing), found.fixed.update(layers.fixed)
        found.bookkeeping.update(layers.bookkeeping)
    if not found.growing and not found.fixed:
        kinds = ", ".join(type(state).__name__ for state in states) or "nothing"
        raise EstimatorError(f"its forward pass keeps no state this tool can find (it returned {kinds})")
    return found, layered and not on_modules


def _in_layers(path: str) -> bool:
    return path.startswith("layers[") or ".layers[" in path


def _cache(fields: dict[str, Any], tokens: int, dtype: DType) -> tuple[int, int, str]:
    """(growing, fixed) bytes of the cache at ``tokens`` tokens and a note: measured at full size under fake
    tensors (:func:`_fake_cache`), else, where fake tensors cannot run the forward pass, on a shrunk copy
    with real tensors (:func:`estimator.validate.shrunk.shrunk_cache`)."""
    from estimator.validate.measure import TORCH_DTYPES
    from estimator.validate.shrunk import shrunk_cache

    try:
        return _fake_cache(fields, tokens, dtype)
    except EstimatorError:
        raise
    except Exception as fake_error:
        try:
            return shrunk_cache(fields, tokens, TORCH_DTYPES[dtype.value])
        except EstimatorError:
            raise
        except Exception as real_error:
            raise EstimatorError(
                f"fake tensors cannot run it ({_first_line(fake_error, 100)}), nor can its shrunk copy "
                f"({_first_line(real_error, 100)})"
            ) from None


def _fake_cache(fields: dict[str, Any], tokens: int, dtype: DType) -> tuple[int, int, str]:
    """(growing, fixed) bytes of the cache after one forward pass over ``tokens`` tokens, full size, no memory,
    and a note on what was left out or how it was found.

    A transformers cache (one with layers) is measured at ``tokens``. A model-specific state (RWKV, xLSTM,
    RecurrentGemma, whose forward passes step token by token) is measured at 8 and 16 tokens, and counted
    only where every tensor is the same size at both (then it is that size at any length)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from estimator.validate.cache_walk import GROWING_NAMES
    from estimator.validate.measure import TORCH_DTYPES, _quiet, build_from_config

    first, second = (tokens, tokens) if tokens <= SMALL_TOKENS[1] else SMALL_TOKENS
    with _quiet(), FakeTensorMode(allow_non_fake_inputs=True):
        model = build_from_config(fields, device="cpu", dtype=TORCH_DTYPES[dtype.value])
        states, on_modules = _forward_state(model, first)
        found, layered = _found(states, on_modules)
        if layered and first != tokens:
            found, layered = _found(*_forward_state(model, tokens))
        if layered or first == second:
            return found.growing_bytes, found.fixed_bytes, _bookkeeping_note(found.bookkeeping, "")
        model = build_from_config(fields, device="cpu", dtype=TORCH_DTYPES[dtype.value])
        states_again, on_modules_again = _forward_state(model, second)
        again, _ = _found(states_again, on_modules_again)
        growing = _held_bytes(states, first, tokens), _held_bytes(states_again, second, tokens)
    others = [path for path in found.growing if path.rsplit(".", 1)[-1] not in GROWING_NAMES]
    if others:
        raise EstimatorError(f"its cache holds {', '.join(others[:3])}, not extrapolated to {tokens:,} tokens here")
    if again.fixed != found.fixed or growing[0] != growing[1]:
        raise EstimatorError(
            f"its model-specific state changes size between {first} and {second} tokens otherwise than its "
            f"attention layers' keys and values; it is not extrapolated to {tokens:,}"
        )
    note = (f"a fixed state, the same {found.fixed_bytes:,} bytes after {first} and {second} tokens (so at any "
            "length)")  # fmt: skip
    if growing[0]:
        note += f"; attention keys and values per token times the tokens each layer holds at {tokens:,}"
    return growing[0], found.fixed_bytes, _bookkeeping_note(found.bookkeeping, note)


def _held_bytes(states: list[Any], measured: int, tokens: int) -> int:
    """Bytes of the keys and values the caches' attention layers hold at ``tokens``, from one pass over
    ``measured`` tokens: per token (bytes / rows held) times min(tokens, cap), the cap W − 1 of a sliding
    layer (transformers keeps the last W − 1) and none for a full one. Checked: each layer held exactly
    min(measured, cap) rows; any other layer kind is refused."""
    from transformers.cache_utils import DynamicSlidingWindowLayer

    from estimator.validate.cache_walk import GROWING_NAMES, tensor_bytes
    from estimator.validate.shrunk import SCALED_LAYERS

    total = 0
    for state in states:
        for index, layer in enumerate(getattr(state, "layers", None) or []):
            present = (getattr(layer, name, None) for name in sorted(GROWING_NAMES))
            held = [tensor for tensor in present if tensor is not None and tensor.numel()]
            if not held:
                continue
            if type(layer).__name__ not in SCALED_LAYERS:
                raise EstimatorError(f"its cache layer {index} ({type(layer).__name__}) is not extrapolated here")
            cap = layer.sliding_window - 1 if isinstance(layer, DynamicSlidingWindowLayer) else tokens
            for tensor in held:
                rows = int(tensor.shape[-2])
                if rows != min(measured, cap):
                    raise EstimatorError(
                        f"its cache layer {index} holds {rows} tokens after {measured}; not extrapolated"
                    )
                total += tensor_bytes(tensor) // rows * min(tokens, cap)
    return total


def _bookkeeping_note(bookkeeping: dict[str, int], note: str) -> str:
    """Say which integer tensors were listed and left out of the cache bytes."""
    if not bookkeeping:
        return note
    names = sorted({path.rsplit(".", 1)[-1].split("[")[0] for path in bookkeeping})
    said = (f"{len(bookkeeping)} integer tensors ({', '.join(names)}; {sum(bookkeeping.values()):,} bytes) are "
            "bookkeeping (window sizes, counters), not cache, and are not counted")  # fmt: skip
    return f"{note}; {said}" if note else said


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


def whole_model_params_measured(config: dict[str, Any]) -> tuple[int, str]:
    """(parameters, the class built) of a whole multimodal checkpoint: the class its ``architectures`` names
    (else ``AutoModelForImageTextToText``) built from the config on the meta device, its parameters counted
    as ``parameters()`` does (a tied head once)."""
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
