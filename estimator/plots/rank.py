"""Figure 2: bytes per token against LoRA rank at a fixed token count: where is the sweet spot?

The KV cache of T tokens is one horizontal line; a LoRA grows linearly in r. They meet at the
parity rank; a second axis reads the adapter's size as a share of the model's parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from estimator.compare import Estimate
from estimator.plots.style import (
    KV_COLOUR,
    OKABE_ITO,
    SMALL_PT,
    add_caption,
    caption,
    legend_below,
    new_figure,
    styled,
    title,
)
from estimator.present.tables import format_ratio
from estimator.sweep import Sweep, sweep
from estimator.units import format_tokens_short

RANK_RANGE = (1, 8192)


def rank_sweep(est: Estimate, ranks: range = range(RANK_RANGE[0], RANK_RANGE[1] + 1)) -> Sweep:
    """The data of the figure: ``est``'s query at its token count over every rank in ``ranks``."""
    return sweep(est, [est.tokens], sorted({*ranks, est.rank, est.parity_rank}))


def _percent(value: float, _position: object = None) -> str:
    return f"{value:.2g}%" if value < 1 else f"{value:,.0f}%"


def bytes_per_token_vs_rank(est: Estimate) -> Figure:
    """At ``est.tokens``: the KV line, the LoRA line over ranks 1 to 8192, the parity rank, est's rank,
    the ranks beyond the narrowest target's full rank shaded, and the adapter's share of the model."""
    data = rank_sweep(est)
    r = data.ranks
    lora = data.lora_bytes_per_token[:, 0]
    kv = float(data.kv_bytes_per_token[0])
    with styled():
        fig, ax = new_figure(3.3)
        ax.plot(r, lora, color=OKABE_ITO["blue"], label=f"LoRA on {est.targets.described} ({est.adapter_dtype.value})")
        held = "" if est.holds_all_tokens else f", its last {est.tokens_held:,} only"
        ax.axhline(kv, color=KV_COLOUR, label=f"KV cache of {format_tokens_short(est.tokens)} tokens{held}")
        full = est.targets.smallest_full_rank
        if full < r[-1]:
            narrow = ", ".join(est.targets.narrowest())
            ax.axvspan(full, r[-1], color="#999999", alpha=0.15, linewidth=0,
                       label=f"beyond full rank of {narrow} (r > {full:,})")  # fmt: skip
        if est.holds_all_tokens:  # a cache that keeps only a window has no parity with the text
            _mark_parity(ax, est, kv, lora, r)
        ax.plot([est.rank], [est.lora_bytes_per_token], "o", color=OKABE_ITO["blue"], markersize=3.5)
        ax.annotate(
            f"r = {est.rank}: KV spends {format_ratio(est.kv_to_lora_bytes_ratio)}"
            if est.holds_all_tokens
            else f"r = {est.rank}",
            xy=(est.rank, est.lora_bytes_per_token),
            xytext=(6, -4),
            textcoords="offset points",
            fontsize=SMALL_PT,
            va="top",
        )
        ax.set(xscale="log", yscale="log", xlim=(r[0], r[-1]))
        ax.set(xlabel="LoRA rank r", ylabel=f"bytes per token of text (B), T = {format_tokens_short(est.tokens)}")
        title(fig, f"{est.spec.display_name}: which rank stores as many bytes as the cache?")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        share = est.tokens * 8 / est.adapter_dtype.bits / est.params * 100  # B/token -> % of parameters

        secondary = ax.secondary_yaxis("right", functions=(lambda b: b * share, lambda p: np.asarray(p) / share))
        secondary.set_ylabel("adapter size, % of model parameters")
        secondary.yaxis.set_major_formatter(FuncFormatter(_percent))
        legend_below(ax, ncols=1)
        add_caption(fig, caption(est))
    return fig


def _mark_parity(ax: Any, est: Estimate, kv: float, lora: Any, r: Any) -> None:
    """The parity rank on the cache's line, its note on the side and height with room."""
    parity = est.parity_rank
    high = kv * kv > float(lora.min()) * float(lora.max())  # the cache's line in the upper half: note below
    right = parity > (r[0] * r[-1]) ** 0.5
    ax.axvline(parity, color="#333333", linewidth=0.7, linestyle=(0, (2, 2)))
    ax.plot([parity], [kv], "o", color="#333333", markersize=3)
    ax.annotate(
        f"parity r = {parity:,}\n({est.parity_fraction_of_model_params:.1%} of the model)",
        xy=(parity, kv),
        xytext=(-5 if right else 5, -8 if high else 8),
        textcoords="offset points",
        fontsize=SMALL_PT,
        ha="right" if right else "left",
        va="top" if high else "bottom",
    )
