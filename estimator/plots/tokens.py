"""Figure 1: bytes per token of new text against the number of tokens learned (log-log).

The KV cache spends the same bytes per token at any length (until sliding windows fill), a LoRA's
fixed size spreads over the tokens (1/T), pretraining spreads all weights over its corpus.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from estimator.compare import Estimate
from estimator.plots.style import (
    KV_COLOUR,
    PRETRAINING_COLOUR,
    RANK_STYLES,
    SMALL_PT,
    add_caption,
    caption,
    legend_below,
    mark_context_window,
    new_figure,
    styled,
    title,
)
from estimator.present.tables import format_ratio
from estimator.sweep import Sweep, sweep
from estimator.units import format_tokens_short, log_grid

DEFAULT_RANKS = (8, 32, 128)
TOKEN_RANGE = (1, 10**9)
POINTS_PER_DECADE = 20


def token_grid(low: int = TOKEN_RANGE[0], high: int = TOKEN_RANGE[1], per_decade: int = POINTS_PER_DECADE) -> list[int]:
    """Whole token counts spaced evenly on a log scale, both ends included, ``per_decade`` points a decade
    (so every power of ten between two powers of ten)."""
    return list(log_grid(low, high, round(math.log10(high / low) * per_decade) + 1))


def tokens_sweep(est: Estimate, ranks: Sequence[int] = DEFAULT_RANKS, tokens: Sequence[int] | None = None) -> Sweep:
    """The data of the figure: ``est``'s query over ``tokens`` (1 to 1e9) at ``ranks`` plus ``est.rank``."""
    chosen = sorted({*ranks, est.rank})
    grid = sorted({*(tokens if tokens is not None else token_grid()), est.tokens})
    return sweep(est, grid, chosen)


def bytes_per_token_vs_tokens(est: Estimate, ranks: Sequence[int] = DEFAULT_RANKS) -> Figure:
    """KV cache, LoRA at each rank, pretraining: bytes per token over 1 to 1e9 tokens; below, KV ÷ LoRA.

    Marks ``est``'s point (its token count, annotated with the ratio) and the crossover of its rank.
    """
    data = tokens_sweep(est, ranks)
    t = data.tokens
    query_rank = int(np.flatnonzero(data.ranks == est.rank)[0])
    with styled():
        fig, (top, bottom) = new_figure(4.6, nrows=2, sharex=True, height_ratios=(2.2, 1))
        _plot_cache(top, data, est)
        for i, rank in enumerate(data.ranks):
            colour, dashes = RANK_STYLES[i % len(RANK_STYLES)]
            width = 1.8 if i == query_rank else 1.1
            label = f"LoRA r={rank}"
            top.plot(t, data.lora_bytes_per_token[i], color=colour, linestyle=dashes, linewidth=width, label=label)
            ratio = np.where(
                data.holds_all_tokens, data.kv_to_lora_bytes_ratio[i], np.nan
            )  # no ratio past an all-window cache
            bottom.plot(t, ratio, color=colour, linestyle=dashes, linewidth=width, label=label)
        pretraining = data.pretraining_bytes_per_token
        if pretraining is not None:
            top.axhline(
                pretraining,
                color=PRETRAINING_COLOUR,
                linestyle=(0, (1, 2)),
                linewidth=1.1,
                label=f"pretraining ({pretraining:.2g} B/token)",
            )
        _mark_query(top, bottom, est, (float(t[0]), float(t[-1])))
        top.set_xscale("log")
        mark_context_window(top, est, label=False)
        mark_context_window(bottom, est)
        top.set(xscale="log", yscale="log", ylabel="bytes per token of text (B)")
        title(fig, f"{est.spec.display_name}: bytes spent per token learned")
        legend_below(bottom, top.get_legend_handles_labels()[0], ncols=2)
        bottom.axhline(1, color="#555555", linewidth=0.8)
        bottom.text(t[-1], 1, "equal bytes ", fontsize=SMALL_PT, va="top", ha="right", color="#555555")
        bottom.set(xscale="log", yscale="log", xlabel="tokens of new text learned, T", ylabel="KV ÷ LoRA bytes")
        add_caption(fig, caption(est, pretraining=True) + _no_crossing(est))
    return fig


def _no_crossing(est: Estimate) -> str:
    """Where the query's LoRA never crosses the cache, the reason, in the caption (no dot is drawn for it)."""
    if est.crossover.tokens is not None:
        return ""
    from estimator.present.words import crossover_words

    return f" r={est.rank}: " + crossover_words(est.crossover, est.lora_bytes)


def _plot_cache(ax: Axes, data: Sweep, est: Estimate) -> None:
    """The cache's bytes per token of text: solid where it holds the text, dotted past a window that every
    layer keeps (it then holds the last w tokens only); a recurrent state's fixed part apart, falling as 1/T."""
    t, per_token = data.tokens, data.kv_bytes_per_token
    holds = data.holds_all_tokens
    state = est.kv_state_bytes
    name = (
        "KV cache + state" if state and est.kv_bytes_per_token_unbounded else "recurrent state" if state else "KV cache"
    )
    label = f"in context: {name} ({est.kv.dtype.value})"
    ax.plot(t[holds], per_token[holds], color=KV_COLOUR, label=label)
    if not holds.all():
        window = int(data.tokens_held.max())
        ax.plot(t[~holds], per_token[~holds], color=KV_COLOUR, linestyle=(0, (1, 1.5)),
                label=f"past the window (last {window:,} only)")  # fmt: skip
    if state and est.kv_bytes_per_token_unbounded:
        ax.plot(t, state / t, color=KV_COLOUR, linestyle=(0, (5, 2)), linewidth=0.9,
                label=f"  its fixed state ({state:,} B)")  # fmt: skip


def _right_half(x: float, low: float, high: float) -> bool:
    """Whether x lies in the right half of a log axis from low to high (its notes then go to the left)."""
    return math.log(x / low) > math.log(high / low) / 2


def _mark_query(top: Axes, bottom: Axes, est: Estimate, span: tuple[float, float]) -> None:
    """Annotate est's token count with the ratio, and mark where its LoRA meets the KV cache; notes go
    to whichever side of their point has room."""
    kv, lora = est.kv_bytes_per_token, est.lora_bytes_per_token
    left = _right_half(est.tokens, *span)
    if not est.holds_all_tokens:  # the cache keeps the last w tokens: no ratio to show
        top.plot([est.tokens], [kv], "o", color="#333333", markersize=3)
        text = f"{est.tokens:,} tokens: the cache\nholds the last {est.tokens_held:,}"
        top.annotate(text, xy=(est.tokens, kv), xytext=(-4 if left else 4, -4), textcoords="offset points",
                     fontsize=SMALL_PT, ha="right" if left else "left", va="top")  # fmt: skip
        _mark_crossover(top, bottom, est, span)
        return
    top.annotate(
        "",
        xy=(est.tokens, lora),
        xytext=(est.tokens, kv),
        arrowprops={"arrowstyle": "<->", "color": "#333333", "linewidth": 0.8, "shrinkA": 0, "shrinkB": 0},
    )
    near_end = math.log(est.tokens / span[0]) > 0.8 * math.log(span[1] / span[0])  # else right of the arrow
    top.annotate(
        f"{format_ratio(est.kv_to_lora_bytes_ratio)} at {format_tokens_short(est.tokens)} tokens",
        xy=(est.tokens, (kv * lora) ** 0.5),
        xytext=(-4 if near_end else 4, 0),
        textcoords="offset points",
        fontsize=SMALL_PT,
        va="center",
        ha="right" if near_end else "left",
    )
    bottom.plot([est.tokens], [est.kv_to_lora_bytes_ratio], "o", color="#333333", markersize=3)
    _mark_crossover(top, bottom, est, span)


def _mark_crossover(top: Axes, bottom: Axes, est: Estimate, span: tuple[float, float]) -> None:
    if est.crossover_tokens is not None:
        cross = est.crossover_tokens
        left = _right_half(cross, *span)
        top.plot([cross], [est.lora_bytes / cross], "o", color="#333333", markersize=3)
        top.annotate(
            f"crossover: {cross:,} tokens\n(r={est.rank} LoRA = KV cache)",
            xy=(cross, est.lora_bytes / cross),
            xytext=(-6 if left else 6, 6),  # above the cache's line: the ratio's note is below it
            textcoords="offset points",
            fontsize=SMALL_PT,
            ha="right" if left else "left",
            va="bottom",
        )
        bottom.axvline(cross, color="#888888", linewidth=0.6, linestyle=(0, (2, 2)))
