"""Words for an :class:`~estimator.compare.Estimate`: the model line, the crossover and parity lines,
and every assumption behind the numbers. Pure text building; nothing here prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from estimator.layout import ExpertLayout
from estimator.present.cache_words import cache_words
from estimator.query.vocabulary import Method
from estimator.stores import STORES
from estimator.stores.peft_rules import peft_conventions
from estimator.units import format_bytes

if TYPE_CHECKING:
    from estimator.compare import Crossover, Estimate
    from estimator.query import Query


def model_line(est: Estimate) -> str:
    """One line: name, exact parameters, the shape that sets the KV cache, the dtypes."""
    spec = est.spec
    heads = (
        f"{spec.num_attention_heads} query / {spec.num_key_value_heads} KV heads, head_dim {spec.head_dim}"
        if spec.num_attention_heads
        else "no attention (a recurrent state only)"
    )
    dtypes = {est.kv.dtype, est.adapter_dtype, est.weights_dtype}
    dtype_words = (
        next(iter(dtypes)).value
        if len(dtypes) == 1
        else f"KV {est.kv.dtype.value}, adapter {est.adapter_dtype.value}, weights {est.weights_dtype.value}"
    )
    moe = ""
    if spec.n_routed_experts is not None:
        moe = (
            f" ({est.active_params:,} active per token: {spec.num_experts_per_tok} of {spec.n_routed_experts} experts)"
        )
    return (
        f"{spec.display_name} ({spec.name}): {est.params:,} parameters{moe}, {spec.num_hidden_layers} layers, "
        f"{heads}, hidden {spec.hidden_size:,}; {dtype_words}{part_words(est)}"
    )


def part_words(est: Estimate) -> str:
    """Which part of a multimodal checkpoint is counted (--part), for the model line; nothing for a text model."""
    return query_part_words(est.query)


def query_part_words(query: Query) -> str:
    """:func:`part_words` of a query, for every answer's first line (the headline, serve-memory, train-memory):
    '; whole model (language model 27,009,346,304 + ...); the KV cache and adapters are the language model's'
    under --part all, '; language model of a multimodal checkpoint; --part all for the whole model' for a
    wrapper's language model, nothing for a text model."""
    from estimator.families.towers import is_wrapper_language_model

    if query.part == "all" and query.whole_model[1]:
        return f"; whole model ({query.whole_model[2]}); the KV cache and adapters are the language model's"
    if is_wrapper_language_model(query.spec.notes):
        return "; language model of a multimodal checkpoint; --part all for the whole model"
    return ""


def part_counted(query: Query) -> str:
    """The JSON's ``part_counted``: :func:`query_part_words` without its '; ', or 'whole model = language model'."""
    return query_part_words(query).removeprefix("; ") or "whole model = language model"


def context_warning(est: Estimate) -> str | None:
    """Where T exceeds the context window, one sentence saying so; None otherwise (or with no window)."""
    if not est.beyond_context_window:
        return None
    return (
        f"Warning: {est.tokens:,} tokens exceed {est.spec.display_name}'s context window of "
        f"{est.context_window_tokens:,} tokens; the KV figures are those of a cache that long."
    )


def headline_line(est: Estimate) -> str:
    """The line under the model's: what is learned, with the context-window warning where T exceeds it."""
    from estimator.units import format_tokens_short

    line = (
        f"Learning {est.tokens:,} tokens ({format_tokens_short(est.tokens)}) of new text: bytes each way of storing it"
    )
    warning = context_warning(est)
    return line if warning is None else f"{line}. {warning}"


def _experts_words(est: Estimate) -> list[str]:
    spec = est.spec
    if spec.n_routed_experts is None:
        return []
    layout = est.query.experts
    how = {
        ExpertLayout.per_expert: "per expert (each expert's gate, up and down a linear map, as in the checkpoints, "
        "vLLM and transformers < 5); routers adapted where they are nn.Linear",
        ExpertLayout.fused: (
            "as peft 0.21 adapts transformers >= 5's fused 3-D expert tensors for all-linear: gate_up at rank 2r, "
            "down at r, the router weight at r; peft moves the names gate_proj, up_proj and down_proj to the "
            "experts, so dense and shared MLPs of those names keep no adapter"
            if peft_conventions(spec).converts_experts
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


def crossover_words(crossing: Crossover, adapter_bytes: int, adapter: str = "LoRA") -> str:
    """Where the cache meets an adapter of ``adapter_bytes``, or why it never does, in one sentence.

    Qwen3-Next-80B-A3B, r = 16 on q_proj, v_proj: its fixed state (39,518,208 bytes) is 8.0x the adapter
    (4,915,200), so "No crossover: the cache exceeds the adapter from the first token"."""
    from estimator.present.tables import format_ratio  # reasons by value: compare imports these words

    size = format_bytes(adapter_bytes)
    if crossing.reason == "state-exceeds":
        return (
            f"No crossover: the cache exceeds the adapter from the first token (its fixed state alone, "
            f"{format_bytes(crossing.state_bytes)}, is {format_ratio(crossing.state_multiple or 0.0)} the "
            f"{adapter}'s {size}), so the {adapter} is the smaller store at any length."
        )
    if crossing.reason == "never-reaches":
        ceiling = crossing.ceiling_bytes or 0
        why = (
            f"the model keeps any text in a fixed state of {ceiling:,} bytes"
            if ceiling == crossing.state_bytes
            else f"the sliding windows cap the KV cache at {ceiling:,} bytes"
            if not crossing.state_bytes
            else f"windows and a fixed state cap the cache at {ceiling:,} bytes"
        )
        return (
            f"Crossover: never; {why}, below the {adapter}'s {adapter_bytes:,}, so the cache is the smaller store "
            f"at any length."
        )
    count = crossing.tokens or 0
    return (
        f"Crossover: the {adapter} ({size}) equals the KV cache at {count:,} token{'s' if count != 1 else ''}; "
        f"beyond that the adapter stores the text in fewer bytes."
    )


def crossover_line(est: Estimate) -> str:
    """The headline's crossover sentence for the query's LoRA (see :func:`crossover_words`); where LoRA is not
    among the rows, the crossing of each trained row that is (its trained bytes against the cache), in one line:
    Llama 3 70B, 100k tokens, r = 32, bf16: "Crossover with the KV cache (trained bytes): VeRA at 42 tokens;
    TinyLoRA at 1 token." (13,470,720 / 327,680 = 41.1 -> 42; 71,680 bytes < 327,680)."""
    chosen = [r for r in est.rows if r.crossover is not None]
    if any(r.method is Method.lora for r in est.rows) or not chosen:
        return crossover_words(est.crossover, est.lora_bytes)

    def when(c: Crossover) -> str:
        if c.tokens is not None:
            return f"at {c.tokens:,} token{'s' if c.tokens != 1 else ''}"
        return "never (the cache stays below it)" if c.reason == "never-reaches" else "never (the state exceeds it)"

    named = [f"{getattr(STORES[r.method], 'title', r.method.value)} {when(r.crossover)}" for r in chosen if r.crossover]
    return "Crossover with the KV cache (trained bytes; LoRA not chosen): " + "; ".join(named) + "."


def holding_line(est: Estimate) -> str | None:
    """Where the cache cannot hold the text: what it holds instead, in place of a storage rate."""
    if est.holds_all_tokens:
        return None
    return (
        f"The cache holds only the last {est.tokens_held:,} of the {est.tokens:,} tokens (every layer keeps at most "
        f"a window): it does not store the text, so no bytes per token of text, ratio or parity rank is given "
        f"for it; the adapters' own rows stand."
    )


def parity_line(est: Estimate) -> str:
    line = (
        f"Parity rank at {est.tokens:,} tokens: r = {est.parity_rank:,} holds as many bytes as the KV cache "
        f"({format_bytes(est.kv_cache_bytes)}): {est.parity_lora_params:,} parameters, "
        f"{est.parity_fraction_of_model_params:.1%} of the model's."
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
    words = [*cache_words(est), *_experts_words(est)]
    stated_later = (Method.pretraining,)  # after the notes on trained parameters, as the table's last row
    words += [w for r in est.rows if r.method not in stated_later and (w := STORES[r.method].assumption(est.query))]
    trained = [row for row in est.rows if row.params is not None and row.method is not Method.pretraining]
    if trained:
        words.append(
            f"Trained parameters are stored in {est.adapter_dtype.value} ({est.adapter_dtype.bits // 8} bytes each); "
            "no optimizer state, no base weights."
        )
    words += [f"{method.value}: {why}" for method, why in est.skipped]
    if Method.pretraining in est.methods and (w := STORES[Method.pretraining].assumption(est.query)):
        words.append(w)
    if est.kv_method_rows:
        from estimator.present import frontier

        words += frontier.assumptions(est)
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
