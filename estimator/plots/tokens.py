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
from estimator.plots.style import KV_COLOUR, PRETRAINING_COLOUR, RANK_STYLES, add_caption, caption, new_figure, styled
from estimator.present.tables import format_ratio
from estimator.sweep import Sweep, sweep
from estimator.units import log_grid

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
        top.plot(t, data.kv_bytes_per_token, color=KV_COLOUR, label=f"in context: KV cache ({est.kv.dtype.value})")
        for i, rank in enumerate(data.ranks):
            colour, dashes = RANK_STYLES[i % len(RANK_STYLES)]
            width = 1.8 if i == query_rank else 1.1
            label = f"LoRA r={rank}"
            top.plot(t, data.lora_bytes_per_token[i], color=colour, linestyle=dashes, linewidth=width, label=label)
            bottom.plot(t, data.ratio[i], color=colour, linestyle=dashes, linewidth=width, label=label)
        pretraining = data.pretraining_bytes_per_token
        if pretraining is not None:
            top.axhline(
                pretraining,
                color=PRETRAINING_COLOUR,
                linestyle=(0, (1, 2)),
                linewidth=1.1,
                label=f"pretraining ({pretraining:.2g} B/token)",
            )
        _mark_query(top, bottom, est)
        top.set(xscale="log", yscale="log", ylabel="bytes per token of text (B)")
        top.set_title(f"{est.spec.display_name}: bytes spent per token learned")
        top.legend(loc="upper right", ncols=1)
        bottom.axhline(1, color="#555555", linewidth=0.8)
        bottom.text(t[0], 1, " equal bytes", fontsize=5.5, va="bottom", color="#555555")
        bottom.set(xscale="log", yscale="log", xlabel="tokens of new text learned, T", ylabel="KV ÷ LoRA bytes")
        add_caption(fig, caption(est, pretraining=True))
    return fig


def _mark_query(top: Axes, bottom: Axes, est: Estimate) -> None:
    """Annotate est's token count with the ratio, and mark where its LoRA meets the KV cache."""
    kv, lora = est.kv_bytes_per_token, est.lora_bytes_per_token
    top.annotate(
        "",
        xy=(est.tokens, lora),
        xytext=(est.tokens, kv),
        arrowprops={"arrowstyle": "<->", "color": "#333333", "linewidth": 0.8, "shrinkA": 0, "shrinkB": 0},
    )
    top.text(
        est.tokens * 1.3,
        (kv * lora) ** 0.5,
        f"{format_ratio(est.ratio)} at {est.tokens:,} tokens",
        fontsize=6,
        va="center",
    )
    bottom.plot([est.tokens], [est.ratio], "o", color="#333333", markersize=3)
    if est.crossover_tokens is not None:
        cross = est.crossover_tokens
        top.plot([cross], [est.lora_bytes / cross], "o", color="#333333", markersize=3)
        top.annotate(
            f"crossover: {cross:,} tokens\n(r={est.rank} LoRA = KV cache)",
            xy=(cross, est.lora_bytes / cross),
            xytext=(-6, -14),
            textcoords="offset points",
            fontsize=5.5,
            ha="right",
            va="top",
        )
        bottom.axvline(cross, color="#888888", linewidth=0.6, linestyle=(0, (2, 2)))
