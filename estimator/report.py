"""Words and rows for an :class:`~estimator.compare.Estimate`: the assumptions, the table, the CSV.

Pure text building, shared by the CLI's table, JSON and CSV outputs; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from estimator.compare import Estimate
from estimator.kv import KV_TENSORS, transformers_kv_heads
from estimator.units import format_bytes, format_number, format_tokens_short


@dataclass(frozen=True)
class Row:
    """One way of storing the text: its size and what it costs per token of that text."""

    mechanism: str
    params: int | None
    bytes: int
    bytes_per_token: float
    kv_ratio: float


def rows(est: Estimate) -> list[Row]:
    """KV cache, LoRA and (when the token count is known) pretraining, in that order."""
    kv = est.kv_bytes_per_token
    out = [
        Row(f"in context (KV cache, {est.kv_dtype.value})", None, est.kv_cache_bytes, kv, 1.0),
        Row(
            f"LoRA r={est.rank}, {est.targets.label} ({est.adapter_dtype.value})",
            est.lora_params,
            est.lora_bytes,
            est.lora_bytes_per_token,
            est.ratio,
        ),
    ]
    pretraining = est.pretraining_bytes_per_token
    if pretraining is not None and est.pretraining_tokens is not None:
        label = f"pretraining ({format_tokens_short(est.pretraining_tokens)} tok, {est.weights_dtype.value})"
        out.append(Row(label, est.params, est.weights_bytes, pretraining, kv / pretraining))
    return out


def format_table(headers: list[str], body: list[list[str]], right: set[int]) -> str:
    """Plain aligned columns (two spaces apart); columns in ``right`` are right-aligned.

    Hand-rolled on purpose: a table library costs the plain query ~50 ms of start-up.
    """
    widths = [max(len(line[i]) for line in [headers, *body]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return "  ".join(padded).rstrip()

    return "\n".join(line(cells) for cells in [headers, *body])


def estimate_table(est: Estimate) -> str:
    """The headline table: one row per way of storing the text."""
    headers = ["stored as", "parameters", "bytes", "size (SI)", "bytes / token", "KV ÷ this"]
    body = [
        [
            row.mechanism,
            "—" if row.params is None else f"{row.params:,}",
            f"{row.bytes:,}",
            format_bytes(row.bytes),
            format_number(row.bytes_per_token),
            format_ratio(row.kv_ratio),
        ]
        for row in rows(est)
    ]
    return format_table(headers, body, right={1, 2, 3, 4, 5})


def format_ratio(ratio: float) -> str:
    """``39.6x`` below 100, whole numbers with separators above."""
    return f"{ratio:.1f}x" if ratio < 100 else f"{ratio:,.0f}x"


def model_line(est: Estimate) -> str:
    """One line: name, exact parameters, the shape that sets the KV cache, the dtypes."""
    spec = est.spec
    heads = f"{spec.num_attention_heads} query / {spec.num_key_value_heads} KV heads"
    dtypes = {est.kv_dtype, est.adapter_dtype, est.weights_dtype}
    dtype_words = (
        next(iter(dtypes)).value
        if len(dtypes) == 1
        else f"KV {est.kv_dtype.value}, adapter {est.adapter_dtype.value}, weights {est.weights_dtype.value}"
    )
    return (
        f"{spec.display_name} ({spec.name}): {est.params:,} parameters, {spec.num_hidden_layers} layers, {heads}, "
        f"head_dim {spec.head_dim}, hidden {spec.hidden_size:,}; {dtype_words}"
    )


def _kv_words(est: Estimate) -> list[str]:
    spec = est.spec
    bytes_per_element = est.kv_dtype.bits / 8
    formula = (
        f"KV cache: {KV_TENSORS} (K and V) × {spec.num_hidden_layers} layers × {spec.num_key_value_heads} KV heads"
        f" × {spec.head_dim} head_dim × {bytes_per_element:g} bytes ({est.kv_dtype.value}) = "
        f"{est.kv_bytes_per_token_unbounded:,} bytes per cached token; one sequence, no paging or allocator overhead."
    )
    words = [formula]
    held = transformers_kv_heads(spec)
    if held != spec.num_key_value_heads:
        words.append(
            f"transformers' {spec.model_type} code caches K and V broadcast to all {held} query heads, "
            f"{held // spec.num_key_value_heads}x this; the architecture (and serving engines) need only "
            f"{spec.num_key_value_heads} KV heads, which is what is counted here."
        )
    windows = spec.layer_windows()
    windowed = [w for w in windows if w is not None]
    if windowed:
        widths = ", ".join(f"{w:,}" for w in sorted(set(windowed)))
        words.append(
            f"Sliding window of {widths} tokens on {len(windowed)} of {len(windows)} layers: such a layer holds "
            f"min(T, window) tokens (a ring buffer of the window), so at {est.tokens:,} tokens the cache holds "
            f"{est.kv_cache_bytes:,} bytes, {format_number(est.kv_bytes_per_token)} bytes per token of text."
        )
    return words


def _lora_words(est: Estimate) -> list[str]:
    names = ", ".join(linear.short_name for linear in est.targets.linears)
    layers = sorted({linear.layers for linear in est.targets.linears})
    where = f"each of {layers[0]} layers" if len(layers) == 1 else "their layers"
    return [
        f"LoRA: r × (d_in + d_out) parameters per targeted map (A is r × d_in, B is d_out × r) on {names} in "
        f"{where} (targets: {est.targets.label}; lm_head and embeddings are never targeted, as in peft); "
        f"stored in {est.adapter_dtype.value} ({est.adapter_dtype.bits // 8} bytes per parameter); "
        f"no optimizer state, no base weights."
    ]


def _pretraining_words(est: Estimate) -> list[str]:
    spec = est.spec
    if est.pretraining_tokens is None:
        return [f"Pretraining: no published token count for {spec.display_name}; pass --pretraining-tokens."]
    source = spec.pretraining_tokens_source if est.pretraining_tokens == spec.pretraining_tokens else None
    return [
        f"Pretraining: all {est.params:,} parameters in {est.weights_dtype.value} ({format_bytes(est.weights_bytes)})"
        f" over {format_tokens_short(est.pretraining_tokens)} tokens"
        + (f" (source: {source})." if source else " (given by --pretraining-tokens).")
    ]


def crossover_line(est: Estimate) -> str:
    if est.crossover_tokens is None:
        return (
            f"Crossover: never; the sliding windows cap the KV cache below the LoRA's "
            f"{est.lora_bytes:,} bytes, so the cache is the smaller store at any length."
        )
    return (
        f"Crossover: the LoRA ({format_bytes(est.lora_bytes)}) equals the KV cache at "
        f"{est.crossover_tokens:,} tokens; beyond that the adapter stores the text in fewer bytes."
    )


def parity_line(est: Estimate) -> str:
    line = (
        f"Parity rank at {est.tokens:,} tokens: r = {est.parity_rank:,} holds as many bytes as the KV cache "
        f"({format_bytes(est.kv_cache_bytes)}): {est.parity_params:,} parameters, "
        f"{est.parity_fraction_of_params:.1%} of the model's."
    )
    full = est.targets.smallest_full_rank
    if est.parity_rank > full:
        line += (
            f" That is beyond the full rank of {', '.join(est.targets.narrowest())} ({full:,}), where a LoRA stops "
            f"adding expressiveness."
        )
    return line


def assumptions(est: Estimate) -> list[str]:
    """Every assumption behind the numbers, in words, in the order of the table."""
    spec = est.spec
    words = [*_kv_words(est), *_lora_words(est), *_pretraining_words(est)]
    if est.tokens > spec.max_position_embeddings:
        words.append(
            f"{est.tokens:,} tokens exceed {spec.display_name}'s context window of "
            f"{spec.max_position_embeddings:,} tokens: the KV figures are those of a cache that long."
        )
    if est.beyond_full_rank:
        words.append(
            f"Rank {est.rank:,} is beyond the full rank of {', '.join(est.targets.narrowest())} "
            f"({est.targets.smallest_full_rank:,}): those maps gain parameters but no expressiveness."
        )
    words.append(
        "Parameters are counted as transformers' parameters() does (a tied output head once). "
        "Sizes: GB = 10^9 bytes (SI), GiB = 2^30 bytes (IEC)."
    )
    words.extend(f"Spec note: {note}" for note in spec.notes)
    return words
