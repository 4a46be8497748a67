"""Every tensor a transformers forward pass leaves behind as state, found and classified, none dropped.

The measured path (:mod:`estimator.validate.unknown`) sums what these functions find. A tensor is found
wherever the model keeps it:

- in the returned cache object, walked whole (its ``layers`` and anything beside them: MiniMax keeps its
  lightning-attention states in ``linear_cache``, xLSTM its states in ``rnn_state``), or in a returned
  state (RWKV's ``state``: five tensors per layer stacked);
- on the model's modules, set during the forward pass (RecurrentGemma keeps its attention window, its
  convolution and its RG-LRU states on the layers themselves).

Each tensor is then one of:

- **growing**: keys, values and indexer keys of an attention cache layer (one row per held token);
- **fixed**: a convolution or recurrent state, a lightning-attention state, a model-specific recurrent
  state (RWKV, xLSTM, RecurrentGemma; checked fixed by measuring at two lengths);
- **bookkeeping**: an integer or boolean tensor of at most 8 elements (a sliding layer's window
  ``_sliding_window_tensor``, a token counter such as xLSTM's ``seqlen_offset``): listed, not counted as
  cache bytes (a quantised layer's packed ``_quantized_keys`` and an indexer's ``indexer_position_ids`` are
  counted as growing, whatever their dtype);
- anything else: refused by name (:class:`UnclassifiedStateError`), never guessed at and never dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from estimator.errors import EstimatorError

GROWING_NAMES = {"keys", "values", "indexer_keys"}  # transformers' attention cache layers
GROWING_OTHER = {"_quantized_keys", "_quantized_values", "indexer_position_ids"}  # packed, or integer, per token
MAX_BOOKKEEPING_ELEMENTS = 8  # a window size, a token counter: a scalar or a few; larger integer tensors are data
FIXED_NAMES = {"conv_states", "recurrent_states", "linear_cache", "rnn_state", "state"}  # whole containers
MODULE_STATE_NAMES = {"key_states", "value_states", "conv1d_state", "recurrent_states"}  # RecurrentGemma
MAX_DEPTH = 8  # a cache nests layers -> dict -> tensor; deeper is not a cache


class UnclassifiedStateError(EstimatorError):
    """The model keeps a float tensor this module does not know how to count."""


@dataclass
class Found:
    """The tensors of one forward pass's state, by the path that reaches each, in three kinds."""

    growing: dict[str, int] = field(default_factory=dict)  # path -> bytes
    fixed: dict[str, int] = field(default_factory=dict)
    bookkeeping: dict[str, int] = field(default_factory=dict)

    @property
    def growing_bytes(self) -> int:
        return sum(self.growing.values())

    @property
    def fixed_bytes(self) -> int:
        return sum(self.fixed.values())

    def shapes(self) -> dict[str, int]:
        """Every counted tensor's bytes by path (to compare two measurements)."""
        return {**self.growing, **self.fixed}


def tensor_bytes(tensor: Any) -> int:
    """numel × element size: the bytes a tensor's elements take (a fake tensor reports its true shape)."""
    return int(tensor.numel() * tensor.element_size())


def walk(root: Any, path: str = "", depth: int = 0, seen: set[int] | None = None) -> list[tuple[str, Any]]:
    """Every tensor reachable from ``root`` through attributes, lists, tuples and dicts, with its path
    (``layers[3].keys``, ``linear_cache[0]``); modules and configs are not entered (they hold weights and
    settings, not state)."""
    import torch

    seen = set() if seen is None else seen
    if id(root) in seen or depth > MAX_DEPTH:
        return []
    seen.add(id(root))
    if isinstance(root, torch.Tensor):
        return [(path, root)]
    if isinstance(root, torch.nn.Module) or type(root).__name__.endswith("Config"):
        return []
    if isinstance(root, dict):
        items: list[tuple[str, Any]] = [(f"{path}[{k!r}]" if not isinstance(k, int) else f"{path}[{k}]", v)
                                        for k, v in root.items()]  # fmt: skip
    elif isinstance(root, list | tuple):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(root)]
    elif hasattr(root, "__dict__") and not isinstance(root, type):
        items = [(f"{path}.{k}" if path else k, v) for k, v in vars(root).items()]
    else:
        return []
    found: list[tuple[str, Any]] = []
    for where, value in items:
        found += walk(value, where, depth + 1, seen)
    return found


def _names(path: str) -> list[str]:
    return re.findall(r"[A-Za-z_]\w*", path)


def classify(tensors: list[tuple[str, Any]], fixed_root: bool = False) -> Found:
    """Sort tensors into growing, fixed and bookkeeping by the names on their path; a float tensor no name
    accounts for raises :class:`UnclassifiedStateError`. ``fixed_root``: every float tensor is a recurrent state
    (a returned state such as RWKV's, or a model-specific cache checked fixed by the caller)."""
    found = Found()
    unknown: list[str] = []
    for path, tensor in tensors:
        size = tensor_bytes(tensor)
        names = set(_names(path))
        if names & GROWING_OTHER:
            found.growing[path] = size
        elif not (tensor.is_floating_point() or tensor.is_complex()):
            if tensor.numel() > MAX_BOOKKEEPING_ELEMENTS:
                unknown.append(path)
            else:
                found.bookkeeping[path] = size
        elif names & GROWING_NAMES and not names & FIXED_NAMES:
            found.growing[path] = size
        elif fixed_root or names & FIXED_NAMES:
            found.fixed[path] = size
        else:
            unknown.append(path)
    if unknown:
        shown = ", ".join(unknown[:4]) + (f" and {len(unknown) - 4} more" if len(unknown) > 4 else "")
        raise UnclassifiedStateError(f"its cache holds tensors not measured here ({shown}); none is guessed at")
    return found


def module_tensors(model: Any) -> dict[str, int]:
    """id of each plain tensor attribute on the model's modules (not parameters, not buffers), by path."""
    import torch

    held: dict[str, int] = {}
    for name, module in model.named_modules():
        for key, value in vars(module).items():
            if isinstance(value, torch.Tensor):
                held[f"{name}.{key}" if name else key] = id(value)
    return held


def module_state(model: Any, before: dict[str, int]) -> list[tuple[str, Any]]:
    """The plain tensor attributes of the model's modules that the forward pass set (new, or replaced)."""
    import operator

    after = module_tensors(model)
    changed = [path for path, ident in after.items() if before.get(path) != ident]
    return [(path, operator.attrgetter(path)(model)) for path in changed]


def check_module_state(state: list[tuple[str, Any]]) -> None:
    """Refuse module state whose names are not RecurrentGemma's (a window, a convolution, an RG-LRU state)."""
    odd = [path for path, _ in state if _names(path)[-1] not in MODULE_STATE_NAMES]
    if odd:
        shown = ", ".join(odd[:4]) + (f" and {len(odd) - 4} more" if len(odd) > 4 else "")
        raise UnclassifiedStateError(f"its layers keep tensors not measured here ({shown}); none is guessed at")
