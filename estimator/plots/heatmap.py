"""Figure 4: the compression ratio KV ÷ LoRA over token count × rank, with the parity contour.

Above the contour (more tokens, lower rank) the adapter holds the text in fewer bytes than the cache.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from estimator.compare import Estimate
from estimator.plots.style import SMALL_PT, add_caption, caption, legend_below, new_figure, styled, title
from estimator.plots.tokens import token_grid
from estimator.present.tables import format_ratio
from estimator.sweep import Sweep, sweep

HEATMAP_TOKENS = (10**3, 10**9)
HEATMAP_RANKS = (1, 8192)
POINTS_PER_DECADE = 24


def ratio_tick(log10_ratio: float) -> str:
    """A colour-bar label: ``100x`` up to a million, ``1e9x`` beyond, ``0.1x`` below one."""
    if log10_ratio >= 6.5:
        return f"1e{log10_ratio:.0f}x"
    return f"{10**log10_ratio:,.0f}x" if log10_ratio >= 0 else f"{10**log10_ratio:g}x"


def heatmap_sweep(est: Estimate) -> Sweep:
    """The data of the figure: ``est``'s query over 1k to 1B tokens × ranks 1 to 8192 (log grids),
    widened to a decade past the query's own point where it lies outside."""
    low, high = HEATMAP_TOKENS
    tokens = token_grid(min(low, est.tokens), max(high, 10 * est.tokens), per_decade=POINTS_PER_DECADE)
    ranks = token_grid(HEATMAP_RANKS[0], max(HEATMAP_RANKS[1], 10 * est.rank), per_decade=POINTS_PER_DECADE)
    return sweep(est, tokens, sorted({*ranks, est.rank}))


def ratio_heatmap(est: Estimate) -> Figure:
    """log10(KV ÷ LoRA) coloured over (T, r); contours at 1 (parity), 0.1, 10 and 100; est's point marked."""
    data = heatmap_sweep(est)
    log_ratio = np.log10(data.kv_to_lora_bytes_ratio)
    with styled():
        fig, ax = new_figure(3.2)
        low, high = float(log_ratio.min()), float(log_ratio.max())
        mesh = ax.pcolormesh(
            data.tokens,
            data.ranks,
            log_ratio,
            cmap="PuOr_r",
            norm=TwoSlopeNorm(0.0, min(low, -1.0), max(high, 1.0)),  # white at parity
            shading="nearest",
            rasterized=True,  # vector files stay small
        )
        ax.contour(
            data.tokens,
            data.ranks,
            log_ratio,
            levels=[-1, 0, 1, 2],
            colors="#222222",
            linewidths=[0.5, 1.2, 0.5, 0.5],
            linestyles="solid",
        )
        full = est.targets.smallest_full_rank
        if full < data.ranks[-1]:
            names = est.targets.narrowest()
            label = f"full rank of {', '.join(names)} ({full:,})" if len(names) <= 2 else f"full rank ({full:,})"
            ax.axhline(full, color="#222222", linewidth=0.6, linestyle=(0, (2, 2)), label=label)
        ax.plot([est.tokens], [est.rank], "o", color="black", markersize=3, label=f"this query (r={est.rank})")
        right_half = est.tokens**2 > data.tokens[0] * data.tokens[-1]  # past the middle of the log axis
        ax.annotate(
            f"{format_ratio(est.kv_to_lora_bytes_ratio)}",
            (est.tokens, est.rank),
            xytext=(-4 if right_half else 4, 3),
            textcoords="offset points",
            ha="right" if right_half else "left",
            fontsize=SMALL_PT,
            fontweight="bold",
        )
        ax.set(xscale="log", yscale="log", xlabel="tokens of new text learned, T", ylabel="LoRA rank r")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.grid(False)
        title(fig, f"{est.spec.display_name}: KV cache ÷ LoRA bytes")
        parity = Line2D([], [], color="#222222", linewidth=1.2, label="parity: KV = LoRA bytes")
        others = Line2D([], [], color="#222222", linewidth=0.5, label="KV ÷ LoRA = 0.1x, 10x, 100x (thin)")
        handles, _ = ax.get_legend_handles_labels()
        legend_below(ax, [parity, others, *handles], ncols=1)
        bar = fig.colorbar(mesh, ax=ax, pad=0.02)
        bar.set_label("KV ÷ LoRA bytes")
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: ratio_tick(v)))
        add_caption(fig, caption(est) + " Purple: the cache is smaller than the LoRA; orange: larger.")
    return fig
