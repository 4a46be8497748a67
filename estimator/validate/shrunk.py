"""The cache of a model fake tensors cannot run, measured on a shrunk copy with real tensors and scaled up.

Some forward passes cannot run under ``FakeTensorMode``: routing that asks for data (``nonzero``,
``.item()``: DBRX, JetMoE), modules that cannot be moved to fake tensors. Their cache is measured here on
a copy with the same widths and fewer layers: for each kind of layer (its values in every list of the config
with one entry per layer: ``layer_types``, ``mlp_layer_types``, ``indexer_types``...; else one kind), its first
two layers are kept, every per-layer list of the config cut to the same layers, the vocabulary cut
to 1,024. One real forward
pass over t = 16 tokens (zero weights and buffers: values do not change a cache's shape) gives each cache layer's
bytes; then

- each kept layer of a kind must hold the same bytes as the other (else refused);
- a layer's keys and values scale from t to T tokens as per-token bytes × min(T, cap), the cap W − 1 for a
  sliding layer (transformers keeps the last W − 1) and none for a full one (checked: min(t, cap) rows held);
- its convolution and recurrent states are fixed;
- the full model's cache is the sum over its layers of its kind's bytes (linear in layers per kind;
  ``tests/test_measured_path.py`` checks this against the full-size fake-tensor measurement).

Anything else the cache holds (state outside ``layers``, state on modules, another layer class) is
refused in one line.
"""

from __future__ import annotations

from typing import Any

from estimator.errors import EstimatorError

SHRUNK_TOKENS = 16  # the real forward pass: long enough to see each layer's rows, short enough to be quick
KEPT_PER_KIND = 2  # layers of each kind kept: two, so that each kind is seen to repeat exactly
# transformers' dynamic layers whose keys and values hold every token (full) or the last W - 1 (a subclass of
# DynamicSlidingWindowLayer); the linear-attention hybrids keep their fixed states beside them.
SCALED_LAYERS = ("DynamicLayer", "DynamicIndexedLayer", "DynamicSlidingWindowLayer",
                 "LinearAttentionAndFullAttentionLayer", "LinearAttentionAndSlidingWindowAttentionLayer")  # fmt: skip
# the axis of held tokens: keys and values (batch, heads, T, d); indexer keys (batch, T, d); indexer positions
# (position dims, batch, T)
TOKEN_AXIS = {"keys": -2, "values": -2, "indexer_keys": -2, "indexer_position_ids": -1}
SHRUNK_VOCAB = 1024  # the copy's vocabulary: the cache does not depend on it (tested with a larger one)
MAX_SHRUNK_PARAMS = 2 * 10**9  # real weights of the shrunk copy (bf16: 4 GB, within the child's 8 GiB); beyond, refused


def kept_layers(kinds: list[str]) -> list[int]:
    """Indices of the first ``KEPT_PER_KIND`` layers of each kind, in order (kinds a, b, a, b, a, b -> 0-3)."""
    seen: dict[str, int] = {}
    kept = []
    for index, kind in enumerate(kinds):
        if seen.get(kind, 0) < KEPT_PER_KIND:
            seen[kind] = seen.get(kind, 0) + 1
            kept.append(index)
    return kept


def shrunk_fields(fields: dict[str, Any], layers: int, kept: list[int]) -> dict[str, Any]:
    """The config's fields for the copy: ``len(kept)`` layers, every list of one entry per layer cut to ``kept``;
    a vocabulary over ``SHRUNK_VOCAB`` cut to it, token ids beyond it moved to its last id (the input is token
    0; the embedding's and the head's rows are not cache)."""
    shrunk: dict[str, Any] = {
        key: [value[i] for i in kept] if isinstance(value, list) and len(value) == layers else value
        for key, value in fields.items()
    }
    shrunk["num_hidden_layers"] = len(kept)
    vocab = shrunk.get("vocab_size")
    if isinstance(vocab, int) and vocab > SHRUNK_VOCAB:
        shrunk["vocab_size"] = SHRUNK_VOCAB
        for key, value in shrunk.items():
            if key.endswith(("_token_id", "_token_index", "_token_ids")):
                shrunk[key] = _within(value)
    return shrunk


def _within(value: Any) -> Any:
    """A token id (or a list of them) moved below ``SHRUNK_VOCAB`` where it is not."""
    if isinstance(value, list):
        return [_within(v) for v in value]
    return SHRUNK_VOCAB - 1 if isinstance(value, int) and value >= SHRUNK_VOCAB else value


def layer_bytes(layer: Any, measured: int, tokens: int) -> tuple[int, int, int]:
    """(growing at ``tokens``, fixed, bookkeeping) bytes of one cache layer measured after ``measured`` tokens."""
    from transformers.cache_utils import DynamicSlidingWindowLayer

    from estimator.validate.cache_walk import classify, walk

    found = classify(walk(layer))
    others = sorted(set(found.growing) - set(TOKEN_AXIS))
    if others:
        raise EstimatorError(f"its cache layers hold {', '.join(others)}, not scaled to {tokens:,} tokens here")
    growing = 0
    if found.growing:
        if type(layer).__name__ not in SCALED_LAYERS:
            raise EstimatorError(f"its cache layer ({type(layer).__name__}) is not scaled to {tokens:,} tokens here")
        cap = layer.sliding_window - 1 if isinstance(layer, DynamicSlidingWindowLayer) else max(measured, tokens)
        for name, axis in TOKEN_AXIS.items():
            tensor = getattr(layer, name, None)
            if tensor is None or not tensor.numel():
                continue
            rows = int(tensor.shape[axis])
            if rows != min(measured, cap):
                raise EstimatorError(f"a cache layer holds {rows} tokens after {measured}; not scaled up")
            growing += found.growing[name] // rows * min(tokens, cap)
    return growing, found.fixed_bytes, sum(found.bookkeeping.values())


def shrunk_cache(fields: dict[str, Any], tokens: int, torch_dtype: Any) -> tuple[int, int, str]:
    """(growing, fixed) bytes of the full model's cache at ``tokens``, and a note: measured on a shrunk copy
    with real tensors (see the module docstring)."""
    import torch
    import transformers

    from estimator.validate.cache_walk import module_state, module_tensors
    from estimator.validate.measure import _quiet, build_from_config

    rest = {k: v for k, v in fields.items() if k != "model_type"}
    with _quiet():
        config = transformers.AutoConfig.for_model(fields["model_type"], **rest)
    text = config.get_text_config()  # a wrapper's layers are its language model's
    layers = int(text.num_hidden_layers)
    per_layer = {k: v for k, v in text.to_dict().items() if isinstance(v, list) and len(v) == layers}
    kinds = [" ".join(str(per_layer[k][i]) for k in sorted(per_layer)) or "layer" for i in range(layers)]
    kept = kept_layers(kinds)
    if text is config:
        small = shrunk_fields({**fields, **per_layer}, layers, kept)
    else:
        small = {**fields, "text_config": shrunk_fields({**text.to_dict(), **per_layer}, layers, kept)}
    model = build_from_config(small, device="meta", dtype=torch_dtype)
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_SHRUNK_PARAMS:
        raise EstimatorError(
            f"fake tensors cannot run it, and its shrunk copy ({len(kept)} layers) has {count:,} parameters, "
            f"over the {MAX_SHRUNK_PARAMS:,} measured with real tensors here"
        )
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.zero_()  # integer tables too (a hash router's): to_empty leaves them as garbage indices
    before = module_tensors(model)
    with _quiet(), torch.no_grad():
        out = model(input_ids=torch.zeros((1, SHRUNK_TOKENS), dtype=torch.long), use_cache=True)
    cache = out.get("cache", None) if hasattr(out, "get") else None
    cache_layers = getattr(cache, "layers", None)
    if not isinstance(cache_layers, list) or len(cache_layers) != len(kept) or module_state(model, before):
        raise EstimatorError(
            "fake tensors cannot run it, and its shrunk copy keeps state outside one cache layer per layer; "
            "not scaled up"
        )
    outside = [k for k, v in vars(cache).items() if k != "layers" and isinstance(v, torch.Tensor | list | dict) and v]
    if outside:
        raise EstimatorError(f"its cache keeps state beside its layers ({', '.join(outside)}); not scaled up")
    per_kind: dict[str, tuple[int, int]] = {}
    bookkeeping = 0
    for position, layer in zip(kept, cache_layers, strict=True):
        growing, fixed, counters = layer_bytes(layer, SHRUNK_TOKENS, tokens)
        bookkeeping += counters
        if per_kind.setdefault(kinds[position], (growing, fixed)) != (growing, fixed):
            raise EstimatorError(
                f"two {kinds[position]} layers of its shrunk copy hold different caches; not scaled up"
            )
    growing = sum(per_kind[kind][0] for kind in kinds)
    fixed = sum(per_kind[kind][1] for kind in kinds)
    named = (
        ", ".join(f"{kinds.count(k)} {k}" for k in per_kind)
        if per_layer
        else (f"{layers} (taken alike: its config lists nothing per layer)")
    )
    note = (
        f"fake tensors cannot run its forward pass: measured with real tensors on a copy of {len(kept)} layers "
        f"({KEPT_PER_KIND} of each kind, same widths, vocabulary at most {SHRUNK_VOCAB:,}) over {SHRUNK_TOKENS} "
        f"tokens, each layer's keys and values scaled to {tokens:,} tokens by its window, and summed over its "
        f"{named} layers"
    )
    if bookkeeping:
        note += "; integer tensors (window sizes, counters) are bookkeeping, not counted"
    return growing, fixed, note
