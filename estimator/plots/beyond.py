"""Figures 5 and 6: knowledge capacity against information, and when fine-tuning pays for itself."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from estimator.capacity import DEFAULT_TEXT_BITS_PER_TOKEN, fill_tokens, knowledge_capacity_bits
from estimator.compare import Estimate
from estimator.constants import EXPOSURES_FOR_CAPACITY, KNOWLEDGE_BITS_PER_PARAM
from estimator.cost import Breakeven, breakeven, capacity_epochs
from estimator.information import vocabulary_bits
from estimator.plots.style import (
    KV_COLOUR,
    OKABE_ITO,
    RANK_STYLES,
    SMALL_PT,
    add_caption,
    caption,
    legend_below,
    new_figure,
    styled,
    title,
)
from estimator.plots.tokens import DEFAULT_RANKS, token_grid
from estimator.stores.targets import lora_params
from estimator.sweep import kv_cache_bytes_array
from estimator.units import format_flops, format_tokens_approx, format_tokens_short, log_grid

CAPACITY_TOKENS = (1, 10**12)


def capacity_vs_tokens(est: Estimate, ranks: Sequence[int] = DEFAULT_RANKS) -> Figure:
    """Information in T tokens (h · T bits) against the capacity of a LoRA at each rank (c · P bits,
    flat) and of the whole model; each adapter's fill point marked; the KV cache's stored bits for scale."""
    bits_per_param, bits_per_token = KNOWLEDGE_BITS_PER_PARAM.value, DEFAULT_TEXT_BITS_PER_TOKEN
    t = np.asarray(token_grid(*CAPACITY_TOKENS, per_decade=10), dtype=float)
    chosen = sorted({*ranks, est.rank})
    with styled():
        fig, ax = new_figure(3.4)
        ceiling = vocabulary_bits(est.spec.vocab_size)
        ax.fill_between(t, t * bits_per_token, t * ceiling, color=OKABE_ITO["black"], alpha=0.08, linewidth=0)
        ax.plot(
            t,
            t * bits_per_token,
            color=OKABE_ITO["black"],
            label=f"information in the text, {bits_per_token:.2f} to {ceiling:.1f} bits per token",
        )
        ax.plot(
            t,
            kv_cache_bytes_array(est.spec, t.astype(np.int64), est.kv) * 8,
            color=KV_COLOUR,
            linestyle=(0, (1, 1.5)),
            label="bits the KV cache stores",
        )
        for i, rank in enumerate(chosen):
            colour, dashes = RANK_STYLES[i % len(RANK_STYLES)]
            params = lora_params(est.targets, rank)
            bits = knowledge_capacity_bits(params, bits_per_param)
            full = fill_tokens(params, bits_per_param, bits_per_token)
            label = f"LoRA r={rank} capacity, full at {format_tokens_approx(full)} tokens"
            ax.axhline(bits, color=colour, linestyle=dashes, linewidth=1.8 if rank == est.rank else 1.1, label=label)
            ax.plot([full], [bits], "o", color=colour, markersize=3)
        model_bits = knowledge_capacity_bits(est.params, bits_per_param)
        ax.axhline(
            model_bits,
            color=OKABE_ITO["purple"],
            linestyle=(0, (6, 2)),
            linewidth=1.1,
            label="whole model capacity (already used by pretraining)",
        )
        ax.axvline(est.tokens, color="#888888", linewidth=0.6, linestyle=(0, (2, 2)))
        ax.text(
            est.tokens * 1.2, t[0] * bits_per_token * 3, f"T = {format_tokens_short(est.tokens)}", fontsize=SMALL_PT
        )
        ax.set(xscale="log", yscale="log", xlabel="tokens of new text, T", ylabel="bits")
        title(fig, f"{est.spec.display_name}: how much text could an adapter hold?")
        legend_below(ax, ncols=1)
        words = (
            f"Knowledge capacity {bits_per_param:g} bits per parameter (Allen-Zhu & Li 2024, ~1,000 exposures per "
            f"fact, an upper bound for adapters); information from {bits_per_token:.3f} bits per token (1.69 nats, "
            f"Chinchilla's irreducible loss, a reference for typical text, not a floor) to {ceiling:.3f} (log2 of the "
            "vocabulary); capacity (extractable facts) and information (entropy) are different quantities."
        )
        add_caption(fig, f"{caption(est)} {words}")
    return fig


def breakeven_data(est: Estimate) -> tuple[list[Breakeven], np.ndarray[tuple[int], np.dtype[np.int64]]]:
    """The break-even of ``est`` at the defaults for both exposure regimes (1 epoch, and the ~1,000
    exposures behind 2 bits per parameter), and the query counts drawn (1 to past every crossover)."""
    runs = [breakeven(est), breakeven(est, epochs=capacity_epochs(1))]
    crossings = [q for run in runs for q in (run.queries, run.queries_prefix_cached) if q is not None]
    top = max([10, *(10 * q for q in crossings)])
    queries = np.asarray(log_grid(1, top, 200), dtype=np.int64)
    return runs, queries


def breakeven_queries(est: Estimate) -> Figure:
    """Cumulative FLOPs over the number of queries: the text in every prompt, a prefix-cached context, and
    fine-tuning once at 1 epoch and at ~1,000 exposures; each crossing with fine-tuning marked where the
    curves meet."""
    runs, queries = breakeven_data(est)
    result = runs[0]
    q = queries.astype(float)
    icl = q * result.in_context_query_flops
    cached = result.in_context_prefix_cached_once_flops + q * result.in_context_prefix_cached_query_flops
    with styled():
        fig, ax = new_figure(3.4)
        ax.plot(q, icl, color=KV_COLOUR, label="in context, every query")
        ax.plot(q, cached, color=KV_COLOUR, linestyle=(0, (4, 1.5)), label="in context, prefix cached")
        styles = ((OKABE_ITO["blue"], "-"), (OKABE_ITO["orange"], (0, (6, 2))))
        for run, (colour, dashes) in zip(runs, styles, strict=True):
            tuned = run.finetune_once_flops + q * run.fine_tuned_query_flops
            exposures = f"{run.epochs:,} epoch{'s' if run.epochs != 1 else ''}"
            ax.plot(q, tuned, color=colour, linestyle=dashes, label=f"LoRA r={est.rank}, trained once ({exposures})")
            for n, below in ((run.queries, False), (run.queries_prefix_cached, True)):
                if n is not None and n >= 1:  # where the fine-tuned curve meets an in-context one
                    y = run.finetune_once_flops + n * run.fine_tuned_query_flops
                    ax.plot([n], [y], "o", color="#333333", markersize=3)
                    right = math.log(n) < math.log(float(q[-1])) / 2  # in the left half: the note goes right
                    ax.annotate(f"{n:,} queries", (n, y), xytext=(4 if right else -4, -5 if below else 5),
                                textcoords="offset points", fontsize=SMALL_PT, ha="left" if right else "right",
                                va="top" if below else "bottom")  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="queries answered", ylabel="cumulative FLOPs")
        low = min(float(icl[0]), float(cached[0]), float(result.finetune_once_flops))
        ax.set_ylim(bottom=low / 1_000)  # room under the lowest curve for the notes set below their dots
        title(fig, f"{est.spec.display_name}, {format_tokens_short(est.tokens)} tokens: in context or fine-tune?")
        legend_below(ax, ncols=1)
        words = (
            f"Per query {result.query_tokens} question + {result.generated_tokens} generated tokens; fine-tuning "
            f"(4N + 6P) per token, sequences of {result.train_sequence_tokens:,}; once: "
            f"{format_flops(result.finetune_once_flops)} at 1 epoch, {format_flops(runs[1].finetune_once_flops)} at "
            f"{runs[1].epochs:,} (the ~{EXPOSURES_FOR_CAPACITY:,} exposures behind 2 bits per parameter). Dots: "
            "fine-tuning meets the text in every prompt (note above) and a prefix-cached context (below). "
            "FLOPs only (Lampinen et al. 2025 for the trade-off)."
        )
        add_caption(fig, f"{caption(est)} {words}")
    return fig
