"""The cache of a model no family knows, measured from transformers: one forward pass at full size under fake
tensors, or a shrunk copy with real tensors where fake tensors cannot run it; every tensor of the returned
cache (and of states kept outside it) classified, bookkeeping listed, nothing dropped
(:mod:`estimator.validate.cache_walk`). Used by :mod:`estimator.validate.unknown`; torch only inside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError

if TYPE_CHECKING:
    from estimator.units import DType


def _first_line(error: BaseException, limit: int = 200) -> str:
    """The error's first line, at most ``limit`` characters (transformers lists every model type it knows)."""
    from estimator.checkpoint.files import printable

    text = str(error).strip().splitlines()
    return printable(text[0], limit) if text else type(error).__name__


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
