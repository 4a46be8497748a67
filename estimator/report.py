"""Words and rows for an :class:`~estimator.compare.Estimate`: the assumptions, the table, the CSV.

Pure text building, shared by the CLI's table, JSON and CSV outputs; nothing here prints.
"""

from __future__ import annotations

from dataclasses import replace

from estimator.compare import Estimate
from estimator.kv import KV_TENSORS, MlaCache, WindowCache, kv_bytes_per_token, kv_vectors, transformers_kv_heads
from estimator.layout import PEFT_CONVERTS, ExpertLayout
from estimator.methods import Method, ia3_targets
from estimator.units import format_bytes, format_number, format_tokens_short


def method_label(est: Estimate, method: Method) -> str:
    """The table's name for a row."""
    s = est.settings
    match method:
        case Method.kv:
            return f"in context (KV cache, {est.kv.dtype.value})"
        case Method.lora:
            return f"LoRA r={s.rank}, {est.targets.label} ({est.adapter_dtype.value})"
        case Method.dora:
            return f"DoRA r={s.rank}, {est.targets.label}"
        case Method.ia3:
            return "IA3"
        case Method.loreft:
            return f"LoReFT r={s.loreft.rank}"
        case Method.prefix:
            return f"prefix tuning ({s.virtual_tokens} virtual tokens)"
        case Method.prompt:
            return f"prompt tuning ({s.virtual_tokens} virtual tokens)"
        case Method.full:
            return "full fine-tuning"
        case Method.pretraining:
            tokens = format_tokens_short(est.pretraining_tokens or 0)
            return f"pretraining ({tokens} tok, {est.weights_dtype.value})"


def format_table(headers: list[str], body: list[list[str]], right: set[int]) -> str:
    """Plain aligned columns (two spaces apart); columns in ``right`` are right-aligned.

    Hand-rolled on purpose: a table library costs the plain query ~50 ms of start-up.
    """
    widths = [max(len(line[i]) for line in [headers, *body]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return "  ".join(padded).rstrip()

    return "\n".join(line(cells) for cells in [headers, *body])


def format_ratio(ratio: float) -> str:
    """``39.6x`` below 100, whole numbers with separators above, two significant figures below 0.1."""
    if ratio < 0.1:
        return f"{ratio:.2g}x"
    return f"{ratio:.1f}x" if ratio < 100 else f"{ratio:,.0f}x"


def estimate_table(est: Estimate) -> str:
    """The headline table: one row per way of storing the text."""
    headers = ["stored as", "parameters", "bytes", "size (SI)", "bytes / token", "KV ÷ this"]
    body = [
        [
            method_label(est, row.method),
            "—" if row.params is None else f"{row.params:,}",
            f"{row.bytes:,}",
            format_bytes(row.bytes),
            format_number(row.bytes_per_token),
            format_ratio(row.kv_ratio),
        ]
        for row in est.rows
    ]
    return format_table(headers, body, right={1, 2, 3, 4, 5})


def model_line(est: Estimate) -> str:
    """One line: name, exact parameters, the shape that sets the KV cache, the dtypes."""
    spec = est.spec
    heads = f"{spec.num_attention_heads} query / {spec.num_key_value_heads} KV heads"
    dtypes = {est.kv.dtype, est.adapter_dtype, est.weights_dtype}
    dtype_words = (
        next(iter(dtypes)).value
        if len(dtypes) == 1
        else f"KV {est.kv.dtype.value}, adapter {est.adapter_dtype.value}, weights {est.weights_dtype.value}"
    )
    moe = ""
    if spec.is_moe:
        moe = (
            f" ({est.active_params:,} active per token: {spec.num_experts_per_tok} of {spec.n_routed_experts} experts)"
        )
    return (
        f"{spec.display_name} ({spec.name}): {est.params:,} parameters{moe}, {spec.num_hidden_layers} layers, "
        f"{heads}, head_dim {spec.head_dim}, hidden {spec.hidden_size:,}; {dtype_words}"
    )


def _kv_words(est: Estimate) -> list[str]:
    spec, kv = est.spec, est.kv
    per_token = est.kv_bytes_per_token_unbounded
    storage = kv.describe()
    bits = kv.vector_bits(spec.head_dim) / spec.head_dim
    if spec.is_mla:
        vectors = " + ".join(f"{count} × {length}" for count, length in kv_vectors(spec, kv.mla))
        form = (
            "the latent vector (kv_lora_rank + qk_rope_head_dim)"
            if kv.mla is MlaCache.latent
            else ("per-head keys (qk_nope + qk_rope) and values (v_head_dim)")
        )
        formula = (
            f"KV cache (multi-head latent attention, {kv.mla.value}): {spec.num_hidden_layers} layers × ({vectors}) "
            f"elements of {form} in {storage} = {format_number(per_token)} bytes per cached token."
        )
        other = MlaCache.expanded if kv.mla is MlaCache.latent else MlaCache.latent
        alt = kv_bytes_per_token(spec, replace(kv, mla=other))
        formula += (
            f" The {other.value} form (--mla-cache {other.value}) holds {format_number(alt)} bytes per token; "
            "serving engines (vLLM, SGLang) and transformers >= 5 keep the latent form, a naive implementation "
            "(and transformers 4.x) the expanded one."
        )
    else:
        element = f"{bits:g} bits" if kv.quantised else f"{kv.dtype.bits / 8:g} bytes"
        formula = (
            f"KV cache: {KV_TENSORS} (K and V) × {spec.num_hidden_layers} layers × {spec.num_key_value_heads} KV "
            f"heads × {spec.head_dim} head_dim × {element} ({storage}) = {format_number(per_token)} bytes per "
            "cached token; one sequence, no paging or allocator overhead."
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
        keep = (
            "w tokens (a ring buffer of the window)"
            if kv.window is WindowCache.window
            else ("w − 1 tokens between steps, as transformers does")
        )
        words.append(
            f"Sliding window of {widths} tokens on {len(windowed)} of {len(windows)} layers: such a layer keeps "
            f"{keep} (--window-cache), so at {est.tokens:,} tokens the cache holds {est.kv_cache_bytes:,} bytes, "
            f"{format_number(est.kv_bytes_per_token)} bytes per token of text."
        )
    return words


def _experts_words(est: Estimate) -> list[str]:
    spec = est.spec
    if not spec.is_moe:
        return []
    layout = est.settings.experts
    how = {
        ExpertLayout.per_expert: "per expert (each expert's gate, up and down a linear map, as in the checkpoints, "
        "vLLM and transformers < 5); routers adapted where they are nn.Linear",
        ExpertLayout.fused: (
            "as peft 0.21 adapts transformers >= 5's fused 3-D expert tensors for all-linear: gate_up at rank 2r, "
            "down at r, the router weight at r; peft moves the names gate_proj, up_proj and down_proj to the "
            "experts, so dense and shared MLPs of those names keep no adapter"
            if spec.model_type in PEFT_CONVERTS
            else f"as peft 0.21 leaves them on transformers >= 5 for {spec.model_type}: it converts none of its "
            "expert or router names, so only the nn.Linear modules (attention, shared expert) are adapted"
        ),
        ExpertLayout.none: "left alone: only nn.Linear modules outside the routed experts and routers are adapted",
    }[layout]
    return [
        f"Mixture of experts: {spec.n_routed_experts} routed experts of width {spec.moe_intermediate_size:,} in "
        f"{spec.sparse_layers()} of {spec.num_hidden_layers} layers, {spec.num_experts_per_tok} per token; "
        f"{est.active_params:,} of {est.params:,} parameters active per token (embeddings included). "
        f"Adapters see the experts {how} (--experts {layout.value})."
    ]


def _method_words(est: Estimate, method: Method) -> str | None:
    spec, s = est.spec, est.settings
    match method:
        case Method.lora:
            names = ", ".join(dict.fromkeys(linear.short_name for linear in est.targets.linears))
            layers = sorted({linear.layers for linear in est.targets.linears})
            where = f"each of {layers[0]} layers" if len(layers) == 1 else "their layers"
            return (
                f"LoRA: r × (d_in + d_out) parameters per targeted map (A is r × d_in, B is d_out × r) on {names} in "
                f"{where} (targets: {est.targets.label}; lm_head and embeddings are never targeted, as in peft)."
            )
        case Method.dora:
            return "DoRA: the LoRA plus a magnitude vector of d_out per targeted map (peft's use_dora)."
        case Method.ia3:
            targets, feedforward, peft_default = ia3_targets(spec, s)
            names = ", ".join(dict.fromkeys(linear.short_name for linear in targets.linears))
            source = (
                f"peft's default for {spec.model_type}"
                if peft_default
                else "given by --ia3-targets"
                if s.ia3_targets
                else f"peft has no default for {spec.model_type}: keys, values and down projection, as the IA3 paper"
            )
            ff = ", ".join(sorted(feedforward & {linear.short_name for linear in targets.linears})) or "none"
            return (
                f"IA3: one learned vector per targeted map, of d_out, or of d_in for feed-forward maps ({ff}); "
                f"targets {names} ({source})."
            )
        case Method.loreft:
            return (
                f"LoReFT: 2 · r · d + r parameters per intervention (R and W are r × d, b has r), "
                f"{s.loreft.describe(spec)} (defaults: the paper's commonsense recipe)."
            )
        case Method.prefix:
            return (
                f"Prefix tuning: the KV cache of {s.virtual_tokens} virtual tokens held as parameters, in the form of "
                "the cache row (no reparametrisation MLP)."
            )
        case Method.prompt:
            return f"Prompt tuning: {s.virtual_tokens} virtual token embeddings of hidden_size ({spec.hidden_size:,})."
        case Method.full:
            return f"Full fine-tuning: all {est.params:,} parameters stored again."
    return None


def _pretraining_words(est: Estimate) -> list[str]:
    spec = est.spec
    if Method.pretraining not in est.methods:
        return []
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
    words = [*_kv_words(est), *_experts_words(est)]
    words += [w for row in est.rows if (w := _method_words(est, row.method))]
    trained = [row for row in est.rows if row.params is not None and row.method is not Method.pretraining]
    if trained:
        words.append(
            f"Trained parameters are stored in {est.adapter_dtype.value} ({est.adapter_dtype.bits // 8} bytes each); "
            "no optimizer state, no base weights."
        )
    words += [f"{method.value}: {why}" for method, why in est.skipped]
    words += _pretraining_words(est)
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
    routers = est.targets.routers_beyond_full_rank(est.rank)
    if routers and est.row(Method.lora) is not None:
        words.append(
            f"Rank {est.rank:,} exceeds the full rank of the router {', '.join(routers)}; peft's all-linear adapts it "
            "all the same on per-expert checkpoints, and it is counted as peft counts it."
        )
    words.append(
        "Parameters are counted as transformers' parameters() does (a tied output head once). "
        "Sizes: GB = 10^9 bytes (SI), GiB = 2^30 bytes (IEC)."
    )
    words.extend(f"Spec note: {note}" for note in spec.notes)
    return words


def csv_rows(est: Estimate) -> list[list[object]]:
    """Header and one row per method, raw numbers."""
    header: list[object] = ["mechanism", "method", "params", "bytes", "bytes_per_token", "kv_to_this_ratio", "tokens"]
    body: list[list[object]] = [
        [method_label(est, r.method), r.method.value, "" if r.params is None else r.params, r.bytes,
         r.bytes_per_token, r.kv_ratio, est.tokens]
        for r in est.rows
    ]  # fmt: skip
    return [header, *body]
